"""Publishing a model version has its watermark detection power measured, once it is committed."""

from inference.tasks import watermark_power_measure_task
from marketplace.services import listing_publish
from tests import factories


def test_publishing_enqueues_the_power_measurement_after_commit(trainer, settings, monkeypatch,
                                                                  django_capture_on_commit_callbacks):
    settings.WATERMARK_POWER_ON_PUBLISH = True
    sent = []
    monkeypatch.setattr(watermark_power_measure_task, "delay", lambda *args: sent.append(args))
    version = factories.model_version(trainer)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        listing_publish(trainer=trainer, model_version_id=version.pk, title="Harbour")
        assert sent == []  # nothing leaves before the listing is committed
    for callback in callbacks:
        callback()
    assert sent == [(str(version.pk),)]


def test_publishing_enqueues_nothing_when_turned_off(trainer, settings, monkeypatch,
                                                     django_capture_on_commit_callbacks):
    settings.WATERMARK_POWER_ON_PUBLISH = False
    sent = []
    monkeypatch.setattr(watermark_power_measure_task, "delay", lambda *args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        listing_publish(trainer=trainer, model_version_id=factories.model_version(trainer).pk, title="Harbour")
    assert sent == []
