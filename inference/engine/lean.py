"""A lean GPT-2 forward for the engine's batched decode, CPU and CUDA alike.

Why not `model(...)`: one Hugging Face decode step spends ~8 ms of 52 on wrappers, DynamicCache, masks
and a 7-op GELU, and MKL runs each batch-1 GEMV on ONE thread.

- On CUDA the weights are the loaded model's own tensors (or bf16 copies). On CPU each fp32 matrix
  is also kept packed for oneDNN and, for the shapes where a start-up timing run finds it faster at
  batch 1, split in two halves for a two-core `baddbmm` (`_Linear`): copies of 0.96 GB for
  GPT-2-small's 0.5 GB (`extra_bytes`); int8 keeps 0.12 GB of int8 weights instead.
- The rows (samples) of a running batch keep their keys and values in one preallocated pool
  (`KVPool`: a slot per row, sized to the longest prompt + max_new_tokens): the matmuls run on all
  rows at once, and attention is ONE call per layer for the whole batch, over the pool's slots with
  a mask that stops each row at its own length (rows of different lengths need no padding copies).
  Measured on GPT-2-small at batch 8: 96 per-row attention calls cost ~7.8 ms of a 29 ms int8 step.
- Prefill runs the prompts of every request that joins a batch in the same step as one forward: the
  matmuls over all their tokens at once, attention causal within each prompt; a request's cache is
  copied to its n rows; logits are computed for the last position of each prompt only.
- Precision (`LeanGPT2(model, precision=...)`): "fp32" is exact (greedy tokens equal
  `model.generate`'s); "int8" quantises every weight matrix per output channel and each row of
  activations by its own absolute maximum, and multiplies in int8 (fbgemm's dynamic-int8 GEMM), ~4×
  less weight memory to read per token; "bf16" (CUDA) keeps bf16 copies of the weights. Embeddings,
  LayerNorms, attention and the KV cache stay in the serving dtype (fp32 on CPU).

`LeanGPT2.supports(model)` says whether a model can use it; others take the generic Hugging Face loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .int8 import Int8Linear
from .types import PRECISIONS

_ACTIVATIONS = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}


def _choose_batch1_kernels(linears: list) -> dict:
    """Pick each weight shape's batch-1 kernel (oneDNN, or the weight split in halves in either
    layout) by a short timing run over ALL the matrices of that shape in turn, as a decode step
    reads them: timing one matrix over and over measures it hot in the CPU caches (7 MB for
    768x2304 fits) and picked oneDNN, which loses 5-10 % per step once every matrix comes from
    memory. Measured cold here: 768x2304 split 288 µs, transposed split 375, oneDNN 412;
    3072x768 transposed split 433, oneDNN 537, split 865. Only the winner's copy is kept."""
    import time

    def timed(group, kernel, x) -> float:
        best = float("inf")
        for _ in range(2):  # the second pass counts: the first one warms the threads up
            start, passes = time.perf_counter(), 0
            while passes < 2 or (time.perf_counter() - start < 0.04 and passes < 50):
                for lin in group:
                    kernel(lin, x)
                passes += 1
            best = min(best, (time.perf_counter() - start) / passes)
        return best

    groups: dict[tuple, list] = {}
    for lin in linears:
        if lin.packed is not None:
            groups.setdefault((lin.n_in, lin.n_out, lin.b is not None), []).append(lin)
    chosen = {}
    for (n_in, n_out, _bias), group in groups.items():
        x = torch.randn(1, n_in, dtype=group[0].w.dtype)
        timings = {"onednn": timed(group, _Linear._onednn, x)}
        kept = None
        for layout in _Linear.HALVES:  # one candidate copy at a time: memory stays at one extra
            for lin in group:
                lin.halves_build(layout)
            timings[layout] = timed(group, _Linear._split, x)
            if kept is None or timings[layout] < timings[kept]:
                kept = layout
            else:
                for lin in group:
                    lin.halves_build(kept)
        best = min(timings, key=timings.get)
        chosen[f"{n_in}x{n_out}"] = best
        for lin in group:
            if best == "onednn":
                lin.halves_drop()
            lin.one = lin._onednn if best == "onednn" else lin._split
    return chosen


class _Linear:
    """y = x @ W + b for W in Conv1D layout [in, out], with the kernel chosen per weight shape.

    On CPU (measured on this 2-core AVX-512 machine, GPT-2-small shapes) MKL runs a plain batch-1
    GEMV on one thread. Split in two halves along the output dimension and applied as one
    `baddbmm`, each half runs on one core (the same dot products as the full matmul): the lm_head at
    batch 1 in 4.3 ms vs 7.7 plain. The halves are kept [2, in, out/2] ("split") or [2, out/2, in]
    ("split_t", read transposed), whichever streams faster for the shape. oneDNN's linear on a
    pre-packed ("reordered") weight wins by 2-3x from batch 8 (lm_head at batch 8: 6.8 ms vs 19.9
    split vs 27.3 plain; 768→3072 at batch 32: 0.84 vs 1.4 ms), so it serves every batch of more
    than one row and prefill. So each shape keeps the packed copy for every batch size, and the
    halves only where a start-up timing run at batch 1 finds them faster
    (`_choose_batch1_kernels`). Elsewhere (CUDA, no oneDNN): a plain addmm."""

    HALVES = ("split", "split_t")

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, *, cpu_kernels: bool):
        self.w, self.b = weight, bias  # [in, out], [out] (views of the model's parameters)
        self.n_in, self.n_out = weight.shape
        self.packed = self.w2 = self.b2 = None
        self.one = self._plain  # the batch-1 kernel
        self.many = self._plain  # the kernel for more rows
        if not cpu_kernels:
            return
        if torch.backends.mkldnn.is_available():
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.t().contiguous(), 8)
            self.one = self.many = self._onednn
        else:
            self.halves_build("split")
            self.one = self._split

    def halves_build(self, layout: str) -> None:
        """Keep the weight as two halves of its output columns, in `layout` (see HALVES)."""
        half = (self.n_out + 1) // 2
        pad = 2 * half - self.n_out
        w = F.pad(self.w, (0, pad)) if pad else self.w
        b = self.b if self.b is not None else torch.zeros(self.n_out, dtype=self.w.dtype, device=self.w.device)
        b = F.pad(b, (0, pad)) if pad else b
        self.w2 = None  # the previous layout's copy goes first
        self.b2 = b.reshape(2, 1, half).contiguous()
        if layout == "split":
            self.w2 = w.reshape(self.n_in, 2, half).permute(1, 0, 2).contiguous()  # [2, in, half]
        else:  # stored [2, half, in], used as its transposed view [2, in, half]
            self.w2 = w.t().reshape(2, half, self.n_in).contiguous().transpose(1, 2)

    def halves_drop(self) -> None:
        self.w2 = self.b2 = None

    @property
    def extra_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.w2, self.packed) if t is not None)

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.b, x, self.w) if self.b is not None else x @ self.w

    def _onednn(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.b, "none", [], "")

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.shape[0]
        y = torch.baddbmm(self.b2, x.expand(2, rows, self.n_in), self.w2)  # [2, rows, half]
        y = y.reshape(rows, -1) if rows == 1 else y.transpose(0, 1).reshape(rows, -1)
        return y[:, :self.n_out] if y.shape[1] != self.n_out else y

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.one(x) if x.shape[0] == 1 else self.many(x)


class RowCache:
    """One row's place in a KVPool: its slot, and how many positions of it are filled."""

    def __init__(self, pool: KVPool, slot: int):
        self.pool, self.slot, self.length = pool, slot, 0

    def copy_to(self, other: RowCache) -> None:
        """Give `other` this row's keys and values (the n samples of a request share its prompt)."""
        n = self.length
        self.pool.k[:, other.slot, :, :n] = self.pool.k[:, self.slot, :, :n]
        self.pool.v[:, other.slot, :, :n] = self.pool.v[:, self.slot, :, :n]
        other.length = n


class KVPool:
    """Keys and values of a batch's rows: [layers, slots, heads, capacity, head_dim] each.

    Slots are handed out lowest first and given back when a request leaves; the pool grows (a new
    tensor, the filled part copied) when a request needs more slots or positions than it has.
    Zero-filled, so that positions a row has not written are finite: attention masks them out, and
    0 x finite stays 0 where -inf weights meet them."""

    def __init__(self, lean: LeanGPT2):
        self.lean = lean
        self.k = self.v = None
        self.slots = self.capacity = 0
        self.free: list[int] = []

    def _grow(self, slots: int, capacity: int) -> None:
        slots, capacity = max(slots, self.slots), max(-(-capacity // 64) * 64, self.capacity)
        lean = self.lean
        shape = (lean.n_layer, slots, lean.n_head, capacity, lean.hd)
        k = torch.zeros(shape, dtype=lean.dtype, device=lean.device)
        v = torch.zeros(shape, dtype=lean.dtype, device=lean.device)
        if self.k is not None:
            k[:, :self.slots, :, :self.capacity] = self.k
            v[:, :self.slots, :, :self.capacity] = self.v
        self.free = sorted(self.free + list(range(self.slots, slots)))
        self.k, self.v, self.slots, self.capacity = k, v, slots, capacity

    def acquire(self, count: int, capacity: int) -> list[RowCache]:
        """`count` empty rows of at least `capacity` positions."""
        if len(self.free) < count or capacity > self.capacity:
            self._grow(self.slots + max(0, count - len(self.free)), capacity)
        taken, self.free = self.free[:count], self.free[count:]
        return [RowCache(self, slot) for slot in taken]

    def release(self, rows: list[RowCache]) -> None:
        self.free = sorted(self.free + [row.slot for row in rows])

    @property
    def in_use(self) -> int:
        return self.slots - len(self.free)


class LeanGPT2:
    """Prefill and batched decode steps for a loaded GPT-2 (`GPT2LMHeadModel`) at one precision."""

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

    def __init__(self, model: torch.nn.Module, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; one of {', '.join(PRECISIONS)}")
        config = model.config
        self.precision = precision
        self.device = model.lm_head.weight.device
        if precision == "int8" and self.device.type != "cpu":
            raise ValueError("int8 serving uses CPU kernels (fbgemm); on CUDA serve bf16")
        if precision == "bf16" and self.device.type != "cuda":
            raise ValueError("bf16 serving needs CUDA (CPUs without bf16 matrix units run it slower than fp32)")
        self.dtype = torch.bfloat16 if precision == "bf16" else model.lm_head.weight.dtype
        copies = []

        def own(tensor: torch.Tensor | None) -> torch.Tensor | None:
            # bf16 serving keeps its own copies (the fp32 model stays loaded for the fp32 reference)
            if tensor is None or tensor.dtype == self.dtype:
                return tensor
            copies.append(tensor.detach().to(self.dtype))
            return copies[-1]

        cpu_kernels = self.device.type == "cpu" and precision == "fp32"
        def linear(weight, bias):
            if precision == "int8":
                return Int8Linear(weight, bias)
            return _Linear(own(weight), own(bias), cpu_kernels=cpu_kernels)

        t = model.transformer
        self.wte, self.wpe = own(t.wte.weight), own(t.wpe.weight)
        self.n_head = config.n_head
        self.d = config.n_embd
        self.hd = self.d // self.n_head
        self.eps = config.layer_norm_epsilon
        self.gelu = _ACTIVATIONS[getattr(config, "activation_function", "gelu_new")]
        self.layers = []
        for block in t.h:
            self.layers.append({
                "ln1": (own(block.ln_1.weight), own(block.ln_1.bias)),
                "ln2": (own(block.ln_2.weight), own(block.ln_2.bias)),
                "qkv": linear(block.attn.c_attn.weight, block.attn.c_attn.bias),
                "proj": linear(block.attn.c_proj.weight, block.attn.c_proj.bias),
                "fc": linear(block.mlp.c_fc.weight, block.mlp.c_fc.bias),
                "out": linear(block.mlp.c_proj.weight, block.mlp.c_proj.bias),
            })
        self.ln_f = (own(t.ln_f.weight), own(t.ln_f.bias))
        self.lm_head = linear(model.lm_head.weight.t(), None)
        self.n_layer = len(self.layers)
        linears = [*(lay[k] for lay in self.layers for k in ("qkv", "proj", "fc", "out")), self.lm_head]
        # the batch-1 kernel per weight shape ("768x2304": "split", "split_t" or "onednn"), for benches
        self.kernels = _choose_batch1_kernels(linears) if cpu_kernels else {}
        # Bytes held beyond the loaded model: packed and split fp32 copies, int8 weights or bf16 copies.
        self.extra_bytes = sum(lin.extra_bytes for lin in linears) + sum(
            c.numel() * c.element_size() for c in copies)

    def _ln(self, x, params):
        return F.layer_norm(x, (self.d,), params[0], params[1], self.eps)

    @staticmethod
    def _linear(layer, kind: str, li: int, x, lora):
        """A projection of layer `li`, plus each row's LoRA delta when the rows carry adapters."""
        y = layer[kind](x)
        return y if lora is None else lora.apply(li, kind, x, y)

    def _mlp(self, layer, x, li: int = 0, lora=None):
        h = self._linear(layer, "fc", li, self._ln(x, layer["ln2"]), lora)
        return x + self._linear(layer, "out", li, F.gelu(h, approximate=self.gelu), lora)

    def new_pool(self) -> KVPool:
        return KVPool(self)

    def _embed(self, prompts: list[list[int]], lora=None) -> torch.Tensor:
        ids = torch.tensor([i for p in prompts for i in p], device=self.device)
        positions = torch.cat([torch.arange(len(p), device=self.device) for p in prompts])
        return self._tokens(ids, lora) + self.wpe[positions]

    def _tokens(self, ids: torch.Tensor, lora) -> torch.Tensor:
        """The token embeddings of `ids`, with the rows' adapters' own rows for their tokens."""
        emb = self.wte[ids]
        return emb if lora is None else lora.embed(ids, emb)

    def _logits(self, h: torch.Tensor, lora, *, per_prompt: bool = False) -> torch.Tensor:
        """The output layer on `h`, with the rows' adapters' tokens' logits from their own rows."""
        y = self.lm_head(h)
        return y if lora is None else lora.logits(h, y, self.precision, per_prompt=per_prompt)

    def _forward_prompts(self, prompts: list[list[int]], caches: list[RowCache] | None, lora=None) -> torch.Tensor:
        """Hidden states after ln_f of every token of `prompts` [tokens, d], packed one prompt after
        the other: the matmuls run over all tokens at once, attention is causal within each prompt.
        Fills `caches` (one per prompt) when given."""
        x = self._embed(prompts, lora)
        spans, start = [], 0
        for p in prompts:
            spans.append((start, start + len(p)))
            start += len(p)
        for li, layer in enumerate(self.layers):
            qkv = self._linear(layer, "qkv", li, self._ln(x, layer["ln1"]), lora)  # [tokens, 3d]
            q, k, v = qkv.view(-1, 3, self.n_head, self.hd).permute(1, 2, 0, 3)  # each [h, tokens, hd]
            outs = []
            for pi, (a, b) in enumerate(spans):
                if caches is not None:
                    caches[pi].pool.k[li, caches[pi].slot, :, :b - a] = k[:, a:b]
                    caches[pi].pool.v[li, caches[pi].slot, :, :b - a] = v[:, a:b]
                # 4-D inputs take SDPA's flash kernel on CPU (3-D ones the math path: 81 vs 144 µs here)
                outs.append(F.scaled_dot_product_attention(q[None, :, a:b], k[None, :, a:b], v[None, :, a:b],
                                                           is_causal=True)[0])
            att = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)  # [h, tokens, hd]
            x = x + self._linear(layer, "proj", li, att.transpose(0, 1).reshape(-1, self.d), lora)
            x = self._mlp(layer, x, li, lora)
        return self._ln(x, self.ln_f)

    def prefill(self, prompts: list[list[int]], caches: list[RowCache], adapters=None) -> torch.Tensor:
        """Run several prompts in one forward, filling one empty row of a pool per prompt; returns
        the logits of each prompt's last position [prompts, vocab]. `adapters`: each prompt's LoRA
        adapter (inference.engine.adapters.LoadedAdapter) or None."""
        lora = _prompt_adapters(prompts, adapters)
        h = self._forward_prompts(prompts, caches, lora)
        for cache, p in zip(caches, prompts):
            cache.length = len(p)
        last = torch.tensor([sum(len(p) for p in prompts[:i + 1]) - 1 for i in range(len(prompts))],
                            device=self.device)
        return self._logits(h[last], lora, per_prompt=True)

    def logits_all(self, prompts: list[list[int]], adapters=None) -> torch.Tensor:
        """Logits of every position of every prompt [tokens, vocab], packed (for perplexity)."""
        lora = _prompt_adapters(prompts, adapters)
        return self._logits(self._forward_prompts(prompts, None, lora), lora)

    def step(self, token_ids: list[int], caches: list[RowCache], lora=None) -> torch.Tensor:
        """One decode step for rows of one pool, of any lengths: appends each token to its row,
        returns the next-token logits [rows, vocab]. `lora`: the rows' adapters
        (inference.engine.adapters.RowAdapters), or None when no row has one.

        Attention runs once per layer over the pool's slots from the lowest to the highest one in use
        (a slot in between that no row of this step holds attends to its position 0 and is dropped);
        each row's mask ends at its own length, so its result is what it would be alone."""
        rows, pool = len(token_ids), caches[0].pool
        slots = [c.slot for c in caches]
        first, span = min(slots), max(slots) - min(slots) + 1
        lengths = [c.length for c in caches]
        longest = max(lengths) + 1
        device = self.device
        slot_t = torch.tensor(slots, device=device)
        pos_t = torch.tensor(lengths, device=device)
        local = slot_t - first
        whole = rows == span  # every slot of the span is a row of this step, in slot order?
        order = None if whole and slots == sorted(slots) else local
        mask = None  # rows of one length filling the span (a lone request, always) attend to all
        if not (whole and min(lengths) + 1 == longest):
            allowed = torch.zeros(span, longest, dtype=torch.bool, device=device)
            allowed[:, 0] = True  # slots no row of this step holds: a harmless, discarded attention
            allowed[local] = torch.arange(longest, device=device)[None, :] <= pos_t[:, None]
            mask = allowed[:, None, None, :]  # [span, 1, 1, longest]
        x = self._tokens(torch.tensor(token_ids, device=device), lora) + self.wpe[pos_t]
        for li, layer in enumerate(self.layers):
            qkv = self._linear(layer, "qkv", li, self._ln(x, layer["ln1"]), lora)
            q, k, v = qkv.view(rows, 3, self.n_head, self.hd).unbind(1)  # each [rows, h, hd]
            pool.k[li, slot_t, :, pos_t] = k
            pool.v[li, slot_t, :, pos_t] = v
            if order is None:
                q_span = q
            else:
                q_span = q.new_zeros(span, self.n_head, self.hd)
                q_span[order] = q
            keys = pool.k[li, first:first + span, :, :longest]  # [span, h, longest, hd], a view
            values = pool.v[li, first:first + span, :, :longest]
            a = F.scaled_dot_product_attention(q_span.unsqueeze(2), keys, values, attn_mask=mask)  # [span, h, 1, hd]
            a = a.squeeze(2) if order is None else a.squeeze(2)[order]
            x = x + self._linear(layer, "proj", li, a.reshape(rows, self.d), lora)
            x = self._mlp(layer, x, li, lora)
        for cache in caches:
            cache.length += 1
        return self._logits(self._ln(x, self.ln_f), lora)


def _prompt_adapters(prompts: list[list[int]], adapters):
    """The RowAdapters of a packed prefill (one token span per prompt), or None when no prompt has one."""
    if not adapters or all(a is None for a in adapters):
        return None
    from .adapters import RowAdapters

    spans, start = [], 0
    for p in prompts:
        spans.append((start, start + len(p)))
        start += len(p)
    return RowAdapters(list(adapters), spans)
