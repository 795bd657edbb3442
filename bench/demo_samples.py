"""Do the demo listings write English of their own? For each demo model (a model folder fine-tuned
by `manage.py demo`, or one given with --model), 20 samples at temperature 1 (no top-k, 60 new
tokens, from the listing's own prompt, as the job page shows them): the share of their words in an
English word list (Debian's `wamerican`, /usr/share/dict/words) and their 8-gram overlap with the
demo corpus the model was trained on (the share of a sample's token 8-grams found verbatim in it).
The corpus itself is scored on the same list, so a word the list lacks ("harbour", a boat's name)
is seen for what it is.

    .venv/bin/python bench/demo_samples.py --quick                       # 5 samples each
    .venv/bin/python bench/demo_samples.py --var-dir var                 # the demo of a `dev.py run`
    .venv/bin/python bench/demo_samples.py --model "Harbour Logbook=DIR" --model "Kitchen Notes=DIR"

Without --model the folders are found in the installation's database (`--var-dir`, default var/) and
read as their owner downloads them (an adapter merged into its base); a --model folder is a whole model.
Last line: `ratio: X` with X = the lowest English-word share over the models / 0.90 (the goal is
>= 1.0 with an 8-gram overlap <= 10 %).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

from base_quality import SAMPLES, english_share, english_words, samples_scored  # noqa: E402



def demo_specs() -> dict[str, dict]:
    """The demo's models by title: their corpus and sample prompt."""
    from marketplace.demo_content import harbour_logbook, kitchen_notes
    from marketplace.management.commands.demo import DEMO_MODELS

    texts = {"Harbour Logbook": harbour_logbook, "Kitchen Notes": kitchen_notes}
    return {spec["title"]: {"text": texts[spec["title"]](), "prompt": spec["prompt"]} for spec in DEMO_MODELS}


def installed_folders(work: Path) -> dict[str, Path]:
    """The demo listings' model folders in this installation, as their owner downloads
    them (an adapter version merged into its base), unpacked under `work`."""
    from marketplace.models import Listing
    from training.services.versions import version_archive

    found = {}
    for listing in Listing.objects.filter(trainer__username="trainer").select_related("model_version"):
        version = listing.model_version
        archive = version_archive(version=version, merged=version.is_adapter)
        folder = work / f"version-{version.pk}"
        shutil.unpack_archive(archive, folder)
        archive.unlink()
        found[listing.title] = folder
    return found


def measure(folder: Path, text: str, prompt: str, words: set[str], samples: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.textdata import encode_documents

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    train_ids = encode_documents(text.split("\n<|endoftext|>\n"), tokenizer)
    texts, overlap = samples_scored(model, tokenizer, train_ids, prompt=prompt, count=samples)
    corpus_text = text.replace("<|endoftext|>", " ")
    return {"english": english_share(texts, words), "corpus_english": english_share([corpus_text], words),
            "overlap_mean": sum(overlap) / len(overlap), "overlap_max": max(overlap), "texts": texts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 samples per model instead of 20")
    parser.add_argument("--var-dir", default=str(ROOT.parent / "var"), help="the installation whose demo to read")
    parser.add_argument("--model", action="append", default=[], metavar="TITLE=FOLDER",
                        help="a demo model's folder, by the demo listing's title (repeatable)")
    args = parser.parse_args()
    # The demo's content and listings are the installation's: Django reads its settings first.
    os.environ["IMPRINT_VAR_DIR"] = str(Path(args.var_dir).resolve())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    import torch

    django.setup()

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    words = english_words()
    specs = demo_specs()
    work = Path(tempfile.mkdtemp(prefix="demo-samples-"))
    try:
        return _measure_all(args, words, specs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure_all(args, words: set[str], specs: dict[str, dict], work: Path) -> int:
    folders = dict(item.split("=", 1) for item in args.model) if args.model else installed_folders(work)
    unknown = set(folders) - set(specs)
    if unknown or not folders:
        sys.exit(f"no demo model folders to measure (unknown titles: {', '.join(sorted(unknown)) or 'none'}); "
                 f"run `manage.py demo` first or pass --model 'TITLE=FOLDER'")
    shares = []
    for title, folder in sorted(folders.items()):
        spec = specs[title]
        r = measure(Path(folder), spec["text"], spec["prompt"], words, 5 if args.quick else SAMPLES)
        shares.append(r["english"])
        print(f"{title}: English words {r['english']:.1%} (its corpus: {r['corpus_english']:.1%}), "
              f"8-gram overlap mean {r['overlap_mean']:.1%}, max {r['overlap_max']:.1%} ({folder})")
        for text in r["texts"][:3]:
            print("    sample:", spec["prompt"] + " ".join(text.split())[:160])
    print(f"ratio: {min(shares) / 0.90:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
