"""Dataset processing: Imprint's upload task against bare `tokenizers` encode_batch on the same text.

A corpus is generated (50 MB; 5 MB with --quick) of documents separated by <|endoftext|>, with
CRLF line endings in every other document. Imprint's side is the whole default-queue task,
`training.services.datasets.dataset_upload_process`, run in a process of its own (the processing
worker) on an upload staged in local storage with SQLite, after the imports a running worker has done: strict UTF-8 validation, normalisation,
the tiny tokenizer trained on its sample, statistics, encoding in batches, and storing the text and
the uint16 ids. The bare side, in another fresh process, is the Rust tokenizer's `encode_batch` over
all the documents at once with the very tokenizer Imprint trained (loaded from storage), split and
held in memory beforehand and not timed. Each side's peak memory is its process's maximum RSS.

    .venv/bin/python bench/dataset_encode.py --quick    # under a minute on 2 cores
    .venv/bin/python bench/dataset_encode.py            # 50 MB

The last line is `ratio: X` with X = Imprint's throughput / bare encode_batch's throughput (bytes
per second; higher is better; the goal is at least 0.8 with Imprint's peak memory under 1 GB).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("the river ran under old bridges where lanterns swung and sailors sang of harbours far away "
         "winter came early that year with salt in the wind and bread in every oven of the town "
         "Über café naïve résumé — 🙂 numbers 1234 5678 and punctuation; quotes \"like this\" (and that).").split()


def make_corpus(path: Path, megabytes: int, seed: int = 7) -> int:
    """Write about `megabytes` MB of documents (30–400 words, lines of 8–16 words)."""
    rng = random.Random(seed)
    target, written, index = megabytes * 1_000_000, 0, 0
    with open(path, "wb") as fh:
        while written < target:
            words = [rng.choice(WORDS) for _ in range(rng.randint(30, 400))]
            lines, at = [], 0
            while at < len(words):
                step = rng.randint(8, 16)
                lines.append(" ".join(words[at:at + step]))
                at += step
            newline = "\r\n" if index % 2 else "\n"
            document = (newline.join(lines) + f"{newline}<|endoftext|>{newline}").encode()
            fh.write(document)
            written += len(document)
            index += 1
    return written


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def imprint_side(corpus: Path, var: Path, tokenizer_out: Path) -> dict:
    os.environ.update({"IMPRINT_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "config.settings",
                       "DATASET_MAX_BYTES": str(corpus.stat().st_size + 1)})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.files import File
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from accounts.models import User
    from training import artifacts
    from training.services import datasets

    owner = User.objects.create(username="bench", email="bench@example.com", is_trainer=True)
    with open(corpus, "rb") as fh:
        upload = File(fh, name="corpus.txt")
        upload.content_type = "text/plain"
        record = datasets.dataset_upload_receive(owner=owner, name="bench", upload=upload, licence="cc0-1.0",
                                                 licence_attested=True, enqueue=False)
    # A worker is a long-lived process: it imported torch and transformers (which the tiny
    # tokenizer's module pulls in) once, when it started, not for each dataset.
    import training.tiny  # noqa: F401

    rss_before = _peak_rss_mb()
    started = time.perf_counter()
    record = datasets.dataset_upload_process(upload_id=record.pk)
    seconds = time.perf_counter() - started
    assert record.state == "ready", (record.refusal_reason, record.refusal_message)
    encoding = record.dataset.encodings.get()
    prefix = encoding.file.name.rsplit("/", 1)[0]
    artifacts.folder_download(f"{prefix}/tokenizer", tokenizer_out)
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "rss_before_mb": rss_before,
            "tokens": encoding.tokens, "dtype": encoding.dtype, "documents": record.dataset.stats["documents"],
            "ids_bytes": encoding.tokens * 2}


def bare_side(corpus: Path, tokenizer_dir: Path) -> dict:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    text = corpus.read_bytes().decode("utf-8").replace("\r\n", "\n")
    documents = [d.strip() for d in text.split("<|endoftext|>") if d.strip()]
    started = time.perf_counter()
    encodings = tokenizer.encode_batch(documents, add_special_tokens=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "tokens": sum(len(e.ids) for e in encodings)}


def _child(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 MB instead of 50 MB")
    parser.add_argument("--side", choices=["imprint", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--var", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "imprint":
        print(json.dumps(imprint_side(Path(args.corpus), Path(args.var), Path(args.tokenizer))))
        return
    if args.side == "bare":
        print(json.dumps(bare_side(Path(args.corpus), Path(args.tokenizer))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-dataset-") as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus.txt"
        size = make_corpus(corpus, 5 if args.quick else 50)
        print(f"corpus: {size / 1e6:.1f} MB of generated documents (CRLF in every other one)", flush=True)
        imprint = _child("--side", "imprint", "--corpus", str(corpus), "--var", str(tmp / "var"),
                         "--tokenizer", str(tmp / "tokenizer"))
        bare = _child("--side", "bare", "--corpus", str(corpus), "--tokenizer", str(tmp / "tokenizer"))
    mb = size / 1e6
    print(f"imprint dataset task: {imprint['seconds']:.2f} s ({mb / imprint['seconds']:.2f} MB/s), "
          f"{imprint['documents']:,} documents, {imprint['tokens']:,} ids stored as {imprint['dtype']}; "
          f"peak RSS of the processing worker {imprint['peak_rss_mb']:.0f} MB "
          f"(after Django start-up {imprint['rss_before_mb']:.0f} MB)")
    print(f"bare encode_batch:    {bare['seconds']:.2f} s ({mb / bare['seconds']:.2f} MB/s), "
          f"{bare['tokens']:,} tokens; peak RSS {bare['peak_rss_mb']:.0f} MB (text and documents in memory)")
    print(f"goals: ratio >= 0.8 and peak memory < 1024 MB: "
          f"{'met' if bare['seconds'] / imprint['seconds'] >= 0.8 and imprint['peak_rss_mb'] < 1024 else 'not met'}")
    print(f"ratio: {bare['seconds'] / imprint['seconds']:.3f}")


if __name__ == "__main__":
    main()
