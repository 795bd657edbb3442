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
        return _sparse_token_rows(PeftModel.from_pretrained(model, resume_from, is_trainable=True))
    with torch.random.fork_rng(devices=[]):  # the run's own RNG stream stays as a full run's
        torch.manual_seed(init_seed)
        return _sparse_token_rows(get_peft_model(model, lora_config(config, token_ids)))


def _sparse_token_rows(model: torch.nn.Module) -> torch.nn.Module:
    """Train the token rows without a whole new embedding matrix per step. peft's trainable tokens
    build W' = W with the rows replaced and use it in the embedding and (tied) in the output layer,
    so the backward computes the gradient of all of W' (the output layer's full weight-gradient
    matmul, which a frozen base is meant to skip) to keep a few rows of it. The same values, computed
    as the frozen W's output with the rows' own entries replaced: the embedding of those tokens, and
    those tokens' logits from x @ rows^T. Measured: LoRA with 1,024 token rows ran at 0.97x a full
    fine-tune's tokens/s with peft's forward (bench/lora_training.py --quick)."""
    from peft.tuners.trainable_tokens.layer import TrainableTokensLayer

    for module in model.modules():
        if isinstance(module, TrainableTokensLayer):
            module.forward = _RowsForward(module)
    return model


class _RowsForward:
    """A TrainableTokensLayer's forward for one active adapter, unmerged (else peft's own)."""

    def __init__(self, layer):
        self.layer, self.peft_forward = layer, layer.forward
        self._lookup: dict = {}

    def __call__(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        layer = self.layer
        active = list(layer.active_adapters)
        if layer.disable_adapters or layer.merged or len(active) != 1 or args or kwargs:
            return self.peft_forward(x, *args, **kwargs)
        name = active[0]
        rows = layer.trainable_tokens_delta[name]
        weight = layer.base_layer.weight
        index = self._index(name, weight.device)
        if isinstance(layer.base_layer, torch.nn.Embedding):
            lookup = self._rows_of(name, weight)
            at = lookup[x]
            out = layer.base_layer(x)
            hit = (at >= 0).unsqueeze(-1)
            return torch.where(hit, rows[at.clamp_min(0)].to(out.dtype), out)
        if isinstance(layer.base_layer, torch.nn.Linear):
            out = layer.base_layer(x)
            # In place: the frozen linear's backward needs x and W, not its output, so no copy of
            # the (batch x context x vocabulary) logits is kept.
            return out.index_copy_(-1, index, (x @ rows.t().to(x.dtype)).to(out.dtype))
        return self.peft_forward(x)

    def _index(self, name: str, device) -> torch.Tensor:
        key = ("index", name, device)
        if key not in self._lookup:
            self._lookup[key] = torch.tensor(self.layer.token_indices[name], device=device)
        return self._lookup[key]

    def _rows_of(self, name: str, weight: torch.Tensor) -> torch.Tensor:
        """vocab -> row of the adapter's rows, or -1."""
        key = ("rows", name, weight.device)
        if key not in self._lookup:
            lookup = torch.full((weight.shape[0],), -1, dtype=torch.long, device=weight.device)
            index = self._index(name, weight.device)
            lookup[index] = torch.arange(len(index), device=weight.device)
            self._lookup[key] = lookup
        return self._lookup[key]


def adapter_base_name_set(folder: Path, base_name: str) -> None:
    """Name the base in a saved adapter's config by its Imprint name (peft writes the local path the
    run loaded it from, meaningless elsewhere)."""
    path = Path(folder) / ADAPTER_CONFIG
    data = json.loads(path.read_text())
    data["base_model_name_or_path"] = base_name
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
