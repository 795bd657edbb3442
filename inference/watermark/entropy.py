"""The model's own next-token entropy: where an entropy-selective scheme biases and scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def next_token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of softmax(logits) per row ([rows, vocab] → [rows]), at temperature 1: the
    model's own uncertainty, which the detector can recompute without knowing the request."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).nan_to_num().sum(dim=-1)


def text_entropies(model: torch.nn.Module, token_ids: Sequence[int], *, n_positions: int,
                   bos_token_id: int = 0) -> np.ndarray:
    """entropies[i]: the model's entropy (nats) before token i of `token_ids`, given the tokens
    before it (after a BOS token; beyond the context, the last n_positions - 1 tokens). The
    detector's view of where the generator was unsure; it does not know the prompt, so the first
    tokens may differ slightly from what generation saw."""
    ids = [bos_token_id, *map(int, token_ids)]
    device = next(model.parameters()).device
    out = np.empty(len(token_ids), dtype=np.float64)
    window = max(2, int(n_positions))
    stride = max(1, window // 2)
    done, start = 0, 0  # entropies known for out[:done]; window covers ids[start:start + window]
    with torch.inference_mode():
        while done < len(token_ids):
            chunk = ids[start:start + window]
            logits = model(input_ids=torch.tensor([chunk], device=device)).logits[0]
            # logits[j] predicts ids[start + j + 1] = token_ids[start + j]
            ent = next_token_entropy(logits[:-1] if len(chunk) > 1 else logits).cpu().numpy()
            first = done - start
            last = min(len(chunk) - 1, len(token_ids) - start)
            out[done:start + last] = ent[first:last]
            done = start + last
            start = max(start + stride, done - (window - stride))
    return out
