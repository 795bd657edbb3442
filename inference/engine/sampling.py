"""From logits to tokens, per request: validation against the model, logits filtering, the
watermark bias, and `RowSampler`, the one sampler of a request's rows that both decode paths (the
generic Hugging Face loop and the lean batch step) use.

Sampling is seeded per request and per sample (`torch.Generator`), never from the global RNG: forked
worker processes inherit one global RNG state and would otherwise repeat each other's samples. A
request without a seed gets a fresh random one, reported in the result.
"""

from __future__ import annotations

import secrets

import torch

from ..watermark import watermark_choose, watermark_logits
from .cache import LoadedModel
from .types import (
    PRECISIONS,
    Completion,
    ContextTooLong,
    GenerationRequest,
    GenerationResult,
    InvalidGenerationRequest,
    TokenEvent,
)


def validate_request(request: GenerationRequest) -> None:
    """Raises InvalidGenerationRequest for what the decode loop cannot serve beyond its sampling
    parameters (those are checked when `SamplingParams` is made): an empty prompt, an unknown
    precision."""
    if not request.prompt:
        raise InvalidGenerationRequest("The prompt must not be empty.", param="prompt")
    if request.precision not in PRECISIONS:
        raise InvalidGenerationRequest(f"precision must be one of {', '.join(PRECISIONS)}.", param="precision")


def context_check(*, prompt_tokens: int, max_new_tokens: int, n_positions: int) -> None:
    """Raises ContextTooLong when the request would run past the model's positions."""
    if prompt_tokens + max_new_tokens > n_positions:
        raise ContextTooLong(prompt_tokens=prompt_tokens, max_new_tokens=max_new_tokens, n_positions=n_positions)


def _sample_seed(seed: int, index: int) -> int:
    # Each sample gets its own generator so that one sample's tokens depend only on (seed, index):
    # the batched engine can then reproduce them row by row.
    return (seed * 1_000_003 + index) % (2**63 - 1)


def filter_logits(logits: torch.Tensor, *, top_k: int, top_p: float) -> torch.Tensor:
    """Top-k then nucleus (top-p) filtering of [rows, vocab] logits, as transformers does it."""
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1, None]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove_sorted = cumulative <= (1 - top_p)
        remove_sorted[..., -1:] = False  # always keep the most likely token
        remove = remove_sorted.scatter(-1, order, remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def decode_text(tokenizer, token_ids: list[int]) -> str:
    """The text of generated tokens, without NUL characters: a byte-level model can emit the 0x00
    byte, which is never meaningful text, and PostgreSQL cannot store it (text or jsonb) nor DRF
    accept it back for verification. Receipts hash exactly this text."""
    return tokenizer.decode(token_ids, skip_special_tokens=True).replace("\x00", "")


class _IncrementalText:
    """Turns a growing token list into text deltas without splitting a multi-byte character."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.emitted = ""

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = decode_text(self.tokenizer, self.ids)
        if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the next token
            return ""
        delta, self.emitted = text[len(self.emitted):], text
        return delta


class RowSampler:
    """The rows (samples) of one request and their state: a generator per row, the tokens chosen,
    why each row finished, the text streamed so far. It chooses each row's next token from its
    logits (watermark, temperature, top-k/top-p, its own generator), records it (stop conditions,
    `on_token`) and makes the request's result. Whoever runs the forward (`hf_loop.DecodeLoop`, a
    `batching.BatchJob`) owns one."""

    def __init__(self, loaded: LoadedModel, request: GenerationRequest, prompt_ids: list[int], seed: int):
        self.loaded, self.request, self.prompt_ids, self.seed = loaded, request, prompt_ids, seed
        n = request.sampling.n
        self.generators = [
            torch.Generator(device=loaded.device).manual_seed(_sample_seed(seed, i)) for i in range(n)
        ]
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self.finished: list[str | None] = [None] * n  # finish reason per row once done
        self.texts = [_IncrementalText(loaded.tokenizer) for _ in range(n)]
        self.memories: list[set] = [set() for _ in range(n)]  # what a sampling watermark keeps per row

    @classmethod
    def start(cls, loaded: LoadedModel, request: GenerationRequest) -> RowSampler:
        """Validate a request against its model (prompt, precision, context) and seed its rows.
        Raises InvalidGenerationRequest, ContextTooLong."""
        validate_request(request)
        prompt_ids = loaded.tokenizer(request.prompt)["input_ids"]
        if not prompt_ids:
            raise InvalidGenerationRequest("The prompt encodes to no tokens.", param="prompt")
        context_check(prompt_tokens=len(prompt_ids), max_new_tokens=request.sampling.max_new_tokens,
                      n_positions=loaded.n_positions)
        seed = request.sampling.seed if request.sampling.seed is not None else secrets.randbits(63)
        return cls(loaded, request, prompt_ids, seed)

    @property
    def all_rows(self) -> list[int]:
        return list(range(self.request.sampling.n))

    def active_rows(self) -> list[int]:
        return [i for i, reason in enumerate(self.finished) if not reason]

    @property
    def done(self) -> bool:
        return all(self.finished)

    def cancelled(self) -> bool:
        """Whether the caller asked to stop; if so every unfinished row finishes as "cancelled"."""
        should_cancel = self.request.should_cancel
        if should_cancel is None or not should_cancel():
            return False
        for i, reason in enumerate(self.finished):
            self.finished[i] = reason or "cancelled"
        return True

    def choose(self, logits: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """Next token of each of `rows` from their logits [len(rows), vocab]; each row samples from
        its own generator, so its tokens never depend on the other rows of a batch."""
        request, sampling = self.request, self.request.sampling
        watermark = request.watermark
        if watermark is not None:  # a per-step logits processor of this request's rows only
            previous = [self.tokens[i][-1] if self.tokens[i] else self.prompt_ids[-1] for i in rows]
            logits = watermark_logits(watermark=watermark, previous_tokens=previous, logits=logits)
        if sampling.temperature == 0:
            return logits.argmax(dim=-1)
        logits = filter_logits(logits / sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p)
        probs = logits.softmax(dim=-1)
        if watermark is not None:  # a scheme that samples (after temperature, top-k and top-p) picks here
            picked = watermark_choose(watermark=watermark, histories=[self.history(i, watermark) for i in rows],
                                      probs=probs, generators=[self.generators[i] for i in rows],
                                      memories=[self.memories[i] for i in rows])
            if picked is not None:
                return picked
        picks = [torch.multinomial(probs[j], 1, generator=self.generators[i]) for j, i in enumerate(rows)]
        return torch.cat(picks)

    def history(self, row: int, watermark) -> list[int]:
        """The last tokens of a row (prompt then generated) that the watermark's sampler reads."""
        width, tokens = watermark.scheme.history_tokens, self.tokens[row]
        if len(tokens) >= width:
            return tokens[-width:]
        return (self.prompt_ids + tokens)[-width:]

    def record(self, next_ids: torch.Tensor, rows: list[int]) -> int:
        """Append each row's token (calling on_token); returns how many tokens were recorded."""
        eos, request, recorded = self.loaded.eos_token_id, self.request, 0
        sampling = request.sampling
        for i, token_id in zip(rows, next_ids.tolist()):
            if self.finished[i]:
                continue
            if sampling.stop_at_eos and token_id == eos:
                self.finished[i] = "stop"
                continue
            self.tokens[i].append(token_id)
            recorded += 1
            if request.on_token is not None:
                request.on_token(TokenEvent(sample_index=i, token_id=token_id, text=self.texts[i].push(token_id)))
            if len(self.tokens[i]) >= sampling.max_new_tokens:
                self.finished[i] = "length"
        return recorded

    def result(self, precision: str = "fp32") -> GenerationResult:
        """The request's result as it stands (the text held back for an incomplete character is
        streamed first)."""
        loaded = self.loaded
        return GenerationResult(model_digest=loaded.digest, prompt_tokens=len(self.prompt_ids),
                                completions=self._completions(), seed=self.seed, device=str(loaded.device),
                                prompt_token_ids=list(self.prompt_ids), precision=precision)

    def _completions(self) -> list[Completion]:
        tokenizer, completions = self.loaded.tokenizer, []
        for i, ids in enumerate(self.tokens):
            text = decode_text(tokenizer, ids)
            self._flush(i, text)
            completions.append(Completion(index=i, token_ids=ids, text=text,
                                          finish_reason=self.finished[i] or "length"))
        return completions

    def _flush(self, index: int, text: str) -> None:
        """Send the text held back for an incomplete character at the end (token_id -1: no new
        token), so that a stream's deltas always join to the final text."""
        emitted = self.texts[index].emitted
        on_token = self.request.on_token
        if on_token is not None and text != emitted and text.startswith(emitted):
            on_token(TokenEvent(sample_index=index, token_id=-1, text=text[len(emitted):]))
