"""Seconds per verification of a 200-token text against 1, 1,000 and 100,000 grants.

The real path (`inference.verification.watermark_scan`) on a fresh SQLite database: one tiny GPT-2
(the built-in tokenizer, 256 positions, 30 training steps: text of words, still uncertain
enough that nearly every position is above the entropy threshold and scored, the most work per key) stored as a model version, and N
active grants on it with the current scheme (synthetic customers' keys derived from their ids as
for real grants), bulk-inserted. The text is a 200-token output watermarked with one grant's key.

Per N: "cold" is the first scan after the grants changed (it reads the grants and derives their
keys into the in-process candidate table), "warm" the median of the next scans (the table is
reused while the grants are unchanged: one aggregate query checks it), with the split between
tokenizing + entropies and scoring every key.

    .venv/bin/python bench/verify_scale.py --quick    # under a minute on 2 cores
    .venv/bin/python bench/verify_scale.py

Last line: `ratio: X`, X = warm seconds per verification at 100,000 grants (lower is better; goal
<= 1.0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

from generation_overhead import django_setup, served_licence  # noqa: E402


def add_grants(template, count: int) -> None:
    from django.db import transaction

    from licensing.models import Grant

    with transaction.atomic():
        _insert(Grant, template, count)


def _insert(Grant, template, count: int) -> None:
    """Copies of the template grant under new ids, in one executemany (the ORM's bulk_create spent
    over a minute building 100,000 model instances on this machine)."""
    from django.db import connection
    from django.utils import timezone

    fields = Grant._meta.concrete_fields
    values = [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields]
    names = [f.attname for f in fields]
    rows, now = [], timezone.now()
    for i in range(count):
        # Each grant its own id and times (as real ones have): older than the template, the newest
        # of the previous ones when count == 1 (a licence sold just now).
        when = now if count == 1 else template.created_at - timedelta(seconds=i + 1)
        row = list(values)
        row[names.index("id")] = Grant._meta.pk.get_db_prep_save(uuid.uuid4(), connection)
        for name in ("created_at", "activated_at", "starts_at"):
            row[names.index(name)] = Grant._meta.get_field(name).get_db_prep_save(when, connection)
        rows.append(row)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {Grant._meta.db_table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})",
                           rows)


def watermarked_text(version, grant, tokens: int) -> str:
    from inference.engine import GenerationRequest
    from inference.modelstore import engine_instance, model_folder_fetch
    from inference.selectors import grant_watermark_key

    result = engine_instance().generate(GenerationRequest(
        model_digest=version.digest, model_dir=model_folder_fetch(version), prompt="the", max_new_tokens=tokens,
        temperature=1.0, seed=1, stop_at_eos=False, watermark=grant_watermark_key(grant)))
    return result.completions[0].text


def time_scan(text: str, reps: int) -> tuple[float, float, dict]:
    from inference.verification import watermark_scan

    started = time.perf_counter()
    result = watermark_scan(text)
    cold = time.perf_counter() - started
    warm = []
    for _ in range(reps):
        started = time.perf_counter()
        result = watermark_scan(text)
        warm.append(time.perf_counter() - started)
    return cold, statistics.median(warm), result


def watermark_scan_once(text: str) -> dict:
    from inference.verification import watermark_scan

    return watermark_scan(text)


def scoring_seconds(text: str, version) -> float:
    """Scoring alone (every key, given the ids and entropies), for the split."""
    from inference.verification import _TextView, candidate_table

    table = candidate_table()
    view = _TextView(text)
    view.entropies_fetch(list(table.groups.values()), {str(version.pk): version})
    entropies = view.entropy.entropies[str(version.pk)]
    ids = view.head_ids(version)[:len(entropies)]
    started = time.perf_counter()
    for group in table.groups.values():
        previous, tokens = group.scheme.scored_pairs(ids, entropies=entropies)
        group.scheme.detect_best(previous, tokens, group.keys)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 1 min)")
    args = parser.parse_args()
    reps = 3 if args.quick else 10
    with tempfile.TemporaryDirectory(prefix="imprint-bench-") as tmp:
        var_dir = Path(tmp)
        django_setup(var_dir)
        from licensing.models import Grant
        from tests.support.corpus import corpus_documents
        from training.tiny import build_tiny_model

        from tests.inference.conftest import quick_train

        # Briefly trained, so that its text is words that re-tokenise as generated (not byte soup).
        folder = quick_train(build_tiny_model(var_dir / "model", corpus_documents(), n_positions=256),
                             corpus_documents(), steps=30)
        version, _ = served_licence(folder)
        grant = Grant.objects.get()
        text = watermarked_text(version, grant, 200)
        print(f"scheme {grant.watermark_scheme} {grant.watermark_params}; text of 200 generated tokens")
        last = None
        for total in (1, 1000, 100_000):
            started = time.perf_counter()
            add_grants(grant, total - Grant.objects.count())
            insert = time.perf_counter() - started
            cold, warm, result = time_scan(text, reps)
            scoring = scoring_seconds(text, version)
            assert result["detected"] and result["grant_id"] == str(grant.pk) and result["candidates"] == total
            add_grants(grant, 1)  # one more licence sold: the table takes in that one only
            started = time.perf_counter()
            watermark_scan_once(text)
            joined = time.perf_counter() - started
            print(f"{total:>7,} grants: warm {warm * 1000:7.1f} ms per verification (scoring every key "
                  f"{scoring * 1000:6.1f} ms), cold {cold * 1000:7.1f} ms (after inserting in {insert:.1f} s); "
                  f"z {result['z_score']}, {result['scored_tokens']} tokens scored, corrected p "
                  f"{result['adjusted_p_value']:.1e}; after one grant more {joined * 1000:.1f} ms")
            last = warm
    print(f"ratio: {last:.3f}")


if __name__ == "__main__":
    main()
