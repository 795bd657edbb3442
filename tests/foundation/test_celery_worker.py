"""A task sent from this process is executed by a real worker process, on each broker."""

import os

import pytest
from celery import Celery

pytestmark = pytest.mark.slow


def _client_app(broker_url: str, backend: str, transport_options: dict) -> Celery:
    # set_as_current=False: shared tasks of the project must keep sending through the project app.
    app = Celery("test-client", broker=broker_url, backend=backend, set_as_current=False)
    app.conf.broker_transport_options = transport_options
    app.conf.task_routes = {"imprint.*": {"queue": "default"}}
    return app


def _round_trip(app: Celery, worker) -> dict:
    result = app.send_task("imprint.ping", args=["hello"], queue="default")
    try:
        return result.get(timeout=60)
    except Exception:
        pytest.fail(f"no result from the worker; its log:\n{worker.log()[-3000:]}")


def test_it_runs_a_task_on_the_embedded_broker(celery_workers, tmp_path, monkeypatch):
    # Celery lets the CELERY_BROKER_URL variable override an app's broker argument (CI sets it).
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    broker_dir = tmp_path / "broker"
    results_dir = tmp_path / "results"
    for d in (broker_dir / "queue", broker_dir / "processed", broker_dir / "control", results_dir):
        d.mkdir(parents=True)
    backend = f"file://{results_dir}"
    worker = celery_workers.start(
        broker_url="filesystem://",
        env={"IMPRINT_BROKER_DIR": str(broker_dir), "CELERY_RESULT_BACKEND": backend},
    )
    options = {"data_folder_in": str(broker_dir / "queue"), "data_folder_out": str(broker_dir / "queue"),
               "processed_folder": str(broker_dir / "processed"),
               "control_folder": str(broker_dir / "control"), "polling_interval": 0.05}
    reply = _round_trip(_client_app("filesystem://", backend, options), worker)
    assert reply["pong"] == "hello"
    assert reply["pid"] != os.getpid()  # another process did the work


def test_it_runs_a_task_on_redis(celery_workers, redis_url):
    worker = celery_workers.start(broker_url=redis_url)
    reply = _round_trip(_client_app(redis_url, redis_url, {}), worker)
    assert reply["pong"] == "hello"
    assert reply["pid"] != os.getpid()


def test_training_tasks_route_to_the_training_queue():
    from config.celery_app import app

    route = app.amqp.router.route({}, "training.run_job")
    assert route["queue"].name == "training"
    assert app.amqp.router.route({}, "inference.generate")["queue"].name == "inference"
    assert app.amqp.router.route({}, "imprint.ping")["queue"].name == "default"


def test_training_queue_is_configured_for_gpu_workers():
    from config.celery_app import app

    assert app.conf.worker_prefetch_multiplier == 1
