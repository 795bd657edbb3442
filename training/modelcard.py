"""The README.md of a trained model: Hugging Face Hub model-card metadata plus a readable account of
what it was trained on, how, how well, and how much of its output is copied from its data."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from core.markdown_cards import CardInvalid, front_matter_load, section_markers

from .base_models import BASE_MODELS
from .config import TrainConfig

SAMPLE_QUOTE_CHARS = 1000  # long samples are cut so the card stays readable
LICENCE_KEYS = ("license", "license_name", "license_link")
# The licence section is regenerated whenever what is sold changes; the markers find it again in a
# card the trainer edited (HTML comments: a Hub renderer hides them, and so does core.markdown_cards).
_SECTION_START, _SECTION_END = section_markers("licence")
_SECTION = re.compile(re.escape(_SECTION_START) + r".*?" + re.escape(_SECTION_END), re.DOTALL)
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)


def render_model_card(
    *,
    name: str,
    base_model: str,
    base_licence: str,
    dataset_name: str,
    dataset_digest: str,
    dataset_licence: str,
    metrics: Mapping[str, float],
    params: int,
    hyperparameters: Mapping[str, Any],
    samples: Sequence[Mapping[str, Any]],
    dataset_rights_holders: Sequence[str] = (),
    adapter: Mapping[str, Any] | None = None,
    data_split: Mapping[str, Any] | None = None,
    selection: str = "",
    warnings: Sequence[Mapping[str, Any]] = (),
) -> str:
    """Markdown with YAML front matter in the Hub's model-card format.

    `adapter` (a LoRA version) is {r, alpha, targets, base_digest}: the card then describes a peft
    adapter of `params` parameters for its base, and says how to load it.

    `metrics` maps metric names (e.g. "val_loss", "perplexity") to numbers; non-finite values
    are written as null in the metadata. `samples` are dicts with step, text, longest_span and
    ngram_share. `dataset_licence` is the licence the dataset was supplied under; the card's
    `license` is `base_licence` since a fine-tune inherits the base model's terms. Raises KeyError
    when a sample lacks one of those keys. The licence section says that nothing is sold yet;
    `card_with_offered_terms` states the terms once offers exist. `data_split` (textdata
    HeldOutSplit.summary) says how many documents and tokens were trained on and held out,
    `selection` why these weights ("step 250 of 400: lowest validation loss 3.210"), `warnings`
    what the run warned of (job_warnings).
    """
    front_matter = _front_matter(name, base_model, base_licence, dataset_name, dataset_licence, metrics,
                                 adapter=adapter is not None)
    sections = [
        f"# {name}",
        (_adapter_description(name, base_model, base_licence, params, adapter) if adapter
         else _description_from_scratch(name, base_model, params) if _from_scratch(base_model)
         else _description(name, base_model, base_licence, params)),
        _training_data(dataset_name, dataset_digest, dataset_licence, data_split or {}),
        _training_procedure(hyperparameters, from_scratch=_from_scratch(base_model), adapter=adapter),
        _evaluation(metrics, selection, warnings),
        _samples(samples),
        _licence_section(base_model, base_licence, dataset_name, dataset_licence, dataset_rights_holders, ()),
        _limitations(from_scratch=_from_scratch(base_model)),
    ]
    return f"---\n{front_matter}---\n\n" + "\n\n".join(sections) + "\n"


def _metadata_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _from_scratch(base_model: str) -> bool:
    """Whether the run started from random weights (the built-in tiny configuration), so that no
    base model's weights, licence or copyright are part of the model."""
    known = BASE_MODELS.get(base_model)
    return bool(known and known.from_scratch)


def _card_licence(base_model: str, base_licence: str, dataset_licence: str) -> dict:
    """The Hub's license fields. When the data's licence differs from the base model's, neither alone
    describes the weights (e.g. MIT base, CC BY-NC data): say "other" and name both. A model trained
    from scratch has only its data's licence."""
    if _from_scratch(base_model) or dataset_licence.lower() == base_licence.lower():
        return {"license": dataset_licence if _from_scratch(base_model) else base_licence}
    return {"license": "other",
            "license_name": f"base model {base_licence}, training data {dataset_licence}; sold under Imprint offers"}


def _front_matter(
    name: str, base_model: str, base_licence: str, dataset_name: str, dataset_licence: str,
    metrics: Mapping[str, float], *, adapter: bool = False,
) -> str:
    results = [
        {
            "task": {"type": "text-generation", "name": "Text generation"},
            "dataset": {"type": dataset_name, "name": dataset_name},
            "metrics": [
                {"type": key, "name": key.replace("_", " "), "value": _metadata_number(value)}
                # The step says which checkpoint was measured; it is no evaluation result.
                for key, value in metrics.items() if key != "step"
            ],
        }
    ]
    scratch = _from_scratch(base_model)
    metadata = {
        "base_model": base_model,  # for a from-scratch model, the configuration it started from
        "datasets": [dataset_name],
        **_card_licence(base_model, base_licence, dataset_licence),
        "library_name": "peft" if adapter else "transformers",
        "pipeline_tag": "text-generation",
        "tags": ["text-generation", "gpt2", "trained-from-scratch" if scratch else "fine-tuned",
                 *(["lora"] if adapter else []), "imprint"],
        "model-index": [{"name": name, "results": results}],
    }
    # sort_keys=False keeps the Hub's conventional order; allow_unicode keeps names readable.
    return yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)


def _licence_section(base_model: str, base_licence: str, dataset_name: str, dataset_licence: str,
                     rights_holders: Sequence[str], offers: Sequence[Mapping[str, Any]]) -> str:
    if offers:
        sold = ["Sold on Imprint under these licence terms (the customer gets generation, not the weights):\n"]
        sold += [f"- **{_cell(o['name'])}**: [terms {o['terms_id'][:12]}]({o['url']}) · uses: "
                 f"{', '.join(o['uses'])} · outputs owned: {o['ownership'] or 'not stated'}" for o in offers]
    else:
        sold = ["Not offered for sale yet."]
    holders = ", ".join(rights_holders) or "not declared"
    base = (f"- Base model: none, trained from scratch (`{base_model}` is Imprint's built-in GPT-2 "
            "configuration; no weights inherited)" if _from_scratch(base_model)
            else f"- Base model: `{base_model}`, licensed {base_licence}")
    return (
        "## Licence\n\n" + _SECTION_START + "\n" + "\n".join(sold) + "\n\n"
        f"{base}\n"
        f"- Training data: {dataset_name}, licensed {dataset_licence}; rights-holders: {holders}\n"
        + _SECTION_END
    )


def card_with_offered_terms(
    card: str, *, offers: Sequence[Mapping[str, Any]], listing_url: str, base_model: str, base_licence: str,
    dataset_name: str, dataset_licence: str, dataset_rights_holders: Sequence[str] = (),
) -> str:
    """The card with its licence metadata and section stating the terms actually sold, in the Hub's
    convention: `license: other`, `license_name` and `license_link` to the public terms (one offer)
    or to the listing that shows every offer's terms. `offers` are dicts with name, terms_id, url,
    uses and ownership; none (all withdrawn) gives back the base and data licences. Whatever else
    the trainer wrote stays as it is."""
    metadata, body = _split_front_matter(card)
    if not offers:
        licence = _card_licence(base_model, base_licence, dataset_licence)
    elif len(offers) == 1:
        licence = {"license": "other", "license_name": f"imprint-terms-{offers[0]['terms_id'][:12]}",
                   "license_link": offers[0]["url"]}
    else:
        licence = {"license": "other", "license_name": "imprint-offers", "license_link": listing_url}
    section = _licence_section(base_model, base_licence, dataset_name, dataset_licence, dataset_rights_holders,
                               offers)
    if _SECTION.search(body):
        body = _SECTION.sub(lambda _m: section.split("\n\n", 1)[1], body, count=1)
    else:
        body = body.rstrip("\n") + "\n\n" + section + "\n"
    return "---\n" + yaml.safe_dump(_with_licence(metadata, licence), sort_keys=False, allow_unicode=True) + "---\n" + body


def _split_front_matter(card: str) -> tuple[dict, str]:
    """(metadata, body). A card without front matter, or with front matter that is not a YAML
    mapping or that front_matter_load refuses (aliases, say), gets a fresh one (the broken text
    stays in the body for the trainer to see, where it is only text)."""
    match = _FRONT_MATTER.match(card)
    if match is None:
        return {}, "\n" + card.lstrip("\n")
    try:
        metadata = front_matter_load(match.group(1))
    except (CardInvalid, yaml.YAMLError):
        metadata = None
    if not isinstance(metadata, dict):
        return {}, "\n" + card
    return metadata, card[match.end():]


def _with_licence(metadata: dict, licence: dict) -> dict:
    # The Hub shows the licence next to the base model and datasets: keep it where it was.
    out, placed = {}, False
    for key, value in metadata.items():
        if key in LICENCE_KEYS:
            continue
        out[key] = value
        if key == "datasets":
            out.update(licence)
            placed = True
    return out if placed else {**licence, **out}


def _description(name: str, base_model: str, base_licence: str, params: int) -> str:
    return (
        "## Model description\n\n"
        f"`{name}` is a causal language model fine-tuned from `{base_model}` "
        f"({params:,} parameters) with Imprint. It continues text in the style of its training "
        f"data. The base model's licence ({base_licence}) applies to these weights."
    )


def _adapter_description(name: str, base_model: str, base_licence: str, params: int,
                         adapter: Mapping[str, Any]) -> str:
    licence = ("" if _from_scratch(base_model)
               else f" The base model's licence ({base_licence}) applies to the adapted model.")
    return (
        "## Model description\n\n"
        f"`{name}` is a LoRA adapter (peft) for `{base_model}` (base digest `{adapter['base_digest'][:12]}`): "
        f"{params:,} trained parameters, rank {adapter['r']}, alpha {adapter['alpha']:g}, on "
        f"{', '.join(adapter['targets'])}; the base's weights stay as they are.{licence}\n\n"
        "Load it with the libraries alone: `PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("
        "<base folder>), <this folder>)`."
    )


def _description_from_scratch(name: str, base_model: str, params: int) -> str:
    return (
        "## Model description\n\n"
        f"`{name}` is a causal language model trained from scratch with Imprint ({params:,} parameters, "
        f"the GPT-2 architecture in Imprint's built-in `{base_model}` configuration, with a tokenizer "
        "trained on the same data). It continues text in the style of its training data. It inherits no "
        "weights, so no base model's licence or copyright applies: its terms follow its training data's."
    )


def _training_data(dataset_name: str, dataset_digest: str, dataset_licence: str,
                   split: Mapping[str, Any]) -> str:
    return (
        "## Training data\n\n"
        f"- Dataset: {dataset_name}\n"
        f"- Content digest (SHA-256): `{dataset_digest}`\n"
        f"- Licence: {dataset_licence}\n\n"
        "Documents were separated by `<|endoftext|>` and encoded with the model's tokenizer. "
        + _split_sentence(split)
    )


def _split_sentence(split: Mapping[str, Any]) -> str:
    if not split:
        return "A share of the data was held out for validation."
    if split.get("rule") == "single_document_tail":
        return (f"The dataset is a single document: its first {split['train_tokens']:,} tokens were trained on "
                f"and its last {split['val_tokens']:,} held out for validation, each cut into its own windows.")
    def documents(n: int) -> str:
        return f"{n:,} document{'' if n == 1 else 's'}"

    return (f"Whole documents were held out for validation: {documents(split['train_documents'])} "
            f"({split['train_tokens']:,} tokens) were trained on and {documents(split['val_documents'])} "
            f"({split['val_tokens']:,} tokens) held out, each side cut into its own windows, so no "
            "validation text was ever trained on.")


def _training_procedure(hyperparameters: Mapping[str, Any], *, from_scratch: bool = False,
                        adapter: Mapping[str, Any] | None = None) -> str:
    """Every hyperparameter the run trained with (defaults filled in, as the loop saw them) by its
    TrainConfig name, which is what a reader would pass to reproduce it, and its label."""
    rows = "\n".join(f"| {name} | {_cell(value)} | {label} |"
                     for name, label, value in TrainConfig.from_dict(hyperparameters).described())
    if adapter:
        # A LoRA run trains only the adapters: saying "full fine-tuning" would misstate what changed.
        how = (f"LoRA fine-tuning (peft; rank {adapter['r']}, alpha {adapter['alpha']:g}, on "
               f"{', '.join(adapter['targets'])}), the base's weights frozen,")
    else:
        how = "Training from randomly initialised weights" if from_scratch else "Full fine-tuning"
    return (
        "## Training procedure\n\n"
        f"{how} with AdamW and a warmup-then-decay learning-rate schedule.\n\n"
        "### Training hyperparameters\n\n"
        f"| Hyperparameter | Value | Meaning |\n|---|---|---|\n{rows}"
    )


def _evaluation(metrics: Mapping[str, float], selection: str = "",
                warnings: Sequence[Mapping[str, Any]] = ()) -> str:
    chosen = f"These weights are from {selection}.\n\n" if selection else ""
    warned = "".join(f"**Warning:** {w['message']}\n\n" for w in warnings)
    if not metrics:
        return f"## Evaluation\n\n{chosen}{warned}No evaluation results were recorded."
    rows = "\n".join(f"| {key.replace('_', ' ')} | {_number(value)} |" for key, value in metrics.items())
    return (f"## Evaluation\n\n{chosen}{warned}On the held-out validation documents:\n\n"
            f"| Metric | Value |\n|---|---|\n{rows}")


def _samples(samples: Sequence[Mapping[str, Any]]) -> str:
    if not samples:
        return "## Samples\n\nNo samples were recorded."
    intro = (
        "## Samples\n\n"
        "Text generated during training. *Longest verbatim span* is the longest run of sample "
        "tokens found word for word in the training data; *8-gram overlap* is the share of the "
        "sample's 8-token sequences that occur in the training data."
    )
    parts = [intro]
    for sample in samples:
        parts.append(
            f"### Step {sample['step']}\n\n{_quoted_sample(str(sample['text']))}\n\n"
            f"Longest verbatim span: {sample['longest_span']} tokens · "
            f"8-gram overlap: {float(sample['ngram_share']):.1%}"
        )
    return "\n\n".join(parts)


def _quoted_sample(text: str) -> str:
    """The sample as a quoted, fenced block: generated text keeps its line breaks (a poem stays a
    poem, on the Hub too) and is never read as Markdown. The fence is longer than any run of
    backticks in the text, so the text cannot close it."""
    text = text[:SAMPLE_QUOTE_CHARS]
    if not text.strip():
        return "> (empty)"
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    lines = [fence + "text", *text.splitlines(), fence]
    return "\n".join(f"> {line}" if line else ">" for line in lines)


def _limitations(*, from_scratch: bool = False) -> str:
    sources = "its training data" if from_scratch else "its training data and of the base model"
    return (
        "## Limitations\n\n"
        f"- The model reproduces the style, topics and biases of {sources}; it can state falsehoods fluently.\n"
        "- It can repeat passages of its training data verbatim; check the memorisation figures "
        "above before publishing its output.\n"
        "- It was evaluated only by loss on held-out text from the same dataset, not on any "
        "benchmark or for safety."
    )


def _number(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _cell(value: Any) -> str:
    """A table cell: pipes escaped so free text cannot break the table."""
    return str(value).replace("|", "\\|").replace("\n", " ")
