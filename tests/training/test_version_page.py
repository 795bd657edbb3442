"""The trainer's page of one model version."""

import pytest

from tests import factories

pytestmark = pytest.mark.django_db


def test_a_model_trained_from_scratch_names_no_base_whose_weights_it_inherits(client):
    trainer = factories.user("tara", trainer=True)
    version = factories.model_version(trainer, base_model="tiny")
    client.force_login(trainer)
    page = client.get(f"/studio/versions/{version.pk}/").content.decode()
    assert "none: trained from scratch" in page and "tiny (mit)" not in page


def test_a_fine_tune_names_its_base_and_the_base_licence(client):
    trainer = factories.user("tara", trainer=True)
    version = factories.model_version(trainer, base_model="gpt2")
    client.force_login(trainer)
    assert "gpt2 (mit)" in client.get(f"/studio/versions/{version.pk}/").content.decode()
