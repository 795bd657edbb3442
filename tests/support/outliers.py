"""An activation outlier, the failure per-row int8 quantisation of large language models is known
for, put into a GPT-2 without changing the function it computes in fp32."""

from __future__ import annotations

import torch

DIMENSION = 5
SCALE = 1000.0


def add_activation_outlier(model, *, before_lm_head: bool = False) -> None:
    """In place: one hidden dimension of every block's LayerNorms scaled by SCALE, and the matching
    input row of the matrix each feeds divided by SCALE. In fp32 it is the same function (the same
    perplexity), but each row entering those matrices now has one entry SCALE times the others:
    quantised to int8 with one scale per row, every other entry rounds to a handful of codes, and
    nothing in the quantiser compensates for it. `before_lm_head` does the same to the final
    LayerNorm and the lm_head (untied from the embeddings for it): in a model of two layers the
    residual stream carries most of the prediction, so it is that outlier which breaks it."""
    with torch.no_grad():
        pairs = [(b.ln_1, b.attn.c_attn.weight) for b in model.transformer.h]
        pairs += [(b.ln_2, b.mlp.c_fc.weight) for b in model.transformer.h]  # Conv1D weights are [in, out]
        if before_lm_head:
            model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
            model.config.tie_word_embeddings = False
            pairs.append((model.transformer.ln_f, model.lm_head.weight.t()))
        for norm, weight_in_out in pairs:
            norm.weight[DIMENSION] *= SCALE
            norm.bias[DIMENSION] *= SCALE
            weight_in_out[DIMENSION, :] /= SCALE
