"""The built-in tiny GPT-2: a tokenizer and a randomly initialised model small enough for demos and tests.

Nothing here downloads anything: the tokenizer is trained on the texts it is given and the model is
built from a config, so a fresh checkout can train and serve a model without a model hub.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

EOS_TOKEN = "<|endoftext|>"
TINY_SEED = 1234


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 512, model_max_length: int = 128
) -> PreTrainedTokenizerFast:
    """Train a GPT-2 style byte-level BPE tokenizer on `texts`.

    `<|endoftext|>` is the only special token and serves as bos, eos, unk and pad, as in GPT-2. The
    vocabulary always holds the 256 byte symbols, so any text encodes; a small corpus yields fewer
    merges than `vocab_size` allows. Raises ValueError when `vocab_size` cannot hold the byte alphabet.
    """
    if vocab_size < 257:
        raise ValueError("vocab_size must be at least 257 (256 byte symbols + <|endoftext|>)")
    backend = Tokenizer(models.BPE())
    # add_prefix_space=False is GPT-2's setting: the first word of a text keeps no leading space.
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        model_max_length=model_max_length,
    )


def tiny_config(
    vocab_size: int, n_positions: int = 128, n_layer: int = 2, n_head: int = 2, n_embd: int = 64
) -> GPT2Config:
    """A GPT-2 config of the given size; token 0 (`<|endoftext|>`) is bos and eos.

    Dropout keeps GPT-2's 0.1 so that the tiny model exercises the same training code paths
    (including dropout RNG handling) as a real one.
    """
    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )


def build_tiny_model(
    folder: Path,
    texts: Iterable[str],
    *,
    vocab_size: int = 512,
    n_positions: int = 128,
    n_layer: int = 2,
    n_head: int = 2,
    n_embd: int = 64,
    seed: int = TINY_SEED,
) -> Path:
    """Save a tokenizer trained on `texts` and a seeded, randomly initialised GPT-2 in `folder`.

    The folder is a Hugging Face model folder (config, safetensors weights, tokenizer files) that
    `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained` load. The same texts
    and seed give the same weights. Returns `folder`.
    """
    folder = Path(folder)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, model_max_length=n_positions)
    config = tiny_config(len(tokenizer), n_positions, n_layer, n_head, n_embd)
    if tokenizer.eos_token_id != config.eos_token_id:
        raise RuntimeError("tokenizer must put <|endoftext|> at id 0")
    # fork_rng keeps the caller's global RNG untouched while seeding the initialisation.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
