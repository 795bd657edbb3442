"""Populate the embedded default with a demo marketplace (idempotent: re-running keeps data).

A demo trainer fine-tunes the built-in pretrained base (imprint-base) on two corpora written for
the demo, and publishes the models with different licence offers; a demo customer buys a licence
through the local test-mode provider and gets an API key; a staff account finds a few flags and a
case in the compliance review queue.

The base is prepared once per installation (minutes on a CPU). Until it is ready this command only
creates the accounts and sends its preparation to a training worker; when the base is ready, the
marketplace's receiver of `builtin_base_ready` sends `marketplace.demo_listings` to the training
queue, which runs this command again to make the listings. So the site is up at once and the
demo listings appear when they are ready.
"""

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from inference.power import watermark_power_current, watermark_power_measure
from licensing.models import Grant
from licensing.services import apikey_create
from marketplace import services as market
from marketplace.demo_billing import demo_metered_month
from marketplace.demo_content import DEMO_HYPERPARAMETERS, harbour_logbook, kitchen_notes
from marketplace.models import Listing, Order
from training import job_runner
from training import services as training
from training.base_models import BUILTIN
from training.models import BuiltinBase, ModelVersion
from training.services import bases

# What `dev.py run` looks for in the demo's output to say the listings come later.
WAITING_FOR_BASE = "base model preparing in the background"

HP = DEMO_HYPERPARAMETERS


def _terms(uses, *, publish, resell, attribution, tokens, period, rate, days, restrictions=()):
    return {"licence_id": "custom", "uses": list(uses), "samples": {"publish": publish, "resell": resell},
            "attribution": attribution, "quota": {"tokens": tokens, "period": period},
            "rate_limit_per_minute": rate, "duration_days": days, "restrictions": list(restrictions)}


DEMO_MODELS = [
    {
        "title": "Harbour Logbook", "licence": "cc-by-4.0", "text": harbour_logbook,
        "prompt": "At dawn, the Marigold",
        "description": "Short entries in the voice of an old harbourmaster's logbook. Trained on 400 entries.",
        "offers": [
            ("Personal", _terms(["personal", "research"], publish=True, resell=False,
                                attribution="Text by Harbour Logbook on Imprint", tokens=20_000, period="month",
                                rate=30, days=365), 900, None),
            ("Commercial", _terms(["personal", "research", "internal", "commercial"], publish=True, resell=True,
                                  attribution="Harbour Logbook (Imprint)", tokens=500_000, period="month", rate=120,
                                  days=None), 4900, 20),
        ],
    },
    {
        "title": "Kitchen Notes", "licence": "cc-by-nc-4.0", "text": kitchen_notes, "prompt": "Warm the pan",
        "description": "Recipe notes in a grandmother's hand. The data is CC BY-NC, so only non-commercial offers.",
        "offers": [
            ("Research", _terms(["research", "education"], publish=False, resell=False,
                                attribution="Kitchen Notes model, Imprint", tokens=50_000, period="total",
                                rate=20, days=90, restrictions=["Do not present outputs as tested recipes."]),
             500, None),
        ],
    },
]


class Command(BaseCommand):
    help = "Create the demo accounts, models, listings, a customer licence and an API key (idempotent)."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("The demo is never created with IMPRINT_ENV=production.")
        call_command("demo_accounts", stdout=self.stdout)
        trainer, customer = User.objects.get(username="trainer"), User.objects.get(username="customer")
        if not self._base_ready():
            return
        listings = [self._listing(trainer, spec) for spec in DEMO_MODELS]
        self._customer_licence(customer, listings[0])
        demo_metered_month(customer=customer, listing=listings[0], write=self.stdout.write)
        # By name: compliance is a sibling app, which the marketplace never imports.
        call_command("demo_compliance", stdout=self.stdout)

    def _base_ready(self) -> bool:
        # The base-model list reads the hub probe's cached answer: ask it now rather than at beat's
        # first interval, so a fresh start shows whether the GPT-2 family can be fetched.
        transaction.on_commit(bases.hub_probe_enqueue)
        row = bases.builtin_base_row()
        if row.state == BuiltinBase.State.READY:
            return True
        row = bases.builtin_base_enqueue()
        self.stdout.write(f"  The demo listings: {WAITING_FOR_BASE} ({BUILTIN}, {row.progress:.0f} %, "
                          f"{row.phase}); the demo listings appear when it is ready.")
        return False

    def _listing(self, trainer, spec) -> Listing:
        existing = Listing.objects.filter(trainer=trainer, title=spec["title"]).first()
        if existing:
            self._measure_power(existing)
            return existing
        self.stdout.write(f"  fine-tuning {BUILTIN} for the demo model '{spec['title']}' (a minute or two) …")
        upload = SimpleUploadedFile(f"{spec['title']}.txt", spec["text"]().encode(), content_type="text/plain")
        dataset = training.dataset_create(owner=trainer, name=spec["title"], upload=upload,
                                          licence=spec["licence"], licence_attested=True, stats_base_model=BUILTIN)
        job = training.job_create(owner=trainer, dataset=dataset, name=spec["title"], base_model=BUILTIN,
                                  hyperparameters={**HP, "sample_prompt": spec["prompt"]})
        # Run here rather than wait for a worker: the demo is ready when the site starts. A worker
        # that later receives this job's message finds it claimed and does nothing.
        if job_runner.job_run(job_id=job.pk) != "succeeded":
            job.refresh_from_db()
            raise CommandError(f"demo training failed: {job.error_message}")
        version = ModelVersion.objects.get(job=job)
        job.refresh_from_db()
        samples = [spec["prompt"] + s.text for s in job.samples.filter(step=job.step)]
        listing = market.listing_publish(trainer=trainer, model_version_id=version.pk, title=spec["title"],
                                         description=spec["description"], samples=samples)
        for name, terms, fee, metered in spec["offers"]:
            market.offer_create(trainer=trainer, listing_id=listing.pk, name=name, terms=terms, fee_cents=fee,
                                metered_cents_per_1k=metered)
        self._measure_power(listing)
        return listing

    def _measure_power(self, listing: Listing) -> None:
        # Here rather than on a worker, so that the model pages show the figures at first start.
        if watermark_power_current(listing.model_version) is not None:
            return
        self.stdout.write(f"  measuring the watermark's detection power on '{listing.title}' …")
        power = watermark_power_measure(version_id=listing.model_version_id)
        self.stdout.write(f"    chosen {power.scheme}: recall {power.recall}, perplexity {power.perplexity_plain:.2f} plain, "
                          f"{power.perplexity_watermarked:.2f} watermarked" if power.recall else f"    {power.error}")

    def _customer_licence(self, customer, listing: Listing) -> None:
        credentials = settings.VAR_DIR / "demo-api-key.txt"
        if Grant.objects.filter(customer=customer, state=Grant.State.ACTIVE).exists():
            if credentials.exists():
                self.stdout.write(f"  demo customer API key: {credentials.read_text().strip()}")
            return
        offer = listing.offers.order_by("fee_cents").first()
        order = market.order_create(customer=customer, offer_id=offer.pk, accepted_terms_sha256=offer.terms_id,
                                    ip_address="127.0.0.1", provider=Order.Provider.LOCAL_TEST)
        market.order_pay_local_test(order_id=order.pk, customer=customer, card_number=market.TEST_CARD_SUCCEEDS)
        _, plaintext = apikey_create(owner=customer, name="demo key", default_purpose="personal")
        credentials.write_text(plaintext + "\n")
        self.stdout.write(f"  demo customer API key (also in {credentials}): {plaintext}")
