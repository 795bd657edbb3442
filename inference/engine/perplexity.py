"""Perplexity of token windows by the engine's own forward: the figure that tells whether a
quantised precision still writes like its fp32 self (inference.precision runs the check)."""

from __future__ import annotations

import torch

from .cache import LoadedModel, lean_for, serving_precision


def windows_perplexity(loaded: LoadedModel, windows: torch.Tensor, *, precision: str, adapter=None) -> float:
    """exp(mean next-token NLL) over token windows [N, T] with the engine's own forward at
    `precision` (what a device serves of it). Logits are taken in fp32; chunks keep them to ~4k
    positions. Raises ValueError for windows of another shape, InvalidGenerationRequest for an
    unknown precision."""
    if windows.dim() != 2 or windows.shape[1] < 2 or len(windows) == 0:
        raise ValueError("windows must be [N, T] token ids with N >= 1 and T >= 2")
    precision = serving_precision(precision, loaded.device)
    lean = lean_for(loaded, precision)
    if lean is None and adapter is not None:
        raise ValueError("LoRA adapters are measured on GPT-2 bases only")
    per_chunk = max(1, 4096 // windows.shape[1])
    total, count = 0.0, 0
    with torch.inference_mode():
        for chunk in windows.to(torch.long).split(per_chunk):
            if lean is None:
                logits = loaded.model(input_ids=chunk.to(loaded.device)).logits
            else:
                prompts = chunk.tolist()
                adapters = [adapter] * len(prompts) if adapter is not None else None
                logits = lean.logits_all(prompts, adapters).view(len(chunk), chunk.shape[1], -1)
            targets = chunk[:, 1:].to(loaded.device)
            total += float(torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"))
            count += targets.numel()
    return float(torch.exp(torch.tensor(total / count)))
