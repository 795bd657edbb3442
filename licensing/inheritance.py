"""Licence inheritance: what a model's inputs (its base model's licence and its training data's
licence) allow an offer to grant, what flows down into the offer's terms, and the rights chain the
terms carry to every output.

`LICENCE_TABLE` is the one statement of these rules: `terms_inherit` enforces it and
`inheritance_table_markdown` renders it into the README (a test keeps the two equal). Only licences
Imprint knows are checked positively; any other id (including 'custom') limits the offer to
non-commercial uses and to outputs the trainer keeps the rights to, because nobody has checked that
more is allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .terms import OWNERSHIPS, licence_label

# Behavioural use restrictions of the OpenRAIL-M family (Attachment A, abridged). A RAIL licence
# requires them to be passed on to every downstream licence of the model or its outputs.
RAIL_RESTRICTIONS = (
    "You may not use the model or its outputs in any way that violates applicable law.",
    "You may not use the model or its outputs to exploit, harm or attempt to harm minors.",
    ("You may not use the model or its outputs to generate or disseminate verifiably false "
    "information with the purpose of harming others."),
    ("You may not use the model or its outputs to generate or disseminate personal identifiable "
    "information that can be used to harm an individual."),
    "You may not use the model or its outputs to defame, disparage or otherwise harass others.",
    ("You may not use the model or its outputs for fully automated decision making that adversely "
    "impacts an individual's legal rights."),
    "You may not use the model or its outputs to provide medical advice or interpret medical results.",
)

# Uses that count as commercial for a non-commercial licence ("internal business use" included:
# CC's NC clause covers use "primarily intended for commercial advantage", which a company's
# internal use is).
COMMERCIAL_USES = ("commercial", "internal")
UNVERIFIED_USES = ("personal", "research", "education")
OWN_TEXT = "proprietary-owned"


@dataclass(frozen=True)
class LicenceRules:
    """One row of the inheritance table. `ownership` lists the ownerships of outputs an offer may
    state; `why_ownership` says why the others are refused."""

    family: str
    ids: tuple[str, ...]
    commercial: bool = True  # commercial and internal business use may be granted
    derivatives: bool = True  # a model fine-tuned on it may be offered at all
    attribution: bool = False  # the offer's terms must carry an attribution text
    share_alike: bool = False  # outputs are shared under the same licence (terms and receipts say so)
    attested: bool = False  # the trainer must have attested the declaration
    notice: bool = False  # a copyright/permission notice travels with the model and its outputs
    restrictions: tuple[str, ...] = field(default=())
    ownership: tuple[str, ...] = OWNERSHIPS
    why_ownership: str = ""


LICENCE_TABLE: tuple[LicenceRules, ...] = (
    LicenceRules("Own text (attested)", (OWN_TEXT,), attested=True),
    LicenceRules("Public domain, CC0", ("public-domain", "cc0-1.0", "unlicense")),
    LicenceRules("Permissive software licences (GPT-2's MIT)", ("mit", "apache-2.0", "bsd-2-clause", "bsd-3-clause"),
                 notice=True),
    LicenceRules("CC BY, ODC-By", ("cc-by-*", "odc-by-1.0"), attribution=True),
    LicenceRules("CC BY-SA", ("cc-by-sa-*",), attribution=True, share_alike=True, ownership=("customer",),
                 why_ownership="its share-alike clause makes whoever shares the outputs license them under the "
                               "same licence, so the trainer cannot keep the rights ('licensed') and the outputs "
                               "are not free of conditions ('public')"),
    LicenceRules("CC BY-NC", ("cc-by-nc-*",), commercial=False, attribution=True, ownership=("customer", "licensed"),
                 why_ownership="'public' outputs could be used commercially by anyone"),
    LicenceRules("CC BY-NC-SA", ("cc-by-nc-sa-*",), commercial=False, attribution=True, share_alike=True,
                 ownership=("customer",),
                 why_ownership="its share-alike clause makes whoever shares the outputs license them under the "
                               "same licence, and 'public' outputs could be used commercially"),
    LicenceRules("CC BY-ND, CC BY-NC-ND", ("cc-by-nd-*", "cc-by-nc-nd-*"), derivatives=False, attribution=True),
    LicenceRules("OpenRAIL-M family", ("openrail-m", "creativeml-openrail-m", "bigscience-openrail-m"),
                 restrictions=RAIL_RESTRICTIONS, ownership=("customer", "licensed"),
                 why_ownership="its use restrictions must travel with every output, so outputs cannot be 'public'"),
)
UNKNOWN = LicenceRules("Any other licence (custom, unknown)", ("*",), commercial=False, ownership=("licensed",),
                       why_ownership="Imprint cannot check that it lets the trainer pass rights in the outputs on")

_CC_VERSION = r"(1\.0|2\.0|2\.5|3\.0|4\.0)"


def _matches(pattern: str, licence_id: str) -> bool:
    if pattern.endswith("-*"):  # a Creative Commons family in any of its versions
        return re.fullmatch(re.escape(pattern[:-2]) + "-" + _CC_VERSION, licence_id) is not None
    return pattern == licence_id


def licence_rules(licence_id: str) -> LicenceRules:
    """The table row for an SPDX-style id (case-insensitive), or UNKNOWN."""
    licence_id = (licence_id or "").lower()
    for rules in LICENCE_TABLE:
        if any(_matches(pattern, licence_id) for pattern in rules.ids):
            return rules
    return UNKNOWN


# --- The inputs of a model version, as the trainer declared them ----------------------------------

@dataclass(frozen=True)
class DatasetInput:
    licence: str
    name: str = ""
    digest: str = ""
    rights_holders: tuple[str, ...] = ()
    attested: bool = True


@dataclass(frozen=True)
class BaseModelInput:
    licence: str
    name: str = ""
    rights_holder: str = ""


def base_model_notice(base: BaseModelInput) -> str:
    """The notice a permissive base licence asks to keep with the model (GPT-2: MIT, © OpenAI)."""
    holder = f"Copyright © {base.rights_holder}; the " if base.rights_holder else "The "
    return (f"{holder}{licence_label(base.licence)} licence's copyright and permission notice accompany "
            f"{base.name or 'the base model'}, this model and its outputs.")


def rights_chain(*, dataset: DatasetInput, base: BaseModelInput) -> dict:
    """The upstream rights of an output: whose data, under which licence, on which base model."""
    base_rules = licence_rules(base.licence)
    return {
        "dataset": {"name": dataset.name, "digest": dataset.digest, "licence": dataset.licence.lower(),
                    "rights_holders": list(dataset.rights_holders), "attested": bool(dataset.attested),
                    "own_text": dataset.licence.lower() == OWN_TEXT},
        "base_model": {"name": base.name, "licence": base.licence.lower(), "rights_holder": base.rights_holder,
                       "notice": base_model_notice(base) if base_rules.notice else ""},
    }


def share_alike_statement(licence_id: str) -> str:
    label = licence_label(licence_id)
    return (f"Outputs adapt material licensed {label}: whoever shares them must share them under {label} "
            "(or a later version of it), with the attribution, and may add no terms that restrict others' reuse.")


def attribution_default(dataset: DatasetInput) -> str:
    """An attribution text that satisfies an attribution licence: names the data, its rights-holders
    and its licence (what CC BY's section 3(a) asks for)."""
    holders = ", ".join(dataset.rights_holders) or "its rights-holders"
    return f"Generated by a model trained on {dataset.name or 'a dataset'} by {holders} ({licence_label(dataset.licence)})."[:300]


@dataclass
class _Inherited:
    reasons: dict[str, str] = field(default_factory=dict)
    restrictions: list[str] = field(default_factory=list)
    share_alike: str = ""


def _check_uses(rules: LicenceRules, role: str, licence_id: str, uses: list[str]) -> str | None:
    if rules is UNKNOWN:
        extra = [u for u in uses if u not in UNVERIFIED_USES]
        if extra:
            return (f"The {role}'s licence '{licence_id}' is not one Imprint can check, so the offer may only "
                    f"grant {', '.join(UNVERIFIED_USES)} use, not {', '.join(extra)}.")
    elif not rules.commercial:
        bad = [u for u in uses if u in COMMERCIAL_USES]
        if bad:
            return (f"The {role} is licensed {licence_id}, which forbids commercial use (internal business use "
                    f"included), so the offer cannot grant {' or '.join(bad)} use.")
    return None


def _check_input(role: str, param: str, licence_id: str, attested: bool, document: dict, out: _Inherited) -> None:
    rules = licence_rules(licence_id)
    what = f"The {role}'s licence '{licence_id}'"
    if rules.attested and not attested:
        out.reasons[param] = (f"The {role} is declared as the trainer's own text, but nobody attested that: "
                              "upload it again and confirm that you hold all rights to it.")
        return
    if not rules.derivatives:
        out.reasons[param] = (f"{what} allows no derivatives: a model fine-tuned on it is a derivative work, "
                              "so it cannot be offered under any terms.")
        return
    message = _check_uses(rules, role, licence_id, document["uses"])
    if message:
        out.reasons[param] = message
    if document["ownership"] not in rules.ownership:
        allowed = " or ".join(f"'{o}'" for o in rules.ownership)
        out.reasons.setdefault("ownership", f"{what} allows outputs owned {allowed} only: {rules.why_ownership}.")
    # Attribution licences oblige whoever shares the material: terms that let samples be published
    # must say how to credit them (terms that keep samples private oblige nobody to share).
    if rules.attribution and document["samples"]["publish"] and not document["attribution"]:
        out.reasons.setdefault("attribution", f"{what} requires attribution: terms that let samples be "
                                              "published must give the attribution text that accompanies them.")
    if rules.share_alike and not out.share_alike:
        out.share_alike = share_alike_statement(licence_id)
    out.restrictions += rules.restrictions


def terms_inherit(document: dict, *, dataset: DatasetInput, base: BaseModelInput) -> dict:
    """The terms with what the inputs impose added: their use restrictions, the share-alike
    statement, and the rights chain. Raises TermsNotAllowedByInputs with a reason per offending
    field (base_licence, dataset_licence, ownership, attribution)."""
    from .errors import TermsNotAllowedByInputs

    out = _Inherited()
    _check_input("base model", "base_licence", base.licence, True, document, out)
    _check_input("dataset", "dataset_licence", dataset.licence, dataset.attested, document, out)
    if out.reasons:
        raise TermsNotAllowedByInputs(out.reasons)
    return {**document, "restrictions": sorted(set(document["restrictions"]) | set(out.restrictions)),
            "share_alike": out.share_alike or None, "rights_chain": rights_chain(dataset=dataset, base=base)}


def attribution_required(licence_ids: tuple[str, ...]) -> bool:
    return any(licence_rules(i).attribution for i in licence_ids)


def ownership_allowed(licence_ids: tuple[str, ...]) -> tuple[str, ...]:
    """The ownerships of outputs every one of these licences allows (possibly none)."""
    return tuple(o for o in OWNERSHIPS if all(o in licence_rules(i).ownership for i in licence_ids))


# --- The table as documentation --------------------------------------------------------------------

def _row(rules: LicenceRules) -> str:
    ids = ", ".join(f"`{i}`" for i in rules.ids)
    if not rules.derivatives:
        uses = "none: refused (a fine-tuned model is a derivative)"
    elif rules is UNKNOWN:
        uses = ", ".join(UNVERIFIED_USES) + " only"
    elif not rules.commercial:
        uses = "non-commercial only (no commercial, no internal business use)"
    else:
        uses = "every use"
    terms = [label for flag, label in ((rules.attested, "attestation"), (rules.attribution, "attribution text (if samples may be published)"),
                                       (rules.share_alike, "share-alike statement (terms and receipts)"),
                                       (rules.notice, "licence notice travels"),
                                       (bool(rules.restrictions), "RAIL use restrictions")) if flag]
    if not rules.derivatives:
        terms = []
    ownership = "—" if not rules.derivatives else ", ".join(f"`{o}`" for o in rules.ownership)
    return f"| {rules.family} | {ids} | {uses} | {', '.join(terms) or '—'} | {ownership} |"


def inheritance_table_markdown() -> str:
    """The inheritance table as Markdown, as the README shows it."""
    head = ("| data or base licence | ids | uses an offer may grant | the terms must carry | ownership of outputs |\n"
            "|---|---|---|---|---|")
    return "\n".join([head, *(_row(r) for r in (*LICENCE_TABLE, UNKNOWN))]) + "\n"
