"""The training loop and the built-in tiny model it trains in demos."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from core.torch_runtime import reuse_freed_memory
from tests.training.conftest import CONTEXT
from training.loop import (
    ResumeMismatch,
    TrainConfig,
    TrainingCallbacks,
    _BatchPlan,
    list_checkpoints,
    run_training,
    use_fused_gelu,
)
from training.tiny import build_tiny_model


class Recorder(TrainingCallbacks):
    """Records every callback; answers control() from a {step_about_to_run: command} script."""

    def __init__(self, commands: dict[int, str] | None = None) -> None:
        self.commands = commands or {}
        self.steps: list[tuple[int, float, float, float]] = []
        self.evals: list[tuple[int, float, float]] = []
        self.samples: list[tuple[int, list[str]]] = []
        self.checkpoints: list[tuple[int, Path]] = []

    def on_step(self, step: int, loss: float, lr: float, tokens_per_second: float) -> None:
        self.steps.append((step, loss, lr, tokens_per_second))

    def on_eval(self, step: int, val_loss: float, perplexity: float) -> None:
        self.evals.append((step, val_loss, perplexity))

    def on_sample(self, step: int, texts: list[str]) -> None:
        self.samples.append((step, texts))

    def on_checkpoint(self, step: int, folder: Path) -> None:
        self.checkpoints.append((step, folder))

    def control(self) -> str | None:
        next_step = self.steps[-1][0] + 1 if self.steps else None
        return self.commands.get(next_step) if next_step is not None else self.commands.get(0)


def _config(**overrides) -> TrainConfig:
    settings = {
        "steps": 12,
        "batch_size": 4,
        "context_length": CONTEXT,
        "sample_every": 4,
        "checkpoint_every": 4,
        "warmup_steps": 2,
        "sample_max_new_tokens": 8,
        "learning_rate": 5e-4,  # the scheduled-rate test's figures; the product default is 1e-3
    }
    return TrainConfig(**(settings | overrides))


def _train(model_dir: Path, windows, work_dir: Path, callbacks=None, **kw):
    train, val = windows
    config = kw.pop("config", None) or _config()
    return run_training(
        model_path=model_dir,
        train_windows=train,
        val_windows=val,
        config=config,
        callbacks=callbacks,
        work_dir=work_dir,
        device="cpu",
        **kw,
    )


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_tiny_model_builds_quickly_and_reloads_with_auto_classes(tmp_path: Path, corpus: list[str]) -> None:
    started = time.perf_counter()
    folder = build_tiny_model(tmp_path / "tiny", corpus)
    assert time.perf_counter() - started < 5
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert (folder / "model.safetensors").exists()
    assert tokenizer.eos_token == tokenizer.pad_token == tokenizer.bos_token == "<|endoftext|>"
    assert model.config.vocab_size == len(tokenizer) and model.config.n_positions == 128
    text = "the quick brown fox<|endoftext|>"
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_training_succeeds_and_lowers_validation_loss(tiny_model_dir: Path, windows, tmp_path: Path) -> None:
    recorder = Recorder()
    result = _train(tiny_model_dir, windows, tmp_path, recorder, config=_config(steps=40, sample_every=10))
    assert result.status == "succeeded" and result.step == 40
    assert [s[0] for s in recorder.steps] == list(range(1, 41))
    assert [e[0] for e in recorder.evals] == [10, 20, 30, 40]
    assert recorder.evals[-1][1] < recorder.evals[0][1]
    assert result.val_loss == recorder.evals[-1][1] and result.train_loss == recorder.steps[-1][1]


def test_steps_report_scheduled_lr_and_throughput(tiny_model_dir: Path, windows, tmp_path: Path) -> None:
    recorder = Recorder()
    _train(tiny_model_dir, windows, tmp_path, recorder, config=_config(steps=6, warmup_steps=2))
    lrs = [s[2] for s in recorder.steps]
    # Linear warmup over 2 steps, then linear decay to 0 at step 6.
    assert lrs == pytest.approx([0.0, 2.5e-4, 5e-4, 3.75e-4, 2.5e-4, 1.25e-4])
    assert all(s[3] > 0 for s in recorder.steps)


def test_eval_reports_perplexity_as_exp_of_loss(tiny_model_dir: Path, windows, tmp_path: Path) -> None:
    recorder = Recorder()
    _train(tiny_model_dir, windows, tmp_path, recorder, config=_config(steps=4))
    ((_, val_loss, perplexity),) = recorder.evals
    assert perplexity == pytest.approx(math.exp(val_loss))


def test_final_model_reloads_and_generates(tiny_model_dir: Path, windows, tmp_path: Path) -> None:
    result = _train(tiny_model_dir, windows, tmp_path)
    files = {p.name for p in result.output_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= files
    assert not {"optimizer.pt", "scheduler.pt", "rng.pt"} & files
    model = AutoModelForCausalLM.from_pretrained(result.output_dir)
    tokenizer = AutoTokenizer.from_pretrained(result.output_dir)
    prompt = tokenizer("the quick", return_tensors="pt")
    output = model.generate(**prompt, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    assert output.shape[1] > prompt["input_ids"].shape[1]


def test_resume_from_checkpoint_matches_uninterrupted_run_bitwise(
    tiny_model_dir: Path, windows, tmp_path: Path
) -> None:
    uninterrupted = _train(tiny_model_dir, windows, tmp_path / "straight")
    paused = _train(tiny_model_dir, windows, tmp_path / "split", Recorder({7: "pause"}))
    recorder = Recorder()
    resumed = _train(tiny_model_dir, windows, tmp_path / "split", recorder, resume_from=paused.checkpoint_dir)
    assert resumed.status == "succeeded" and resumed.step == 12
    assert [s[0] for s in recorder.steps] == list(range(7, 13))  # never recomputes steps <= 6
    straight, split = _weights(uninterrupted.output_dir), _weights(resumed.output_dir)
    assert straight.keys() == split.keys()
    assert all(torch.equal(straight[name], split[name]) for name in straight)
    assert resumed.val_loss == uninterrupted.val_loss


def test_pause_writes_checkpoint_and_stops(tiny_model_dir: Path, windows, tmp_path: Path) -> None:
    recorder = Recorder({6: "pause"})
    result = _train(tiny_model_dir, windows, tmp_path, recorder)
    assert result.status == "paused" and result.step == 5
    assert [s[0] for s in recorder.steps] == [1, 2, 3, 4, 5]
    assert recorder.checkpoints == [
        (4, tmp_path / "checkpoints" / "step-00000004"),
        (5, result.checkpoint_dir),
    ]
    files = {p.name for p in result.checkpoint_dir.iterdir()}
    assert {"model.safetensors", "tokenizer.json", "optimizer.pt", "scheduler.pt", "rng.pt"} <= files
    state = json.loads((result.checkpoint_dir / "trainer_state.json").read_text())
    assert state["step"] == 5 and state["config"]["steps"] == 12
    for name in ("optimizer.pt", "scheduler.pt", "rng.pt"):
        torch.load(result.checkpoint_dir / name, weights_only=True)
    assert result.output_dir is None and not (tmp_path / "final").exists()


def test_pause_right_after_scheduled_checkpoint_reuses_it(
    tiny_model_dir: Path, windows, tmp_path: Path
) -> None:
    recorder = Recorder({5: "pause"})
    result = _train(tiny_model_dir, windows, tmp_path, recorder)
    assert result.step == 4 and [c[0] for c in recorder.checkpoints] == [4]


def test_cancel_stops_without_finishing(tiny_model_dir: Path, windows, tmp_path: Path) -> None:
    recorder = Recorder({3: "cancel"})
    result = _train(tiny_model_dir, windows, tmp_path, recorder)
    assert result.status == "cancelled" and result.step == 2
    assert [s[0] for s in recorder.steps] == [1, 2]
    assert result.output_dir is None and not (tmp_path / "final").exists()
    assert recorder.checkpoints == []


def test_unknown_control_command_is_an_error(tiny_model_dir: Path, windows, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="control"):
        _train(tiny_model_dir, windows, tmp_path, Recorder({0: "stop"}))


def test_only_the_newest_checkpoints_are_kept(tiny_model_dir: Path, windows, tmp_path: Path) -> None:
    recorder = Recorder()
    _train(tiny_model_dir, windows, tmp_path, recorder, config=_config(steps=9, checkpoint_every=2))
    assert [c[0] for c in recorder.checkpoints] == [2, 4, 6, 8]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000006", "step-00000008"]


def test_early_stopping_stops_when_validation_loss_stops_improving(
    tiny_model_dir: Path, windows, tmp_path: Path
) -> None:
    # A min_delta no real improvement can meet: the second evaluation counts as no improvement.
    config = _config(steps=40, early_stopping_patience=1, early_stopping_min_delta=100.0)
    recorder = Recorder()
    result = _train(tiny_model_dir, windows, tmp_path, recorder, config=config)
    assert result.status == "early_stopped" and result.step == 8
    assert [e[0] for e in recorder.evals] == [4, 8]
    # The run ends with the best evaluation's weights (step 4), not the last step's.
    assert (result.best_step, result.best_val_loss) == (4, recorder.evals[0][1])
    best = _weights(tmp_path / "checkpoints" / "step-00000004")
    final = _weights(result.output_dir)
    assert all(torch.equal(best[name], final[name]) for name in best)
    assert not {"optimizer.pt", "trainer_state.json"} & {p.name for p in result.output_dir.iterdir()}


def test_the_best_checkpoint_outlives_pruning(tiny_model_dir: Path, windows, tmp_path: Path) -> None:
    config = _config(steps=16, early_stopping_patience=None, early_stopping_min_delta=100.0, keep_checkpoints=1)
    result = _train(tiny_model_dir, windows, tmp_path, Recorder(), config=config)
    assert result.best_step == 4  # nothing later improves by 100
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000004", "step-00000012"]
    best, final = _weights(tmp_path / "checkpoints" / "step-00000004"), _weights(result.output_dir)
    assert all(torch.equal(best[name], final[name]) for name in best)


def test_micro_batches_accumulate_to_the_whole_batch_and_resume_bitwise(
    tiny_model_dir: Path, windows, tmp_path: Path
) -> None:
    # Without dropout a micro-batch pass sees what the whole batch does (dropout masks are drawn
    # per pass), so the two differ only by the order floats are summed in.
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model.save_pretrained(tmp_path / "model")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "model")
    steps = (Recorder(), Recorder())
    whole = _train(tmp_path / "model", windows, tmp_path / "whole", steps[0], config=_config(steps=3, sample_every=3))
    config = _config(steps=3, sample_every=3, micro_batch_size=1)
    micro = _train(tmp_path / "model", windows, tmp_path / "micro", steps[1], config=config)
    assert math.isclose(steps[0].steps[0][1], steps[1].steps[0][1], rel_tol=1e-5)  # the batch's mean loss
    a, b = _weights(whole.output_dir), _weights(micro.output_dir)
    assert all(torch.allclose(a[name], b[name], atol=2e-3) for name in a)
    paused = _train(tmp_path / "model", windows, tmp_path / "split", Recorder({2: "pause"}), config=config)
    resumed = _train(tmp_path / "model", windows, tmp_path / "split", config=config, resume_from=paused.checkpoint_dir)
    c = _weights(resumed.output_dir)
    assert all(torch.equal(b[name], c[name]) for name in b)


def test_samples_are_seeded_per_step_and_stay_within_positions(
    tiny_model_dir: Path, windows, tmp_path: Path
) -> None:
    long_prompt = "the quick brown fox " * 60  # far more than the model's 128 positions
    config = _config(steps=4, sample_count=2, sample_prompt=long_prompt, sample_max_new_tokens=50)
    first, second = Recorder(), Recorder()
    _train(tiny_model_dir, windows, tmp_path / "a", first, config=config)
    _train(tiny_model_dir, windows, tmp_path / "b", second, config=config)
    assert first.samples == second.samples
    ((step, texts),) = first.samples
    assert step == 4 and len(texts) == 2
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert all(len(tokenizer.encode(text)) <= 1 for text in texts)  # 127 prompt tokens leave 1


def test_resume_refuses_a_checkpoint_with_other_settings(
    tiny_model_dir: Path, windows, tmp_path: Path
) -> None:
    paused = _train(tiny_model_dir, windows, tmp_path, Recorder({3: "pause"}))
    with pytest.raises(ResumeMismatch, match="seed"):
        _train(tiny_model_dir, windows, tmp_path, resume_from=paused.checkpoint_dir, config=_config(seed=7))


def test_batches_are_a_pure_function_of_seed_and_step() -> None:
    plan = _BatchPlan(window_count=10, batch_size=4, seed=42)
    fresh = _BatchPlan(window_count=10, batch_size=4, seed=42)
    assert torch.equal(plan.indices(9), fresh.indices(9))  # no need to replay steps 1-8
    epoch = torch.cat([plan.indices(s) for s in range(1, 6)])[:20]
    assert sorted(epoch[:10].tolist()) == list(range(10)) == sorted(epoch[10:].tolist())
    assert not torch.equal(_BatchPlan(10, 4, seed=43).indices(1), plan.indices(1))


@pytest.mark.parametrize(
    "overrides",
    [{"steps": 0}, {"context_length": 1}, {"lr_schedule": "step"}, {"early_stopping_patience": 0}],
)
def test_config_rejects_values_out_of_range(overrides: dict) -> None:
    with pytest.raises(ValueError):
        _config(**overrides).validate()


def test_windows_must_match_context_length(tiny_model_dir: Path, windows, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="context_length"):
        _train(tiny_model_dir, windows, tmp_path, config=_config(context_length=CONTEXT * 2))


def test_fused_gelu_swap_keeps_the_model_function(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    input_ids = torch.arange(1, 33).unsqueeze(0)
    with torch.inference_mode():
        before = model(input_ids=input_ids).logits
        assert use_fused_gelu(model) == model.config.n_layer
        after = model(input_ids=input_ids).logits
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    assert use_fused_gelu(model) == 0  # nothing left to swap


def test_allocator_tuning_is_idempotent() -> None:
    first = reuse_freed_memory()
    assert reuse_freed_memory() == first


def test_recomputing_activations_trains_the_same_weights_and_a_run_may_switch_on_resume(
    tiny_model_dir: Path, windows, tmp_path: Path
) -> None:
    # Dropout on (the tiny model's default): the recomputed forward replays the same masks.
    stored = _train(tiny_model_dir, windows, tmp_path / "stored", config=_config(steps=6, sample_every=3))
    recorder = Recorder()
    config = _config(steps=6, sample_every=3, activations="recompute")
    recomputed = _train(tiny_model_dir, windows, tmp_path / "recomputed", recorder, config=config)
    a, b = _weights(stored.output_dir), _weights(recomputed.output_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)
    assert recomputed.val_loss == stored.val_loss and recorder.samples  # evaluation and samples as before
    # Memory, not the trajectory: a run paused keeping activations may resume recomputing them.
    paused = _train(tiny_model_dir, windows, tmp_path / "split", Recorder({4: "pause"}),
                    config=_config(steps=6, sample_every=3))
    resumed = _train(tiny_model_dir, windows, tmp_path / "split", config=config, resume_from=paused.checkpoint_dir)
    c = _weights(resumed.output_dir)
    assert resumed.status == "succeeded" and all(torch.equal(a[name], c[name]) for name in a)
