"""An anonymous verification never makes the web process load model weights: the entropy pass of the
entropy-selective watermark runs on an `inference` worker, bounded in tokens, candidate versions and
time, and the web answers from tokenizers and the worker's result."""

from __future__ import annotations

import json
import time

import pytest

from inference import modelstore
from inference.engine import Engine
from licensing.services import grant_trial_ensure
from tests.inference.conftest import engine, make_licence, tiny_dir, tiny_stored  # noqa: F401 - fixtures
from tests.inference.test_generation_api import post
from tests.support.corpus import corpus_documents

VERIFY = "/api/v1/verifications"
MAX_CHARS = 200_000


def verify(client, text: str, *, ip: str = "198.51.100.80"):
    return client.post(VERIFY, data=json.dumps({"text": text}), content_type="application/json", REMOTE_ADDR=ip)


def long_text(chars: int = MAX_CHARS) -> str:
    """Plain corpus text of exactly `chars` characters."""
    text = " ".join(corpus_documents(count=chars // 300 + 10, length=60, seed=5))
    return text[:chars]


@pytest.fixture
def empty_web_engine(monkeypatch):
    """The web process's engine, fresh: its model cache must stay empty."""
    web_engine = Engine(cache_bytes=256 * 1024 * 1024)
    monkeypatch.setattr(modelstore, "_engine", web_engine)
    yield web_engine
    web_engine.close()


@pytest.mark.slow
def test_a_long_anonymous_verification_loads_no_weights_in_the_web_and_costs_it_little_cpu(
        celery_workers, make_licence, settings, client, empty_web_engine):
    settings.INFERENCE_IN_PROCESS = False
    settings.INFERENCE_TIMEOUT_SECONDS = 120
    settings.VERIFICATION_ENTROPY_SECONDS = 60  # a cold worker on a busy test machine
    worker = celery_workers.start(queues="inference", pool="threads", concurrency=2)
    # A grant of an entropy-selective scheme: the green-list one, whose bias is found in the text of
    # this random-weights model (its samples re-tokenise differently, which a sampling scheme that
    # hashes several tokens of context suffers more from).
    settings.WATERMARK_SCHEME = "sweet"
    licence = make_licence()
    grant_trial_ensure(model_version=licence.version)  # and the model's trial grant
    assert licence.grant.watermark_scheme == "sweet"
    marked = post(client, licence, max_new_tokens=120, ignore_eos=True, seed=11)
    assert marked.status_code == 200, (marked.content, worker.log()[-3000:])

    found = verify(client, marked.json()["outputs"][0]["text"]).json()  # also warms the worker up
    assert found["verdict"] == "watermark_detected", (found, worker.log()[-3000:])
    assert found["watermark"]["grant_id"] == str(licence.grant.pk)
    assert empty_web_engine.cache.digests() == []  # the worker computed the entropies

    started = time.process_time()
    response = verify(client, long_text())
    cpu = time.process_time() - started
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["verdict"] == "no_evidence" and not body["watermark"]["incomplete_models"]
    print(f"web-process CPU for a {MAX_CHARS}-character verification: {cpu * 1000:.0f} ms")
    assert cpu < 0.1
    assert empty_web_engine.cache.digests() == []
    assert "inference.verification_entropies" in worker.log()


def test_an_entropy_pass_that_cannot_run_in_time_says_so_instead_of_failing(
        make_licence, settings, client, empty_web_engine):
    settings.INFERENCE_IN_PROCESS = False  # no worker is running: the pass never comes back
    settings.VERIFICATION_ENTROPY_SECONDS = 0.5
    licence = make_licence()
    response = verify(client, long_text(5_000))
    assert response.status_code == 200, response.content
    mark = response.json()["watermark"]
    assert mark["incomplete_models"] == [str(licence.version.pk)] and not mark["detected"]
    assert response.json()["verdict"] == "scan_incomplete"
    assert empty_web_engine.cache.digests() == []
    page = client.post("/verify/", {"text": long_text(5_000)}, REMOTE_ADDR="198.51.100.81")
    assert page.status_code == 200 and b"not completed" in page.content


def test_the_embedded_default_still_scans_in_process_and_bounds_the_tokens(make_licence, settings, client):
    settings.INFERENCE_IN_PROCESS = True
    # Just past the 120 watermarked tokens: the bound shows, and the clean text after them (scored
    # too, up to the bound) cannot drown a grant key's green excess; at 300 a key drawn with a weak
    # excess sometimes read as no evidence.
    settings.VERIFICATION_ENTROPY_MAX_TOKENS = 150
    # This promise is about where the pass runs and how many tokens it reads, not its time budget:
    # a generous budget keeps a loaded machine's slow first model load from reading as a time-out.
    settings.VERIFICATION_ENTROPY_SECONDS = 120
    licence = make_licence()
    text = post(client, licence, max_new_tokens=120, ignore_eos=True, seed=11).json()["outputs"][0]["text"]
    found = verify(client, text + " " + long_text(20_000)).json()
    assert found["verdict"] == "watermark_detected" and found["watermark"]["grant_id"] == str(licence.grant.pk)
    assert found["watermark"]["entropy_tokens"] == 150


def test_candidate_versions_beyond_the_bound_are_listed_as_not_scanned(make_licence, settings, client):
    from tests.inference.conftest import licence_factory

    settings.VERIFICATION_ENTROPY_MAX_VERSIONS = 1
    first = make_licence()
    other = licence_factory({"prefix": first.version.storage_prefix, "manifest": first.version.files,
                             "digest": first.version.digest})()
    mark = verify(client, long_text(3_000)).json()["watermark"]
    assert len(mark["incomplete_models"]) == 1
    assert set(mark["incomplete_models"]) < {str(first.version.pk), str(other.version.pk)}
