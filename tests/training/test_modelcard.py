"""The model card written next to a trained model."""

from __future__ import annotations

import math

import yaml

from training.modelcard import render_model_card


def _card(**overrides) -> str:
    arguments = {
        "name": "shakespeare-gpt2",
        "base_model": "openai-community/gpt2",
        "base_licence": "mit",
        "dataset_name": "Sonnets",
        "dataset_digest": "ab" * 32,
        "dataset_licence": "CC-BY-4.0",
        "metrics": {"val_loss": 2.5, "perplexity": math.exp(2.5)},
        "params": 124_439_808,
        "hyperparameters": {"steps": 500, "learning_rate": 5e-4, "sample_prompt": "a | b"},
        "samples": [
            {
                "step": 500,
                "text": "Shall I compare thee\nto a summer's day",
                "longest_span": 7,
                "ngram_share": 0.125,
            }
        ],
    }
    return render_model_card(**(arguments | overrides))


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_front_matter_is_hub_model_card_metadata() -> None:
    meta = _front_matter(_card())
    assert meta["base_model"] == "openai-community/gpt2"
    assert meta["datasets"] == ["Sonnets"]
    # MIT base, CC BY data: neither licence alone describes the weights, so the card names both.
    assert meta["license"] == "other"
    assert "mit" in meta["license_name"] and "CC-BY-4.0" in meta["license_name"]
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "text-generation"
    assert "text-generation" in meta["tags"]
    results = meta["model-index"][0]["results"][0]
    assert meta["model-index"][0]["name"] == "shakespeare-gpt2"
    assert {m["type"]: m["value"] for m in results["metrics"]} == {
        "val_loss": 2.5,
        "perplexity": math.exp(2.5),
    }


def test_card_has_every_section() -> None:
    card = _card()
    for heading in (
        "# shakespeare-gpt2",
        "## Model description",
        "## Training data",
        "## Training procedure",
        "### Training hyperparameters",
        "## Evaluation",
        "## Samples",
        "## Limitations",
    ):
        assert f"\n{heading}\n" in card
    assert "124,439,808 parameters" in card
    assert "ab" * 32 in card and "CC-BY-4.0" in card


def test_samples_show_their_memorisation_figures() -> None:
    card = _card()
    assert "### Step 500" in card
    assert "> Shall I compare thee\n> to a summer's day" in card
    assert "Longest verbatim span: 7 tokens" in card and "8-gram overlap: 12.5%" in card


def test_non_finite_metric_is_null_in_metadata() -> None:
    meta = _front_matter(_card(metrics={"perplexity": math.inf}))
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] is None


def test_pipe_in_a_hyperparameter_does_not_break_the_table() -> None:
    assert "| sample_prompt | a \\| b |" in _card()


def test_card_without_samples_or_metrics_says_so() -> None:
    card = _card(samples=[], metrics={})
    assert "No samples were recorded." in card and "No evaluation results were recorded." in card


def test_the_measured_step_is_no_evaluation_result() -> None:
    meta = _front_matter(_card(metrics={"step": 400, "val_loss": 2.5}))
    assert [m["type"] for m in meta["model-index"][0]["results"][0]["metrics"]] == ["val_loss"]
