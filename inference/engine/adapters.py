"""LoRA adapters served on a resident base: loaded from peft folders into small fp32 matrices, and
applied per row inside the lean forward, so one batch holds rows of different adapters and rows of
the bare base (the S-LoRA / Punica idea, on torch's batched matmuls).

For a GPT-2 projection y = x @ W + b (Conv1D, W stored [in, out]) an adapter adds
(x @ A) @ B * scale, with A [in, r] and B [r, out] (peft stores lora_A [r, in] and lora_B [out, r];
`fan_in_fan_out` only says how the base weight is laid out). The base weights are never touched, so
the base serves every adapter at once, at any precision (an int8 base with fp32 adapters). The scale
is folded into B when loading.

An adapter may also carry new embedding rows for some tokens (peft's trainable tokens, which a small
base needs to learn a dataset's words). GPT-2 ties its output layer to the embedding, so those rows
replace both the embedding of those tokens in the adapter's rows and those tokens' logits, computed
as the base's output layer would compute them (per-channel int8 on an int8 base), so a row equals
its merged model.

A decode step gathers each row's A and B into [rows, in, r] and [rows, r, out] (a row without an
adapter, or whose adapter skips that projection, gathers zeros) and runs two `bmm`s: the gathered
stacks are kept while the batch's rows keep the same adapters, which is most steps. Prefill runs
each prompt's span with its own adapter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from .int8 import Int8Linear

# Our projection names (inference.engine.lean's layer keys) by the GPT-2 module peft adapts.
KINDS = {"attn.c_attn": "qkv", "attn.c_proj": "proj", "mlp.c_fc": "fc", "mlp.c_proj": "out"}
_KEY = re.compile(r"transformer\.h\.(\d+)\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.lora_([AB])\.weight$")
_TOKENS = re.compile(r"transformer\.wte\.token_adapter\.trainable_tokens_delta$")


class AdapterError(ValueError):
    """A folder that is not a LoRA adapter this engine can serve."""


@dataclass
class LoadedAdapter:
    """One adapter in host memory: per (layer, kind), A [in, r] and B [r, out] with the scale folded in."""

    digest: str
    base_digest: str
    r: int
    weights: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    token_ids: torch.Tensor | None = None  # [k] ascending: tokens whose embedding rows the adapter replaces
    token_rows: torch.Tensor | None = None  # [k, d] fp32: their new embedding (and, tied, output) rows
    _heads: dict = field(default_factory=dict, repr=False)

    @cached_property
    def nbytes(self) -> int:
        """Bytes of its tensors (read once it is loaded: they never change after)."""
        tensors = [t for pair in self.weights.values() for t in pair]
        if self.token_rows is not None:
            tensors += [self.token_rows, self.token_ids]
        return sum(t.numel() * t.element_size() for t in tensors)

    def token_logits(self, h: torch.Tensor, precision: str) -> torch.Tensor:
        """The logits of the adapter's tokens for hidden states `h` [rows, d], as the base's output
        layer at `precision` computes a column from its row (int8: quantised per channel, so equal to
        the merged int8 model's)."""
        head = self._heads.get(precision)
        if head is None:
            if precision == "int8":
                head = Int8Linear(self.token_rows.t(), None)
            else:
                rows_t = self.token_rows.t().contiguous()
                head = lambda x: x @ rows_t.to(device=x.device, dtype=x.dtype)  # noqa: E731
            self._heads[precision] = head
        return head(h)


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
    token_rows = None
    for name, tensor in tensors.items():
        if _TOKENS.search(name):
            token_rows = tensor.float()
            continue
        match = _KEY.search(name)
        if match is None:
            raise AdapterError(f"unexpected tensor {name}")
        pairs.setdefault((int(match.group(1)), KINDS[match.group(2)]), {})[match.group(3)] = tensor
    loaded = LoadedAdapter(digest=digest, base_digest=base_digest, r=r)
    if token_rows is not None:
        loaded.token_ids, loaded.token_rows = _token_ids(config, token_rows), token_rows.to(device) if device else token_rows
    for key, pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise AdapterError(f"layer {key} lacks one of its matrices")
        a = pair["A"].float().t().contiguous()  # [in, r]
        b = (pair["B"].float().t() * scale).contiguous()  # [r, out]
        loaded.weights[key] = (a.to(device) if device else a, b.to(device) if device else b)
    return loaded


def _token_ids(config: dict, rows: torch.Tensor) -> torch.Tensor:
    """The ids of an adapter's trainable token rows (peft writes them as a list for the input
    embedding, or by module name), checked against the rows and made ascending as the rows are."""
    given = config.get("trainable_token_indices")
    ids = given.get("wte") if isinstance(given, dict) else given
    if not isinstance(ids, list) or len(ids) != rows.shape[0] or (isinstance(given, dict) and set(given) != {"wte"}):
        raise AdapterError(f"trainable tokens that do not match their rows: {given!r}")
    ids_t = torch.tensor(ids, dtype=torch.long)
    if not bool((ids_t[1:] > ids_t[:-1]).all()):
        raise AdapterError("trainable token ids must be distinct and ascending")
    return ids_t


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

    def _segments(self, per_prompt: bool = False) -> list[tuple[int, int]]:
        """Each adapter's rows: its span of a packed prefill, else one row each."""
        if self.spans is not None and not per_prompt:
            return self.spans
        return [(i, i + 1) for i in range(len(self.adapters))]

    def _with_tokens(self, per_prompt: bool = False):
        for adapter, (start, end) in zip(self.adapters, self._segments(per_prompt)):
            if adapter is not None and adapter.token_ids is not None:
                yield adapter, start, end

    def embed(self, ids: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """`emb` (the base's embedding of `ids`) with each adapter's own rows for its tokens."""
        for adapter, start, end in self._with_tokens():
            seg, known = ids[start:end], adapter.token_ids.to(ids.device)
            at = torch.searchsorted(known, seg).clamp_max_(len(known) - 1)
            hit = known[at] == seg
            if bool(hit.any()):
                emb[start:end][hit] = adapter.token_rows[at[hit]].to(device=emb.device, dtype=emb.dtype)
        return emb

    def logits(self, h: torch.Tensor, y: torch.Tensor, precision: str, *, per_prompt: bool = False) -> torch.Tensor:
        """`y` (the base's logits for `h`) with each adapter's tokens' logits from its own rows.
        `per_prompt`: `h` holds one row per prompt of a prefill (its last position)."""
        for adapter, start, end in self._with_tokens(per_prompt):
            y[start:end, adapter.token_ids.to(y.device)] = adapter.token_logits(h[start:end], precision).to(y.dtype)
        return y

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
