"""LoRA adapters served on a resident base: loaded from peft folders into small fp32 matrices, and
applied per row inside the lean forward, so one batch holds rows of different adapters and rows of
the bare base (the S-LoRA / Punica idea, on torch's batched matmuls).

For a GPT-2 projection y = x @ W + b (Conv1D, W stored [in, out]) an adapter adds
(x @ A) @ B * scale, with A [in, r] and B [r, out] (peft stores lora_A [r, in] and lora_B [out, r];
`fan_in_fan_out` only says how the base weight is laid out). The base weights are never touched, so
the base serves every adapter at once, at any precision (an int8 base with fp32 adapters). The scale
is folded into B when loading.

A decode step gathers each row's A and B into [rows, in, r] and [rows, r, out] (a row without an
adapter, or whose adapter skips that projection, gathers zeros) and runs two `bmm`s: the gathered
stacks are kept while the batch's rows keep the same adapters, which is most steps. Prefill runs
each prompt's span with its own adapter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

# Our projection names (inference.engine.lean's layer keys) by the GPT-2 module peft adapts.
KINDS = {"attn.c_attn": "qkv", "attn.c_proj": "proj", "mlp.c_fc": "fc", "mlp.c_proj": "out"}
_KEY = re.compile(r"transformer\.h\.(\d+)\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.lora_([AB])\.weight$")


class AdapterError(ValueError):
    """A folder that is not a LoRA adapter this engine can serve."""


@dataclass
class LoadedAdapter:
    """One adapter in host memory: per (layer, kind), A [in, r] and B [r, out] with the scale folded in."""

    digest: str
    base_digest: str
    r: int
    weights: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(a.numel() * a.element_size() + b.numel() * b.element_size() for a, b in self.weights.values())


def adapter_load(folder: Path, *, digest: str, base_digest: str, device: torch.device | None = None) -> LoadedAdapter:
    """Read a peft LoRA folder (`adapter_config.json`, `adapter_model.safetensors`). Raises
    AdapterError for settings the engine does not serve (DoRA, rsLoRA scaling, per-module ranks,
    bias training) or weights that are not GPT-2 projection adapters."""
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        config = json.loads((folder / "adapter_config.json").read_text())
        tensors = load_file(folder / "adapter_model.safetensors")
    except (OSError, ValueError) as exc:
        raise AdapterError(f"not a LoRA adapter folder: {exc}") from exc
    unsupported = [name for name in ("use_dora", "use_rslora") if config.get(name)]
    if config.get("peft_type") != "LORA" or unsupported or config.get("rank_pattern") or config.get("alpha_pattern") \
            or config.get("bias", "none") != "none":
        raise AdapterError(f"unsupported adapter settings: {unsupported or config.get('peft_type')}")
    r = int(config["r"])
    scale = float(config["lora_alpha"]) / r
    pairs: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        match = _KEY.search(name)
        if match is None:
            raise AdapterError(f"unexpected tensor {name}")
        pairs.setdefault((int(match.group(1)), KINDS[match.group(2)]), {})[match.group(3)] = tensor
    loaded = LoadedAdapter(digest=digest, base_digest=base_digest, r=r)
    for key, pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise AdapterError(f"layer {key} lacks one of its matrices")
        a = pair["A"].float().t().contiguous()  # [in, r]
        b = (pair["B"].float().t() * scale).contiguous()  # [r, out]
        loaded.weights[key] = (a.to(device) if device else a, b.to(device) if device else b)
    return loaded


class RowAdapters:
    """The adapters of a step's rows (None: the bare base), applied to each projection's output.

    `spans` (prefill) gives each adapter's token range instead of one row each."""

    def __init__(self, adapters: list[LoadedAdapter | None], spans: list[tuple[int, int]] | None = None):
        self.adapters = adapters
        self.spans = spans
        self._stacks: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor] | None] = {}

    @property
    def any(self) -> bool:
        return any(a is not None for a in self.adapters)

    def key(self) -> tuple:
        return tuple(a.digest if a is not None else None for a in self.adapters)

    def apply(self, layer: int, kind: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """y plus each row's (x @ A) @ B for this projection."""
        if self.spans is not None:
            for adapter, (start, end) in zip(self.adapters, self.spans):
                pair = adapter.weights.get((layer, kind)) if adapter is not None else None
                if pair is not None:
                    a, b = (t.to(x.device) for t in pair)
                    y[start:end] += ((x[start:end].float() @ a) @ b).to(y.dtype)
            return y
        stacks = self._stack(layer, kind, x, y)
        if stacks is None:
            return y
        a, b = stacks
        return y.add_(torch.bmm(torch.bmm(x.float().unsqueeze(1), a), b).squeeze(1).to(y.dtype))

    def _stack(self, layer: int, kind: str, x: torch.Tensor, y: torch.Tensor):
        key = (layer, kind)
        if key not in self._stacks:
            pairs = [a.weights.get(key) if a is not None else None for a in self.adapters]
            if all(p is None for p in pairs):
                self._stacks[key] = None
            else:
                r = max(p[0].shape[1] for p in pairs if p is not None)
                a = x.new_zeros(len(pairs), x.shape[1], r, dtype=torch.float32)
                b = y.new_zeros(len(pairs), r, y.shape[1], dtype=torch.float32)
                for row, pair in enumerate(pairs):
                    if pair is not None:
                        rank = pair[0].shape[1]
                        a[row, :, :rank] = pair[0]
                        b[row, :rank] = pair[1]
                self._stacks[key] = (a, b)
        return self._stacks[key]
