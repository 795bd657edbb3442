"""The demo on a fresh installation: the site does not wait for the built-in base. The demo sends
its preparation to a training worker and says so; once the base is ready, the demo's listings are
sent to a training worker to be fine-tuned from it."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from marketplace import receivers
from marketplace.management.commands.demo import WAITING_FOR_BASE
from marketplace.models import Listing
from training.models import BuiltinBase


class _SentTasks:
    def __init__(self):
        self.sent = []

    def send_task(self, name, args=None, kwargs=None, **options):
        self.sent.append(name)


@pytest.fixture
def sent_tasks(monkeypatch):
    recorder = _SentTasks()
    monkeypatch.setattr(receivers, "current_app", recorder)
    return recorder


def test_the_demo_does_not_wait_for_the_base_it_sends_it_to_a_worker_and_says_so(
        db, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks):
    from training.services import bases

    sent = _SentTasks()
    monkeypatch.setattr(bases, "current_app", sent)
    settings.VAR_DIR = tmp_path
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("demo", stdout=out)
    assert WAITING_FOR_BASE in out.getvalue() and "the demo listings appear when it is ready" in out.getvalue()
    assert BuiltinBase.objects.get().state == "preparing"
    assert sorted(sent.sent) == [bases.PREPARE_TASK, bases.HUB_PROBE_TASK]  # and the hub asked at start
    assert not Listing.objects.exists() and not (tmp_path / "demo-api-key.txt").exists()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("demo", stdout=io.StringIO())  # a second start while it prepares queues no second one
    assert sent.sent.count(bases.PREPARE_TASK) == 1


def test_the_base_becoming_ready_sends_the_demo_listings_to_a_training_worker(
        db, micro_base_folder, settings, tmp_path, sent_tasks, django_capture_on_commit_callbacks):
    from training.services import bases

    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "m")}}}
    call_command("demo_accounts", stdout=io.StringIO())
    with django_capture_on_commit_callbacks(execute=True):
        bases.builtin_base_install(folder=micro_base_folder)
    assert sent_tasks.sent == ["marketplace.demo_listings"]


def test_an_installation_without_the_demo_gets_no_demo_listings(
        db, micro_base_folder, settings, tmp_path, sent_tasks, django_capture_on_commit_callbacks):
    from training.services import bases

    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "m")}}}
    with django_capture_on_commit_callbacks(execute=True):
        bases.builtin_base_install(folder=micro_base_folder)
    assert sent_tasks.sent == []
