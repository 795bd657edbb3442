"""Random LoRA adapters for a GPT-2 folder, written as peft writes them, and their merged models.

What an adapter learnt does not matter to serving, only its shape: random A and B (peft starts B at
zero; these are nonzero so each adapter writes differently)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TARGETS = {"attn.c_attn": (1, 3), "attn.c_proj": (1, 1), "mlp.c_fc": (1, 4), "mlp.c_proj": (4, 1)}


TOKEN_ROWS = "base_model.model.transformer.wte.token_adapter.trainable_tokens_delta"


def random_adapter(folder: Path, base_dir: Path, *, seed: int, r: int = 4, alpha: float = 8.0,
                   targets: tuple[str, ...] = tuple(TARGETS), std: float = 0.25, tokens: int = 0) -> Path:
    """An adapter folder for the GPT-2 at `base_dir`, seeded (same seed, same adapter). `tokens`: how
    many token embedding rows it replaces (peft's trainable tokens), chosen at random, each its base
    row moved far enough that greedy choices change."""
    config = json.loads((base_dir / "config.json").read_text())
    d, layers = config["n_embd"], config["n_layer"]
    generator = torch.Generator().manual_seed(seed)
    tensors, token_ids = {}, None
    if tokens:
        wte = load_file(base_dir / "model.safetensors")["transformer.wte.weight"]
        token_ids = sorted(torch.randperm(config["vocab_size"], generator=generator)[:tokens].tolist())
        noise = torch.randn(tokens, d, generator=generator) * wte.std() * 3
        tensors[TOKEN_ROWS] = wte[token_ids] + noise
    for layer in range(layers):
        for module in targets:
            fan_in, fan_out = (m * d for m in TARGETS[module])
            prefix = f"base_model.model.transformer.h.{layer}.{module}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(r, fan_in, generator=generator) * std
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(fan_out, r, generator=generator) * std
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": alpha, "lora_dropout": 0.0,
        "target_modules": list(targets), "fan_in_fan_out": True, "bias": "none",
        "base_model_name_or_path": str(base_dir), "inference_mode": True,
        "trainable_token_indices": {"wte": token_ids} if token_ids else None}))
    return folder


def merged_model(adapter_dir: Path, base_dir: Path, folder: Path) -> Path:
    """The whole model an adapter makes of its base: W + (B @ A)^T * alpha / r in every target
    (GPT-2's Conv1D keeps W as [in, out]) and its token rows in the embedding, as peft's
    merge_and_unload computes it."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    weights = load_file(base_dir / "model.safetensors")
    adapter = load_file(adapter_dir / "adapter_model.safetensors")
    if TOKEN_ROWS in adapter:
        # The new rows replace the embedding's, and so (tied) the output layer's, as peft merges them.
        ids = torch.tensor(config["trainable_token_indices"]["wte"])
        for name in ("transformer.wte.weight", "lm_head.weight"):
            if name in weights:
                weights[name] = weights[name].index_copy(0, ids, adapter[TOKEN_ROWS])
    for name, a in adapter.items():
        if ".lora_A." not in name:
            continue
        b = adapter[name.replace(".lora_A.", ".lora_B.")]
        target = name.removeprefix("base_model.model.").replace(".lora_A.weight", ".weight")
        weights[target] = weights[target] + (b @ a).t() * scale
    shutil.copytree(base_dir, folder, dirs_exist_ok=True)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder
