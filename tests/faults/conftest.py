"""One live site in the production shape for the whole fault suite (tests/faults/site.py): its
start-up (a PostgreSQL cluster, migrations, a model, gunicorn, Celery workers) is paid once."""

from __future__ import annotations

import pytest

from tests.conftest import require

from .site import LiveSite, available


@pytest.fixture(scope="module")
def site():
    missing = available()
    require(missing is None, missing or "")
    live = LiveSite()
    yield live
    live.close()
