"""Fixtures of the licensing tests: the served tiny model and the local test-mode checkout, shared
with the inference and marketplace tests."""

from tests.inference.conftest import tiny_dir, tiny_stored  # noqa: F401 - fixtures
from tests.marketplace.conftest import payments_test_mode  # noqa: F401 - fixture


def served_version(trainer, stored: dict, *, licence: str, rights_holders=(), base_model: str = "tiny"):
    """A model version of the served tiny model, trained (as far as its rights go) on a dataset
    under `licence` with these rights-holders."""
    from tests import factories
    from training.models import ModelVersion

    version = factories.model_version(trainer, dataset_licence=licence, rights_holders=tuple(rights_holders),
                                      base_model=base_model)
    ModelVersion.objects.filter(pk=version.pk).update(storage_prefix=stored["prefix"], digest=stored["digest"],
                                                       n_positions=128, files=stored["manifest"])
    version.refresh_from_db()
    return version


def licence_for(customer, version, **terms):
    """An active grant of `customer` on `version` under these terms, and an API key for it."""
    from licensing.services import apikey_create
    from tests import factories

    listing = getattr(version, "listing", None) or factories.listing(version.owner, mv=version)
    grant = factories.grant(customer, factories.offer(listing, name=f"offer {factories._n()}",
                                                      rate_limit_per_minute=1000, **terms))
    _key, plaintext = apikey_create(owner=customer, name="key", grants=[grant])
    return grant, plaintext
