"""The job page: samples read from a sensible start and name their prompt, an empty checkpoints
table says when one will come, Cancel asks first, the samples list is bounded."""

from __future__ import annotations

import pytest

from tests import factories
from training.models import Sample
from training.selectors import sample_reading


@pytest.mark.parametrize(("text", "shown"), [
    ("ing the boat. The Marigold came in.", "The Marigold came in."),
    ("rbour wall\nAt dawn it rained.", "At dawn it rained."),
    ("arigold came in past the pier", "came in past the pier"),
    ("The boat came in.", "The boat came in."),
])
def test_a_sample_without_a_prompt_starts_at_a_line_sentence_or_word(text, shown):
    reading = sample_reading(text, prompt="")
    assert reading["shown"] == shown
    assert reading["cut"] == (shown != text)


def test_a_sample_after_a_prompt_is_shown_whole():
    assert sample_reading("igold came in", prompt="At dawn, the Mar") == {"shown": "igold came in", "cut": False}


def test_the_progress_feed_names_the_prompt_and_the_checkpoint_interval(client, trainer):
    job = factories.job(trainer)
    job.hyperparameters = {**job.hyperparameters, "sample_prompt": "At dawn,", "checkpoint_every": 50}
    job.save(update_fields=["hyperparameters"])
    Sample.objects.create(job=job, step=10, index=0, text=" the Marigold came in.")
    client.force_login(trainer)

    body = client.get(f"/studio/jobs/{job.pk}/progress/").json()

    assert body["sample_prompt"] == "At dawn," and body["checkpoint_every"] == 50
    assert body["samples"][0]["shown"] == " the Marigold came in." and body["samples"][0]["text"]


def test_the_page_explains_empty_checkpoints_and_confirms_cancel(client, trainer):
    job = factories.job(trainer)
    job.hyperparameters = {**job.hyperparameters, "checkpoint_every": 25}
    job.save(update_fields=["hyperparameters"])
    client.force_login(trainer)

    page = client.get(f"/studio/jobs/{job.pk}/").content.decode()

    assert "No checkpoints yet — one is saved every 25 steps." in page
    assert "confirm(" in page and 'id="cancel-form"' in page
    assert "sample-list" in page
