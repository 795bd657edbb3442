"""Object-level permissions everywhere: every URL pattern that names an object is tried with
another user's ids, by GET and POST. Nothing private answers 200, and nothing changes.

The test enumerates the URLconf: an endpoint added later with an unknown parameter fails here until
it is added to the map below, so no endpoint escapes the check."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.urls import URLPattern, URLResolver, get_resolver

from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.services import token_create
from compliance.services.cases import case_open_from_flag
from compliance.services.flags import flag_raise
from accounts.models import PersonalAccessToken
from licensing.models import ApiKey, Grant
from licensing.services import apikey_create
from marketplace import services as market
from marketplace.commissions import commission_create, proposal_accept, proposal_submit
from marketplace.models import Listing, Order
from tests import factories
from training.models import Checkpoint, TrainingJob
from training.services.datasets import dataset_upload_receive

pytestmark = pytest.mark.django_db

# Public by design: anyone may see a published listing, its terms, try it or start buying an offer.
PUBLIC = {"accounts:verify", "accounts:password_reset_confirm", "marketplace:listing_detail",
          "marketplace:listing_try", "marketplace:offer_buy", "marketplace:api_offer_purchase",
          "marketplace:api_listing_detail", "licensing:api_terms_detail", "licensing:terms_json",
          "licensing:terms_text", "licensing:terms_text_stamped", "licensing:terms_text_former",
          "licensing:terms_json_former", "inference:try"}
REFUSED = {302, 400, 401, 403, 404, 405, 409}


def _walk(patterns, prefix="", namespace=None):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern), p.namespace or namespace)
        elif isinstance(p, URLPattern) and p.pattern.converters or getattr(p.pattern, "regex", None) and p.pattern.regex.groupindex:
            name = f"{namespace}:{p.name}" if namespace else p.name
            yield name, list(p.pattern.regex.groupindex) if not p.pattern.converters else list(p.pattern.converters)


def object_patterns():
    return [(name, params) for name, params in _walk(get_resolver().url_patterns)
            if not name.startswith("admin:")]


@pytest.fixture
def owner_world(make_user):
    """Everything one user owns: training work, a listing with an offer, a paid order, a grant, a
    key, and a compliance case about the grant."""
    owner = make_user("olga", trainer=True, customer=True)
    version = factories.model_version(owner)
    job = version.job
    checkpoint = Checkpoint.objects.create(job=job, step=10, storage_prefix=f"jobs/{job.pk}/checkpoints/step-10")
    listing = factories.listing(owner, mv=version)
    offer = factories.offer(listing)
    order = market.order_create(customer=owner, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                                ip_address="127.0.0.1", provider=Order.Provider.LOCAL_TEST)
    order = market.order_pay_local_test(order_id=order.pk, customer=owner, card_number=market.TEST_CARD_SUCCEEDS)
    grant = order.grant
    key, _ = apikey_create(owner=owner, name="mine")
    token, _ = token_create(owner=owner, name="mine", scopes=["read"])
    upload = dataset_upload_receive(owner=owner, name="staged", upload=SimpleUploadedFile("s.txt", b"text"),
                                    licence="cc0-1.0", licence_attested=True, enqueue=False)
    flag = flag_raise(kind="purpose_not_permitted", severity=2, evidence={"test": True}, grant=grant, customer=owner)
    staff = make_user("stan", staff=True)
    case = case_open_from_flag(flag_id=flag.pk, staff=staff)
    other_flag = flag_raise(kind="purpose_not_permitted", severity=1, evidence={}, grant=grant, customer=owner,
                            dedupe_key="other")
    # A commission past its open phase (awarded to another trainer): only its two parties see it.
    helper = make_user("tara", trainer=True, customer=False)
    due = timezone.now() + timedelta(days=30)
    commission = commission_create(customer=owner, title="Bakery", description="Our voice.", examples=[],
                                   budget_cents=50_000, currency="usd", uses=["commercial"], ownership="customer",
                                   exclusive=True, deadline=due)
    proposal = proposal_submit(trainer=helper, commission_id=commission.pk, price_cents=40_000, base_model="tiny",
                               method="full", steps=40, context_length=32, delivery_date=due)
    proposal_accept(customer=owner, proposal_id=proposal.pk)
    return {"pk:dataset": job.dataset.pk, "pk:job": job.pk, "pk:version": version.pk, "pk:upload": upload.pk,
            "pk:token": token.pk,
            "checkpoint_id": checkpoint.pk, "listing_id": listing.pk, "offer_id": offer.pk, "order_id": order.pk,
            "grant_id": grant.pk, "key_id": key.pk, "case_id": case.pk, "flag_id": other_flag.pk,
            "commission_id": commission.pk, "proposal_id": proposal.pk,
            "sha256": offer.terms_id, "action": "cancel", "name": "config.json",
            "objects": {"job": job, "grant": grant, "key": key, "listing": listing, "case": case}}


def _kwargs(name: str, params: list[str], world: dict) -> dict:
    kwargs = {}
    for param in params:
        if param == "pk":
            kind = next(k for k in ("dataset", "version", "job", "upload", "token") if k in name)
            kwargs[param] = world[f"pk:{kind}"]
        else:
            assert param in world, f"{name}: add '{param}' to the permission map of this test"
            kwargs[param] = world[param]
    return kwargs


def test_every_object_endpoint_refuses_another_users_ids(client, make_user, owner_world):
    from django.urls import reverse

    # Control: the same URLs work for their owner, so refusals below are about the user, not the URL.
    client.force_login(owner_world["objects"]["job"].owner)
    for name in ("training:job", "training:version", "licensing:grant_detail", "marketplace:order_detail",
                 "compliance:my_case", "marketplace:listing_edit", "licensing:api_grant_detail"):
        params = dict(object_patterns())[name]
        assert client.get(reverse(name, kwargs=_kwargs(name, params, owner_world))).status_code == 200, name
    intruder = make_user("ivan", trainer=True, customer=True)
    client.force_login(intruder)
    checked = []
    for name, params in object_patterns():
        if name in PUBLIC:
            continue
        url = reverse(name, kwargs=_kwargs(name, params, owner_world))
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code in REFUSED, f"{method.upper()} {url} ({name}) gave {response.status_code}"
            if response.status_code == 302:
                assert owner_world["objects"]["job"].owner.username not in response["Location"]
        checked.append(name)
    assert len(checked) >= 40  # the whole surface, not a sample
    objects = owner_world["objects"]
    assert TrainingJob.objects.get(pk=objects["job"].pk).control_request == ""
    assert Grant.objects.get(pk=objects["grant"].pk).state == Grant.State.ACTIVE
    assert PersonalAccessToken.objects.filter(owner=objects["job"].owner, revoked_at=None).count() == 1
    assert ApiKey.objects.get(pk=objects["key"].pk).revoked_at is None
    assert Listing.objects.get(pk=objects["listing"].pk).published
    assert not objects["case"].decisions.exists()
