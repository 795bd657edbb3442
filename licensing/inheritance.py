"""Licence inheritance: what a model's inputs (its base model's licence and its training data's
licence) allow an offer to grant, and which use restrictions flow down into the offer.

Only licences Imprint knows are checked positively; for any other id (including 'custom') the
offer is limited to personal and research uses, because nobody has checked that more is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class LicenceRules:
    name: str
    commercial: bool = True
    attribution: bool = False
    restrictions: tuple[str, ...] = field(default=())


_PERMISSIVE = ("mit", "apache-2.0", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "unlicense", "odc-by-1.0")
KNOWN_LICENCES: dict[str, LicenceRules] = {
    **{spdx: LicenceRules(spdx) for spdx in _PERMISSIVE},
    "cc-by-4.0": LicenceRules("cc-by-4.0", attribution=True),
    "cc-by-sa-4.0": LicenceRules("cc-by-sa-4.0", attribution=True),
    "cc-by-nc-4.0": LicenceRules("cc-by-nc-4.0", commercial=False, attribution=True),
    "cc-by-nc-sa-4.0": LicenceRules("cc-by-nc-sa-4.0", commercial=False, attribution=True),
    "cc-by-nc-nd-4.0": LicenceRules("cc-by-nc-nd-4.0", commercial=False, attribution=True),
    "openrail-m": LicenceRules("openrail-m", restrictions=RAIL_RESTRICTIONS),
    "creativeml-openrail-m": LicenceRules("creativeml-openrail-m", restrictions=RAIL_RESTRICTIONS),
    "bigscience-openrail-m": LicenceRules("bigscience-openrail-m", restrictions=RAIL_RESTRICTIONS),
}
# Uses that count as commercial for a non-commercial licence ("internal business use" included).
COMMERCIAL_USES = ("commercial", "internal")
UNVERIFIED_USES = ("personal", "research", "education")


@dataclass(frozen=True)
class Input:
    role: str  # "base model" or "dataset"
    field: str  # the model version field it comes from
    licence_id: str


def _check_input(inp: Input, document: dict, reasons: dict[str, str]) -> tuple[str, ...]:
    rules = KNOWN_LICENCES.get(inp.licence_id.lower())
    uses = document["uses"]
    if rules is None:
        extra = [u for u in uses if u not in UNVERIFIED_USES]
        if extra:
            reasons[inp.field] = (
                f"The {inp.role}'s licence '{inp.licence_id}' is not one Imprint can check, so the "
                f"offer may only grant {', '.join(UNVERIFIED_USES)} use, not {', '.join(extra)}."
            )
        return ()
    if not rules.commercial and any(u in COMMERCIAL_USES for u in uses):
        bad = [u for u in uses if u in COMMERCIAL_USES]
        reasons[inp.field] = (
            f"The {inp.role} is licensed {rules.name}, which forbids commercial use, so the offer "
            f"cannot grant {' or '.join(bad)} use."
        )
    if rules.attribution and document["samples"]["publish"] and not document["attribution"]:
        reasons.setdefault(
            "attribution",
            f"The {inp.role} is licensed {rules.name}, which requires attribution: give the "
            "attribution text that must accompany published samples.",
        )
    return rules.restrictions


def terms_inherit(document: dict, *, base_licence: str, dataset_licence: str) -> dict:
    """The terms with the inputs' use restrictions added, or raises TermsNotAllowedByInputs with a
    reason per offending input (keyed by the model version field: base_licence, dataset_licence)."""
    from .errors import TermsNotAllowedByInputs

    reasons: dict[str, str] = {}
    inherited: list[str] = []
    for inp in (Input("base model", "base_licence", base_licence),
                Input("dataset", "dataset_licence", dataset_licence)):
        inherited += _check_input(inp, document, reasons)
    if reasons:
        raise TermsNotAllowedByInputs(reasons)
    restrictions = sorted(set(document["restrictions"]) | set(inherited))
    return {**document, "restrictions": restrictions}
