"""The generic decode loop: any Hugging Face causal LM through `model(...)` and its own KV cache,
one request at a time. The engine serves the models the lean forward does not support here (at
fp32); greedy output at fp32 equals `model.generate`'s.

The loop is our own rather than `model.generate`, so that each step applies the request's watermark
bias, per-sample seeded sampling, the cancel check and the token callback (`RowSampler`).
"""

from __future__ import annotations

import torch

from .cache import LoadedModel
from .sampling import RowSampler
from .types import GenerationRequest, GenerationResult


class DecodeLoop:
    """One request's decode: prefill the prompt for its n rows, then step with the KV cache."""

    def __init__(self, sampler: RowSampler):
        self.sampler = sampler

    def run(self) -> None:
        sampler, model, device = self.sampler, self.sampler.loaded.model, self.sampler.loaded.device
        if sampler.cancelled():  # the client left while the request waited in the queue
            return
        rows = sampler.all_rows
        input_ids = torch.tensor([sampler.prompt_ids] * len(rows), dtype=torch.long, device=device)
        out = model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        for _step in range(sampler.request.sampling.max_new_tokens):
            next_ids = sampler.choose(out.logits[:, -1, :].float(), rows)
            sampler.record(next_ids, rows)
            if sampler.done or sampler.cancelled():
                break
            out = model(input_ids=next_ids.view(-1, 1), cache=out.cache, use_cache=True, logits_to_keep=1)


def generate_with(loaded: LoadedModel, request: GenerationRequest) -> GenerationResult:
    """Run one request on a loaded model. Raises InvalidGenerationRequest, ContextTooLong."""
    sampler = RowSampler.start(loaded, request)
    with torch.inference_mode():
        DecodeLoop(sampler).run()
        return sampler.result()
