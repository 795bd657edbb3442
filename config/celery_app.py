"""The Celery application.

Queues: `training` (GPU workers: late acks, requeue on worker loss, prefetch 1 so a long job never
sits behind another in a worker's buffer), `inference`, and `default`. Tasks are routed by name, so
`training.*` tasks always land on the training queue whichever process sends them.

Start a worker for one queue on another machine (same environment variables as the web):
    celery -A config worker -Q training --concurrency 1 -n training@%h
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("imprint")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=(Queue("default"), Queue("training"), Queue("inference")),
    task_default_queue="default",
    task_routes={
        # Periodic sweeps are light work for the default queue, whatever their app.
        "training.sweep_leases": {"queue": "default"},
        # Dataset processing is CPU work for any worker, not for the GPU machines.
        "training.process_dataset": {"queue": "default"},
        "training.uploads_sweep": {"queue": "default"},
        # A network round trip to the hub: light work, never on a GPU machine.
        "training.hub_probe": {"queue": "default"},
        "training.*": {"queue": "training"},
        "inference.*": {"queue": "inference"},
        # The demo's listings are fine-tunes: training work, once the built-in base is ready.
        "marketplace.demo_listings": {"queue": "training"},
    },
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
app.autodiscover_tasks()


@app.task(name="imprint.ping")
def ping(payload: str = "") -> dict:
    """Round-trip probe: proves a worker process consumed the message and wrote a result."""
    import socket

    return {"pong": payload, "pid": os.getpid(), "host": socket.gethostname()}
