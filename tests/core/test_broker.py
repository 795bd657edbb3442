"""The embedded broker never hands a consumer a message that is still being written: a worker that
polls while the web process sends must see either nothing or the whole message."""

import os
from queue import Empty

import pytest
from kombu import Connection

from core import broker


@pytest.fixture
def channel(tmp_path):
    folders = {name: tmp_path / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    options = {"data_folder_in": str(folders["queue"]), "data_folder_out": str(folders["queue"]),
               "processed_folder": str(folders["processed"]), "control_folder": str(folders["control"]),
               "store_processed": False}
    with Connection("filesystem://", transport=broker.Transport, transport_options=options) as conn:
        yield conn.default_channel


def test_a_message_is_invisible_until_it_is_whole_then_delivered_once(channel, monkeypatch):
    seen_while_writing = []
    real_replace = os.replace

    def replace_after_a_poll(src, dst):
        # The moment kombu's own writer is exposed: the file exists, its content is not yet final.
        try:
            seen_while_writing.append(channel._get("default"))
        except Empty:
            seen_while_writing.append(None)
        real_replace(src, dst)

    monkeypatch.setattr(broker.os, "replace", replace_after_a_poll)
    channel._put("default", {"body": "hello", "headers": {}})

    assert seen_while_writing == [None]
    assert channel._get("default") == {"body": "hello", "headers": {}}
    with pytest.raises(Empty):
        channel._get("default")


def test_a_failed_write_leaves_no_file_behind(channel, monkeypatch, tmp_path):
    def no_room(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(broker.os, "replace", no_room)
    with pytest.raises(Exception, match="Cannot add file"):
        channel._put("default", {"body": "lost"})
    assert os.listdir(tmp_path / "queue") == []


def test_the_embedded_default_uses_it_and_a_broker_server_does_not(settings):
    from config.celery_app import app

    transport = type(app.connection_for_write().transport)
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        assert transport is broker.Transport
    else:
        assert not issubclass(transport, broker.Transport)
