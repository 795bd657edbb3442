"""Licence terms as data: validation (a message per bad field), canonical JSON and its SHA-256,
and deterministic human-readable text.

A terms document (schema "imprint-terms/2") holds the rights only:

    {"schema": "imprint-terms/2", "licence_id": "custom", "uses": ["personal", "research"],
     "samples": {"publish": true, "resell": false}, "attribution": "Made with X",
     "quota": {"tokens": 100000, "period": "month"}, "rate_limit_per_minute": 60,
     "duration_days": 365, "restrictions": ["No medical advice."], "ownership": "customer",
     "share_alike": null, "rights_chain": {"dataset": {...}, "base_model": {...}}}

`ownership` says who owns the outputs: "customer" (the customer owns what they generate, within
the permitted uses), "licensed" (the trainer keeps the rights; the customer holds a licence for the
permitted uses) or "public" (outputs carry no restriction beyond attribution). `share_alike` and
`rights_chain` are never typed by the trainer: licensing.inheritance derives them from the model
version's inputs. Terms of schema "imprint-terms/1" (no ownership, no chain) stay valid as stored.
"""

from __future__ import annotations

import hashlib
import json
import re

SCHEMA = "imprint-terms/2"
SCHEMA_V1 = "imprint-terms/1"
OWNERSHIPS = ("customer", "licensed", "public")
OWNERSHIP_DEFAULT = "licensed"  # the conservative reading, and what every schema-1 licence meant
DERIVED_FIELDS = ("share_alike", "rights_chain")
USES = ("personal", "research", "education", "internal", "commercial")
USE_LABELS = {
    "personal": "personal, non-commercial use",
    "research": "research",
    "education": "teaching and education",
    "internal": "internal business use",
    "commercial": "commercial use",
}
QUOTA_PERIODS = ("month", "total")
MAX_QUOTA_TOKENS = 10**12
MAX_RATE_PER_MINUTE = 10_000
MAX_DURATION_DAYS = 36_500
MAX_RESTRICTIONS = 20
_LICENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,63}$")


def _check_uses(value, errors):
    if not isinstance(value, list) or not value:
        errors["uses"] = "Choose at least one permitted use."
    elif any(u not in USES for u in value):
        bad = sorted({str(u) for u in value if u not in USES})
        errors["uses"] = f"Unknown use {', '.join(bad)}; permitted uses are {', '.join(USES)}."
    elif len(set(value)) != len(value):
        errors["uses"] = "Each permitted use may appear once."


def _check_samples(value, errors):
    if not isinstance(value, dict) or set(value) != {"publish", "resell"}:
        errors["samples"] = "Say whether samples may be published and resold (publish, resell)."
    elif not all(isinstance(v, bool) for v in value.values()):
        errors["samples"] = "Sample publication and resale must be true or false."
    elif value["resell"] and not value["publish"]:
        errors["samples"] = "Samples that may be resold must also be publishable."


def _check_quota(value, errors):
    if not isinstance(value, dict) or set(value) != {"tokens", "period"}:
        errors["quota"] = "Give a token quota and its period (tokens, period)."
    elif not _positive_int(value["tokens"]) or value["tokens"] > MAX_QUOTA_TOKENS:
        errors["quota"] = f"The token quota must be a whole number from 1 to {MAX_QUOTA_TOKENS}."
    elif value["period"] not in QUOTA_PERIODS:
        errors["quota"] = "The quota period must be 'month' or 'total'."


def _check_restrictions(value, errors):
    if not isinstance(value, list) or not all(isinstance(r, str) and r.strip() for r in value):
        errors["restrictions"] = "Restrictions are a list of non-empty sentences."
    elif len(value) > MAX_RESTRICTIONS or any(len(r) > 500 for r in value):
        errors["restrictions"] = f"At most {MAX_RESTRICTIONS} restrictions of 500 characters each."


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def validate_terms(raw: dict) -> dict:
    """The normalised terms document, or raises TermsInvalid with a message for each bad field."""
    from .errors import TermsInvalid

    if not isinstance(raw, dict):
        raise TermsInvalid({"terms": "Terms must be a JSON object."})
    errors: dict[str, str] = {}
    known = {"schema", "licence_id", "uses", "samples", "attribution", "quota",
             "rate_limit_per_minute", "duration_days", "restrictions", "ownership"}
    # Derived fields sent back (a stored document re-offered as it was) are dropped: inheritance
    # recomputes them from the model's inputs, so a typed rights chain is never believed.
    for key in sorted(set(raw) - known - set(DERIVED_FIELDS)):
        errors[key] = f"Unknown field '{key}'. Prices belong to the offer, not to the terms."
    if raw.get("schema", SCHEMA) not in (SCHEMA, SCHEMA_V1):
        errors["schema"] = f"Unsupported schema; use {SCHEMA}."
    ownership = raw.get("ownership", OWNERSHIP_DEFAULT)
    if ownership not in OWNERSHIPS:
        errors["ownership"] = f"Ownership of outputs is one of {', '.join(OWNERSHIPS)}."
    elif ownership == "public" and raw.get("samples") != {"publish": True, "resell": True}:
        errors.setdefault("samples", "Public outputs carry no restriction beyond attribution: they may be "
                                     "published and resold.")
    licence_id = raw.get("licence_id", "custom")
    if not isinstance(licence_id, str) or not _LICENCE_ID.match(licence_id):
        errors["licence_id"] = "The licence id must be an SPDX identifier or 'custom'."
    _check_uses(raw.get("uses"), errors)
    _check_samples(raw.get("samples"), errors)
    attribution = raw.get("attribution", "")
    if not isinstance(attribution, str) or len(attribution) > 300:
        errors["attribution"] = "Attribution is a text of at most 300 characters (or empty)."
    _check_quota(raw.get("quota"), errors)
    rate = raw.get("rate_limit_per_minute")
    if not _positive_int(rate) or rate > MAX_RATE_PER_MINUTE:
        errors["rate_limit_per_minute"] = f"The rate limit must be 1 to {MAX_RATE_PER_MINUTE} requests a minute."
    duration = raw.get("duration_days")
    if duration is not None and (not _positive_int(duration) or duration > MAX_DURATION_DAYS):
        errors["duration_days"] = f"Duration is 1 to {MAX_DURATION_DAYS} days, or null for perpetual."
    _check_restrictions(raw.get("restrictions", []), errors)
    if errors:
        raise TermsInvalid(errors)
    return _normalised(raw, licence_id, attribution, ownership)


def _normalised(raw: dict, licence_id: str, attribution: str, ownership: str) -> dict:
    # Order of uses and restrictions carries no meaning: sorting makes equal terms hash equally.
    return {
        "schema": SCHEMA,
        "licence_id": licence_id.lower(),
        "uses": sorted(raw["uses"], key=USES.index),
        "samples": {"publish": raw["samples"]["publish"], "resell": raw["samples"]["resell"]},
        "attribution": attribution.strip(),
        "quota": {"tokens": raw["quota"]["tokens"], "period": raw["quota"]["period"]},
        "rate_limit_per_minute": raw["rate_limit_per_minute"],
        "duration_days": raw.get("duration_days"),
        "restrictions": sorted({" ".join(r.split()) for r in raw.get("restrictions", [])}),
        "ownership": ownership,
    }


def canonical_json(document: dict) -> str:
    """Sorted keys, no whitespace, UTF-8 as is: the same terms always give the same bytes."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def terms_hash(document: dict) -> str:
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def _yes_no(flag: bool) -> str:
    return "may" if flag else "may not"


_LABELS = {"public-domain": "Public Domain", "custom": "a custom licence", "unlicense": "the Unlicense",
           "proprietary-owned": "the trainer's own text"}


def licence_label(licence_id: str) -> str:
    """How people write a licence id: cc-by-sa-4.0 → CC BY-SA 4.0, mit → MIT."""
    if licence_id.lower() in _LABELS:
        return _LABELS[licence_id.lower()]
    parts = licence_id.lower().split("-")
    if parts[0] == "cc" and len(parts) > 2:
        return f"CC {'-'.join(parts[1:-1]).upper()} {parts[-1]}"
    if parts[0] == "cc0":
        return "CC0 " + "-".join(parts[1:])
    return licence_id.upper()


OWNERSHIP_TEXT = {
    "customer": "the customer owns the outputs they generate, to use within the permitted uses",
    "licensed": ("the trainer keeps the rights in the outputs; the customer holds a licence to use them "
                 "for the permitted uses"),
    "public": "outputs carry no restriction beyond attribution: anyone may use them",
}


def dataset_sentence(dataset: dict) -> str:
    """Whose data a model learnt from, in plain words (from a rights chain's dataset part)."""
    holders = ", ".join(dataset.get("rights_holders") or [])
    if dataset.get("own_text"):
        whose = f"the trainer's own text ({holders})" if holders else "the trainer's own text"
        return f"{whose}, attested by the trainer" if dataset.get("attested") else whose
    name = f"“{dataset['name']}”" if dataset.get("name") else "a dataset"
    by = f"by {holders}" if holders else "(rights-holders not declared)"
    return f"{name} {by}, licensed {licence_label(dataset.get('licence') or 'unknown')}"


def base_model_sentence(base: dict) -> str:
    holder = f" by {base['rights_holder']}" if base.get("rights_holder") else ""
    return f"{base.get('name') or 'the base model'}{holder}, licensed {licence_label(base.get('licence') or 'unknown')}"


def _rights_lines(document: dict, number: int) -> list[str]:
    lines = [f"{number}. Ownership of outputs: {OWNERSHIP_TEXT[document['ownership']]}."]
    if document.get("share_alike"):
        number += 1
        lines.append(f"{number}. Share-alike: {document['share_alike']}")
    chain = document.get("rights_chain")
    if chain:
        base = chain["base_model"]
        lines += [f"{number + 1}. Upstream rights:",
                  f"   - Training data: {dataset_sentence(chain['dataset'])}.",
                  f"   - Base model: {base_model_sentence(base)}." + (f" Notice: {base['notice']}" if base.get("notice") else "")]
    return lines


def render_terms_text(document: dict, *, sha256: str | None = None) -> str:
    """The human-readable licence, rendered only from the document (same terms, same text)."""
    uses = [USE_LABELS[u] for u in document["uses"]]
    quota = document["quota"]
    period = "per calendar month" if quota["period"] == "month" else "in total"
    duration = (
        "perpetual" if document["duration_days"] is None
        else f"{document['duration_days']} days from activation"
    )
    lines = [
        "IMPRINT MODEL LICENCE",
        f"Licence: {document['licence_id']}" + (f" · terms {sha256}" if sha256 else ""),
        "",
        f"1. Permitted uses: {', '.join(uses)}. Any other use is not licensed.",
        (f"2. Generated samples {_yes_no(document['samples']['publish'])} be published and "
        f"{_yes_no(document['samples']['resell'])} be resold."),
        "3. Attribution: " + (f'"{document["attribution"]}" must accompany published samples.'
                              if document["attribution"] else "none required."),
        (f"4. Quota: {quota['tokens']:,} tokens {period}; at most "
        f"{document['rate_limit_per_minute']} requests per minute."),
        f"5. Duration: {duration}.",
        "6. Use restrictions: " + ("none beyond the above." if not document["restrictions"] else ""),
    ]
    lines += [f"   - {r}" for r in document["restrictions"]]
    if "ownership" in document:  # schema 1 terms stated no ownership and no chain: rendered as they were
        lines += _rights_lines(document, 7)
    lines += ["", "The licensee gets generation through the Imprint API, not the model weights."]
    return "\n".join(lines) + "\n"
