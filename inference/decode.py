"""A lean GPT-2 forward for the engine's decode loop, CPU and CUDA alike.

Why not `model(...)`: one Hugging Face decode step spends ~8 ms of 52 on wrappers, DynamicCache, masks
and a 7-op GELU, and MKL runs each batch-1 GEMV on ONE thread (see /work/shared/PERFORMANCE.md).

- On CUDA the weights are the loaded model's own tensors. On CPU each matrix is also kept split in
  two halves along its output dimension, so that one `baddbmm` runs both halves on both cores
  (a second copy of the weights, ~0.5 GB for GPT-2-small; `extra_bytes`).
- Each row (sample) owns a preallocated KV cache sized to its prompt + max_new_tokens, so rows of
  different lengths join one batch without padding or masks: the matmuls run on all rows at once,
  the attention (a small part of a step) row by row over that row's filled cache only.
- Prefill runs per request (one row, causal attention), its cache copied to the request's n rows;
  logits are computed for the last position only.

`LeanGPT2.supports(model)` says whether a model can use it; others take the generic Hugging Face loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_ACTIVATIONS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}


class _Linear:
    """y = x @ W + b for W in Conv1D layout [in, out].

    On CPU the weight is kept split in two halves along the output dimension ([2, in, out/2]) and
    applied as one `baddbmm`, so that both cores work even at batch 1 (MKL runs a plain GEMV on
    one thread); each half is the same dot products as the full matmul. Measured here (one whole
    GPT-2-small step): batch 1 13.6 ms split everywhere vs 20.4 ms with a plain lm_head and 25 ms
    with plain matmuls everywhere; batch 8 33 ms split vs 49-55 ms plain."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, split: bool):
        self.w, self.b = weight, bias  # [in, out], [out] (views of the model's parameters)
        self.n_in, self.n_out = weight.shape
        self.split = split
        if not split:
            return
        half = (self.n_out + 1) // 2
        pad = 2 * half - self.n_out
        w = F.pad(weight, (0, pad)) if pad else weight
        b = bias if bias is not None else torch.zeros(self.n_out, dtype=weight.dtype, device=weight.device)
        b = F.pad(b, (0, pad)) if pad else b
        self.b2 = b.reshape(2, 1, half).contiguous()
        self.w2 = w.reshape(self.n_in, 2, half).permute(1, 0, 2).contiguous()  # [2, in, half]

    @property
    def extra_bytes(self) -> int:
        return self.w2.numel() * self.w2.element_size() if self.split else 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.split:
            rows = x.shape[0]
            y = torch.baddbmm(self.b2, x.expand(2, rows, self.n_in), self.w2)  # [2, rows, half]
            y = y.reshape(rows, -1) if rows == 1 else y.transpose(0, 1).reshape(rows, -1)
            return y[:, :self.n_out] if y.shape[1] != self.n_out else y
        return torch.addmm(self.b, x, self.w) if self.b is not None else x @ self.w


class RowCache:
    """One row's keys and values: [layers, heads, capacity, head_dim] each, filled up to `length`."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor, length: int):
        self.k, self.v, self.length = k, v, length

    def copy(self) -> RowCache:
        return RowCache(self.k.clone(), self.v.clone(), self.length)


class LeanGPT2:
    """Prefill and batched decode steps for a loaded GPT-2 (`GPT2LMHeadModel`)."""

    @staticmethod
    def supports(model: torch.nn.Module) -> bool:
        config = getattr(model, "config", None)
        return (
            config is not None and getattr(config, "model_type", None) == "gpt2"
            and getattr(config, "activation_function", "gelu_new") in _ACTIVATIONS
            and getattr(config, "scale_attn_weights", True)
            and not getattr(config, "scale_attn_by_inverse_layer_idx", False)
            and not getattr(config, "reorder_and_upcast_attn", False)
            and not getattr(config, "add_cross_attention", False)
        )

    def __init__(self, model: torch.nn.Module):
        config = model.config
        self.device = model.lm_head.weight.device
        split = self.device.type == "cpu"
        t = model.transformer
        self.wte, self.wpe = t.wte.weight, t.wpe.weight
        self.n_head = config.n_head
        self.d = config.n_embd
        self.hd = self.d // self.n_head
        self.eps = config.layer_norm_epsilon
        self.gelu = _ACTIVATIONS[getattr(config, "activation_function", "gelu_new")]
        self.dtype = self.wte.dtype
        self.layers = []
        for block in t.h:
            self.layers.append({
                "ln1": (block.ln_1.weight, block.ln_1.bias), "ln2": (block.ln_2.weight, block.ln_2.bias),
                "qkv": _Linear(block.attn.c_attn.weight, block.attn.c_attn.bias, split=split),
                "proj": _Linear(block.attn.c_proj.weight, block.attn.c_proj.bias, split=split),
                "fc": _Linear(block.mlp.c_fc.weight, block.mlp.c_fc.bias, split=split),
                "out": _Linear(block.mlp.c_proj.weight, block.mlp.c_proj.bias, split=split),
            })
        self.ln_f = (t.ln_f.weight, t.ln_f.bias)
        self.lm_head = _Linear(model.lm_head.weight.t(), None, split=split)
        self.n_layer = len(self.layers)
        self.extra_bytes = sum(  # the split copies kept for batch 1
            lin.extra_bytes for lin in [*(lay[k] for lay in self.layers for k in ("qkv", "proj", "fc", "out")),
                                        self.lm_head])

    def _ln(self, x, params):
        return F.layer_norm(x, (self.d,), params[0], params[1], self.eps)

    def _mlp(self, layer, x):
        h = layer["fc"](self._ln(x, layer["ln2"]))
        return x + layer["out"](F.gelu(h, approximate=self.gelu))

    def new_cache(self, capacity: int) -> RowCache:
        shape = (self.n_layer, self.n_head, capacity, self.hd)
        return RowCache(torch.empty(shape, dtype=self.dtype, device=self.device),
                        torch.empty(shape, dtype=self.dtype, device=self.device), 0)

    def prefill(self, ids: list[int], capacity: int) -> tuple[torch.Tensor, RowCache]:
        """Run the prompt; returns (logits of the last position [vocab], the filled cache)."""
        cache = self.new_cache(capacity)
        n = len(ids)
        x = self.wte[torch.tensor(ids, device=self.device)] + self.wpe[:n]
        for li, layer in enumerate(self.layers):
            qkv = layer["qkv"](self._ln(x, layer["ln1"]))  # [n, 3d]
            q, k, v = qkv.view(n, 3, self.n_head, self.hd).permute(1, 2, 0, 3)  # each [h, n, hd]
            cache.k[li, :, :n] = k
            cache.v[li, :, :n] = v
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [h, n, hd]
            x = x + layer["proj"](a.transpose(0, 1).reshape(n, self.d))
            x = self._mlp(layer, x)
        cache.length = n
        last = self._ln(x[-1:], self.ln_f)
        return self.lm_head(last)[0], cache

    def step(self, token_ids: list[int], caches: list[RowCache]) -> torch.Tensor:
        """One decode step for rows of any lengths: appends each token to its row's cache, returns the
        next-token logits [rows, vocab]."""
        rows = len(token_ids)
        positions = torch.tensor([c.length for c in caches], device=self.device)
        x = self.wte[torch.tensor(token_ids, device=self.device)] + self.wpe[positions]
        for li, layer in enumerate(self.layers):
            qkv = layer["qkv"](self._ln(x, layer["ln1"]))
            q, k, v = qkv.view(rows, 3, self.n_head, self.hd).unbind(1)  # each [rows, h, hd]
            outs = []
            for r, cache in enumerate(caches):
                pos = cache.length
                cache.k[li, :, pos] = k[r]
                cache.v[li, :, pos] = v[r]
                outs.append(F.scaled_dot_product_attention(
                    q[r].unsqueeze(1), cache.k[li, :, :pos + 1], cache.v[li, :, :pos + 1]))  # [h, 1, hd]
            a = torch.stack(outs).reshape(rows, self.d) if rows > 1 else outs[0].reshape(1, self.d)
            x = x + layer["proj"](a)
            x = self._mlp(layer, x)
        for cache in caches:
            cache.length += 1
        return self.lm_head(self._ln(x, self.ln_f))
