"""Factories for the licensing and marketplace tests: plain functions that build real rows through
the ORM (and the services where a service is the only sanctioned writer)."""

from __future__ import annotations

import hashlib
import itertools

from accounts.models import User
from licensing.models import Grant, LicenceTerms
from licensing.services import grant_activate, grant_create_pending, terms_create
from marketplace.models import Listing, Offer
from training.models import Dataset, TrainingJob

_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


def user(username: str | None = None, *, trainer=False, customer=True, staff=False, verified=True) -> User:
    """A user whose e-mail address is confirmed unless `verified=False` (buying and keys need it)."""
    from django.utils import timezone

    username = username or f"user{_n()}"
    u = User(username=username, email=f"{username}@example.com", is_trainer=trainer,
             is_customer=customer, is_staff=staff, email_verified_at=timezone.now() if verified else None)
    u.set_password("pw-Imprint-123")
    u.save()
    return u


def dataset(owner: User, *, licence: str = "cc-by-4.0", attested: bool = True,
            rights_holders: tuple[str, ...] = ()) -> Dataset:
    n = _n()
    digest = hashlib.sha256(f"dataset-{n}".encode()).hexdigest()
    return Dataset.objects.create(owner=owner, name=f"corpus {n}", file=f"datasets/{digest}.txt",
                                  sha256=digest, size_bytes=1024, licence=licence, rights_holders=list(rights_holders),
                                  licence_attested=attested, stats={"documents": 10})


def job(owner: User, *, data: Dataset | None = None, state: str = TrainingJob.State.SUCCEEDED) -> TrainingJob:
    data = data or dataset(owner)
    return TrainingJob.objects.create(owner=owner, dataset=data, name=f"job {_n()}", base_model="gpt2",
                                      total_steps=100, step=100, state=state)


def model_version(owner: User, *, dataset_licence: str = "cc-by-4.0", base_licence: str = "mit",
                  job_state: str = TrainingJob.State.SUCCEEDED, base_model: str = "gpt2",
                  rights_holders: tuple[str, ...] = (), attested: bool = True):
    from training.models import ModelVersion

    data = dataset(owner, licence=dataset_licence, rights_holders=rights_holders, attested=attested)
    j = job(owner, data=data, state=job_state)
    n = _n()
    return ModelVersion.objects.create(
        owner=owner, job=j, name=f"model {n}", from_step=100, storage_prefix=f"models/{n}/",
        digest=hashlib.sha256(f"model-{n}".encode()).hexdigest(), parameter_count=124_000_000,
        base_model=base_model, base_licence=base_licence, dataset_digest=data.sha256,
        dataset_licence=dataset_licence, n_positions=1024, metrics={"val_loss": 3.2},
        card=f"# Model {n}\n\nFine-tuned from {base_model}.", files=[],
    )


def terms_raw(**overrides) -> dict:
    raw = {
        "licence_id": "custom",
        "uses": ["personal", "research"],
        "samples": {"publish": True, "resell": False},
        "attribution": "Generated with an Imprint model",
        "quota": {"tokens": 100_000, "period": "month"},
        "rate_limit_per_minute": 60,
        "duration_days": 365,
        "restrictions": ["No impersonation of real people."],
    }
    raw.update(overrides)
    return raw


def terms(mv=None, **overrides) -> LicenceTerms:
    return terms_create(raw=terms_raw(**overrides), model_version=mv)


def listing(trainer: User | None = None, *, mv=None, published: bool = True, title: str | None = None,
            description: str = "A fine-tuned GPT-2.", **mv_kwargs) -> Listing:
    from django.utils import timezone

    trainer = trainer or user(trainer=True, customer=False)
    mv = mv or model_version(trainer, **mv_kwargs)
    return Listing.objects.create(
        trainer=trainer, model_version=mv, title=title or mv.name, description=description,
        card=mv.card, samples=["Once upon a time", "The river ran"], published=published,
        published_at=timezone.now() if published else None,
    )


def offer(lst: Listing, *, fee_cents: int = 2500, currency: str = "usd", metered: int | None = None,
          name: str = "Standard", **terms_overrides) -> Offer:
    t = terms(lst.model_version, **terms_overrides)
    return Offer.objects.create(listing=lst, name=name, terms=t, fee_cents=fee_cents, currency=currency,
                                metered_cents_per_1k=metered)


def grant(customer: User, off: Offer, *, active: bool = True) -> Grant:
    g = grant_create_pending(customer=customer, model_version=off.listing.model_version, terms=off.terms,
                             acceptance=None, price_paid_cents=off.fee_cents, currency=off.currency)
    if active:
        g, _ = grant_activate(grant_id=g.pk)
    return g
