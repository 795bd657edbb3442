"""LoRA fine-tuning in the training loop: adapters only are trained and saved, and a paused run
resumes bit for bit from an adapter-only checkpoint, as full fine-tunes do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.inference.conftest import quick_train
from tests.support.adapters import TOKEN_ROWS
from tests.training.conftest import CONTEXT
from tests.training.test_loop import Recorder
from training.config import HyperparameterError, TrainConfig
from training.loop import list_checkpoints, run_training
from training.lora import trained_tokens
from training.tiny import build_tiny_model


@pytest.fixture(scope="session")
def pretrained_dir(tmp_path_factory, corpus) -> Path:
    """A "pretrained" tiny base: the tiny GPT-2 trained for some steps, saved as a model folder."""
    folder = build_tiny_model(tmp_path_factory.mktemp("pretrained") / "model", corpus)
    return quick_train(folder, corpus, steps=40)


def _lora(**overrides) -> TrainConfig:
    settings = {"steps": 12, "batch_size": 4, "context_length": CONTEXT, "sample_every": 4, "checkpoint_every": 4,
                "sample_max_new_tokens": 8, "method": "lora", "lora_r": 4, "learning_rate": 5e-3}
    return TrainConfig(**(settings | overrides))


def _run(base: Path, windows, work: Path, config: TrainConfig, callbacks=None, resume_from=None):
    train, val = windows
    return run_training(model_path=base, train_windows=train, val_windows=val, config=config, callbacks=callbacks,
                        work_dir=work, device="cpu", resume_from=resume_from)


def test_a_lora_run_trains_and_saves_only_the_adapter(pretrained_dir, windows, tmp_path):
    recorder = Recorder()
    result = _run(pretrained_dir, windows, tmp_path, _lora(), recorder)
    assert result.status == "succeeded"
    files = {p.name for p in result.output_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= files
    assert "model.safetensors" not in files
    adapter = load_file(result.output_dir / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter if name != TOKEN_ROWS)
    config = json.loads((result.output_dir / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["fan_in_fan_out"] is True
    # ... and new embedding rows for the data's most frequent tokens, at most lora_token_embeddings
    ids = config["trainable_token_indices"]["wte"]
    assert ids == trained_tokens(_lora(), windows[0]) and len(ids) == min(1024, len(windows[0].unique()))
    base_rows = load_file(pretrained_dir / "model.safetensors")["transformer.wte.weight"][ids]
    assert adapter[TOKEN_ROWS].shape == base_rows.shape and not torch.equal(adapter[TOKEN_ROWS], base_rows)
    assert sorted(config["target_modules"]) == sorted(["c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"])
    # live samples and evaluations as for a full run, and the adapter learnt something
    assert [step for step, *_ in recorder.evals] == [4, 8, 12] and recorder.samples
    assert recorder.evals[-1][1] < recorder.evals[0][1]


def test_checkpoints_hold_the_adapter_and_its_optimizer_state_only(pretrained_dir, windows, tmp_path):
    _run(pretrained_dir, windows, tmp_path, _lora(steps=8))
    checkpoint = list_checkpoints(tmp_path)[-1]
    names = {p.name for p in checkpoint.iterdir()}
    assert {"adapter_model.safetensors", "optimizer.pt", "rng.pt", "trainer_state.json"} <= names
    assert "model.safetensors" not in names
    optimizer = torch.load(checkpoint / "optimizer.pt", weights_only=True)
    adapter = load_file(checkpoint / "adapter_model.safetensors")
    assert len(optimizer["state"]) == len(adapter)  # moments of the adapter's tensors, nothing of the base


def test_a_paused_lora_run_resumes_bit_for_bit(pretrained_dir, windows, tmp_path):
    whole = _run(pretrained_dir, windows, tmp_path / "whole", _lora())
    paused = _run(pretrained_dir, windows, tmp_path / "split", _lora(), Recorder({7: "pause"}))
    assert paused.status == "paused" and paused.step == 6
    resumed = _run(pretrained_dir, windows, tmp_path / "split", _lora(), resume_from=paused.checkpoint_dir)
    assert resumed.status == "succeeded" and resumed.step == 12
    a = load_file(whole.output_dir / "adapter_model.safetensors")
    b = load_file(resumed.output_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_ends_a_lora_run(pretrained_dir, windows, tmp_path):
    config = _lora(steps=40, sample_every=2, learning_rate=0.5, early_stopping_patience=1, sample_count=0)
    result = _run(pretrained_dir, windows, tmp_path, config)
    assert result.status == "early_stopped" and result.step < 40
    assert (result.output_dir / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("targets", ["", "c_attn,lm_head", "attn"])
def test_unknown_target_modules_are_refused(targets):
    with pytest.raises(HyperparameterError) as caught:
        TrainConfig.from_dict({"lora_target_modules": targets})
    assert caught.value.field == "lora_target_modules"


def test_method_is_one_of_lora_and_full():
    with pytest.raises(HyperparameterError):
        TrainConfig.from_dict({"method": "qlora"})
    assert TrainConfig.from_dict({}).method is None  # the base's default, resolved when the job is created


def test_the_trained_tokens_are_the_most_frequent_then_the_lowest_ids():
    windows = torch.tensor([[5, 5, 5, 9, 9, 2], [7, 7, 9, 3, 3, 2]])
    assert trained_tokens(_lora(lora_token_embeddings=3), windows) == [2, 5, 9]  # 5 ×3, 9 ×3, then 2 before 3 and 7
    assert trained_tokens(_lora(lora_token_embeddings=0), windows) == []
    assert trained_tokens(_lora(method="full"), windows) == []


def test_token_rows_train_as_peft_computes_them_without_a_new_embedding_matrix(pretrained_dir):
    """The run's token-row forward gives peft's logits and gradients (peft builds the whole embedding
    with the rows replaced; the run replaces only the rows' entries)."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from training.lora import lora_config, model_prepare

    config, ids = _lora(), [3, 5, 7, 11, 40]
    ours = model_prepare(AutoModelForCausalLM.from_pretrained(pretrained_dir), config, resume_from=None,
                         init_seed=1, token_ids=ids)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        peft_own = get_peft_model(AutoModelForCausalLM.from_pretrained(pretrained_dir), lora_config(config, ids))
    for model in (ours, peft_own):
        generator = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for name, param in sorted(model.named_parameters()):
                if param.requires_grad:  # moved off their start, so every path carries a gradient
                    param.add_(torch.randn(param.shape, generator=generator) * 0.05)
        model.eval()
    x = torch.tensor([[3, 9, 5, 40, 2, 7, 1]])
    gradients = []
    for model in (ours, peft_own):
        logits = model(input_ids=x).logits
        logits.logsumexp(-1).sum().backward()
        gradients.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert torch.allclose(ours(input_ids=x).logits, peft_own(input_ids=x).logits, atol=1e-5)
    assert sorted(gradients[0]) == sorted(gradients[1])
    assert all(torch.allclose(gradients[0][n], gradients[1][n], atol=1e-4) for n in gradients[0])


def test_a_lora_run_recomputing_activations_trains_the_same_adapter(pretrained_dir, windows, tmp_path):
    stored = _run(pretrained_dir, windows, tmp_path / "stored", _lora(steps=6))
    recomputed = _run(pretrained_dir, windows, tmp_path / "recomputed", _lora(steps=6, activations="recompute"))
    a = load_file(stored.output_dir / "adapter_model.safetensors")
    b = load_file(recomputed.output_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the saved adapter loads as any other: nothing of the recomputation is stored with it
    config = json.loads((recomputed.output_dir / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"


def test_activations_are_kept_or_recomputed():
    with pytest.raises(HyperparameterError) as refused:
        TrainConfig.from_dict({"activations": "sometimes"})
    assert refused.value.field == "activations" and "keep, recompute" in str(refused.value)
    assert TrainConfig().activations == "keep"
