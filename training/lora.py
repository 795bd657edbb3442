"""LoRA fine-tuning with peft: the frozen base wrapped with low-rank adapters before the loop runs,
and the adapter folders it saves (checkpoints and final model alike).

The training loop stays one loop for both methods: it asks here which folder holds the starting
weights (`weights_source`), wraps what it loaded (`model_prepare`) and saves whatever it trains with
`save_pretrained`, which for a peft model writes the adapter only (`adapter_config.json` +
`adapter_model.safetensors`); its optimizer holds the adapter's parameters only, so a checkpoint is
the adapter and its optimizer state. No Django here.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .config import TrainConfig

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def is_adapter_folder(folder: Path | str | None) -> bool:
    return folder is not None and (Path(folder) / ADAPTER_CONFIG).is_file()


def weights_source(*, resume_from: Path | None, model_path: str | Path) -> str | Path:
    """The folder (or hub name) whose full weights the run loads: the checkpoint when resuming a full
    fine-tune, the base itself for a LoRA run (its checkpoints hold the adapter only)."""
    if resume_from is None or is_adapter_folder(resume_from):
        return model_path
    return resume_from


def trained_tokens(config: TrainConfig, train_windows: torch.Tensor) -> list[int]:
    """The token ids whose embedding rows a LoRA run trains: the `lora_token_embeddings` most frequent
    in the training windows (ties by id), in ascending order; none for a full run."""
    if not config.is_lora or config.lora_token_embeddings == 0 or train_windows.numel() == 0:
        return []
    counts = torch.bincount(train_windows.reshape(-1).long())
    present = torch.nonzero(counts).squeeze(1)
    # Most frequent first, the lower id first among equals: a stable sort of ids by descending count.
    order = torch.sort(counts[present], descending=True, stable=True).indices
    return sorted(present[order[: config.lora_token_embeddings]].tolist())


def lora_config(config: TrainConfig, token_ids: list[int] | None = None):
    from peft import LoraConfig

    # GPT-2's projections are transformers' Conv1D (weights stored [in, out]): fan_in_fan_out says so.
    # peft's trainable tokens keep new rows for `token_ids` beside the frozen embedding (and, GPT-2's
    # output layer being tied to it, for those logits too); the adapter stores the rows and the ids.
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.lora_targets(), fan_in_fan_out=True, bias="none",
                      task_type="CAUSAL_LM", trainable_token_indices={"wte": token_ids} if token_ids else None)


def model_prepare(model: torch.nn.Module, config: TrainConfig, *, resume_from: Path | None,
                  init_seed: int, token_ids: list[int] | None = None) -> torch.nn.Module:
    """`model` as the run trains it: unchanged for a full fine-tune; for LoRA, frozen and wrapped
    with adapters (and trainable rows for `token_ids`), loaded from `resume_from` when it is an
    adapter checkpoint, else initialised from `init_seed` (peft draws A at random and sets B to
    zero, and the token rows start as the base's, so the run starts at the base)."""
    if not config.is_lora:
        return model
    from peft import PeftModel, get_peft_model

    if is_adapter_folder(resume_from):
        return PeftModel.from_pretrained(model, resume_from, is_trainable=True)
    with torch.random.fork_rng(devices=[]):  # the run's own RNG stream stays as a full run's
        torch.manual_seed(init_seed)
        return get_peft_model(model, lora_config(config, token_ids))


def adapter_base_name_set(folder: Path, base_name: str) -> None:
    """Name the base in a saved adapter's config by its Imprint name (peft writes the local path the
    run loaded it from, meaningless elsewhere)."""
    path = Path(folder) / ADAPTER_CONFIG
    data = json.loads(path.read_text())
    data["base_model_name_or_path"] = base_name
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
