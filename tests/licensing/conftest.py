"""Fixtures of the licensing tests: the served tiny model and the local test-mode checkout, shared
with the inference and marketplace tests."""

from tests.inference.conftest import tiny_dir, tiny_stored  # noqa: F401 - fixtures
from tests.marketplace.conftest import payments_test_mode  # noqa: F401 - fixture
