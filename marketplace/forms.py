"""Page forms. They only shape input; the services validate the rules and raise domain errors."""

from django import forms

from licensing.terms import OWNERSHIP_DEFAULT, OWNERSHIPS, QUOTA_PERIODS, USES

from .services import CURRENCIES


class CatalogueSearchForm(forms.Form):
    q = forms.CharField(required=False, label="Search")
    base_model = forms.CharField(required=False)
    use = forms.ChoiceField(required=False, choices=[("", "any use")] + [(u, u) for u in USES])
    max_price = forms.DecimalField(required=False, min_value=0, decimal_places=2, label="Max price")

    def filters(self) -> dict:
        data = self.cleaned_data if self.is_valid() else {}
        max_price = data.get("max_price")
        return {
            "text": (data.get("q") or "").strip(),
            "base_model": (data.get("base_model") or "").strip(),
            "use": data.get("use") or "",
            "max_price_cents": int(max_price * 100) if max_price is not None else None,
        }


class PublishForm(forms.Form):
    model_version = forms.ChoiceField()
    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    acknowledge_memorisation = forms.BooleanField(
        required=False, label="I acknowledge that this version's samples copy its training data",
        help_text="Needed only for a version with a memorisation warning (listed above): its outputs may "
                  "reproduce the training text word for word. Your acknowledgement is recorded on its card and "
                  "in the audit log.")

    def __init__(self, *args, versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model_version"].choices = [(str(v.pk), str(v)) for v in versions]
        self.warned = [(v, w) for v in versions for w in v.warnings
                       if w.get("code") == "memorisation" and v.memorisation_acknowledged_at is None]


class ListingEditForm(forms.Form):
    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    card = forms.CharField(widget=forms.Textarea(attrs={"rows": 12}))
    samples = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False,
                              help_text="One sample per paragraph (separate them with a blank line).")

    def samples_list(self) -> list[str]:
        return [s.strip() for s in self.cleaned_data["samples"].replace("\r\n", "\n").split("\n\n") if s.strip()]


class ServingPrecisionForm(forms.Form):
    """The trainer's choice of serving precision for a listing's model version."""

    LABELS = {"fp32": "fp32 (exact)", "int8": "int8 (quantised weights and activations: smaller and faster)",
              "bf16": "bf16 (on CUDA inference workers; a CPU one serves fp32)"}

    precision = forms.ChoiceField(required=False, label="Serve this model at")

    def __init__(self, *args, precisions: tuple[str, ...], default: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["precision"].choices = [("", f"the deployment's default ({default})")] + [
            (p, self.LABELS.get(p, p)) for p in precisions]


# Offered as suggestions beside the licence field; any SPDX id is accepted.
COMMON_LICENCE_IDS = (("custom", "Imprint terms only"), ("cc-by-4.0", "CC BY 4.0"), ("cc-by-sa-4.0", "CC BY-SA 4.0"),
                      ("cc-by-nc-4.0", "CC BY-NC 4.0"), ("cc0-1.0", "CC0 1.0"), ("mit", "MIT"),
                      ("apache-2.0", "Apache 2.0"))


class OfferForm(forms.Form):
    """Price and terms of an offer. Terms fields are turned into a terms document for the service."""

    name = forms.CharField(max_length=100, initial="Standard")
    fee = forms.DecimalField(min_value=0, decimal_places=2, initial=25, label="One-time fee")
    currency = forms.ChoiceField(choices=[(c, c.upper()) for c in CURRENCIES])
    metered_cents_per_1k = forms.IntegerField(required=False, min_value=1,
                                              label="Metered price (cents per 1,000 tokens)")
    licence_id = forms.CharField(
        max_length=64, initial="custom", label="Licence of the outputs",
        widget=forms.TextInput(attrs={"list": "licence-ids"}),
        help_text=("“custom”: these terms are the whole licence, the usual choice. Or give the SPDX id of a "
                   "standard licence the outputs are released under, e.g. cc-by-4.0."))
    uses = forms.MultipleChoiceField(choices=[(u, u) for u in USES], widget=forms.CheckboxSelectMultiple,
                                     required=False)
    samples_publish = forms.BooleanField(required=False, label_suffix="", initial=True,
                                         label="Samples may be published")
    samples_resell = forms.BooleanField(required=False, label_suffix="", label="Samples may be resold")
    attribution = forms.CharField(max_length=300, required=False,
                                  help_text="Required when the data is licensed CC BY (any CC licence but CC0).")
    ownership = forms.ChoiceField(
        choices=[(o, label) for o, label in zip(OWNERSHIPS, (
            "customer: the customer owns what they generate, within the permitted uses",
            "licensed: you keep the rights; the customer holds a licence for the permitted uses",
            "public: outputs carry no restriction beyond attribution"), strict=True)],
        initial=OWNERSHIP_DEFAULT, required=False, label="Ownership of outputs")
    quota_tokens = forms.IntegerField(min_value=1, initial=100_000)
    quota_period = forms.ChoiceField(choices=[(p, p) for p in QUOTA_PERIODS])
    rate_limit_per_minute = forms.IntegerField(min_value=1, initial=60)
    duration_days = forms.IntegerField(required=False, min_value=1, help_text="Empty: perpetual.")
    restrictions = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                                   help_text="One restriction per line.")

    def terms_document(self) -> dict:
        d = self.cleaned_data
        return {
            "licence_id": d["licence_id"], "uses": d["uses"],
            "samples": {"publish": d["samples_publish"], "resell": d["samples_resell"]},
            "attribution": d["attribution"], "ownership": d["ownership"] or OWNERSHIP_DEFAULT,
            "quota": {"tokens": d["quota_tokens"], "period": d["quota_period"]},
            "rate_limit_per_minute": d["rate_limit_per_minute"], "duration_days": d["duration_days"],
            "restrictions": [r.strip() for r in d["restrictions"].splitlines() if r.strip()],
        }

    def price(self) -> dict:
        d = self.cleaned_data
        return {"fee_cents": int(d["fee"] * 100), "currency": d["currency"],
                "metered_cents_per_1k": d["metered_cents_per_1k"]}


# --- Commissions ---------------------------------------------------------------------------------

def _cents(value) -> int:
    """"12.50" → 1250: amounts are typed in the currency's units and kept in integer cents."""
    from decimal import Decimal, InvalidOperation

    try:
        amount = Decimal(str(value).replace(",", "").strip())
    except InvalidOperation as exc:
        raise forms.ValidationError("Give an amount such as 250.00.") from exc
    if amount != amount.quantize(Decimal("0.01")) or amount <= 0:
        raise forms.ValidationError("Give a positive amount with at most two decimals.")
    return int(amount * 100)


class CommissionForm(forms.Form):
    """A new commission, with the customer's dataset uploaded through training's validation."""

    title = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), label="What the model should do")
    examples = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}),
                               help_text="Example texts, separated by a blank line.")
    file = forms.FileField(required=False, label="Your dataset (optional)",
                           help_text="UTF-8 text; separate documents with <|endoftext|>. Trainers never download it.")
    licence = forms.ChoiceField(choices=[("proprietary-owned", "My own text (I hold all rights)"),
                                         ("cc-by-4.0", "CC BY 4.0"), ("cc0-1.0", "CC0 1.0"),
                                         ("public-domain", "Public domain")], required=False,
                                label="Licence of your data")
    licence_attested = forms.BooleanField(required=False, label="I have the right to have a model trained on this data")
    rights_holders = forms.CharField(required=False, max_length=2000, label="Rights-holders of the data",
                                     help_text="Named in the licence of the model (one per line).",
                                     widget=forms.Textarea(attrs={"rows": 2}))
    show_dataset_stats = forms.BooleanField(required=False, label="Trainers may see the dataset's statistics")
    budget = forms.CharField(label="Budget", help_text="In the currency, e.g. 500.00.")
    currency = forms.ChoiceField(choices=[(c, c.upper()) for c in ("usd", "eur", "gbp", "chf", "cad", "aud")])
    uses = forms.MultipleChoiceField(choices=[(u, u) for u in ("personal", "research", "education", "internal",
                                                                "commercial")],
                                     widget=forms.CheckboxSelectMultiple, initial=["commercial"])
    ownership = forms.ChoiceField(choices=[("customer", "I own the outputs"), ("licensed", "Licensed to me"),
                                           ("public", "Public")], initial="customer", label="Ownership of outputs")
    exclusive = forms.BooleanField(required=False, initial=True, label="Exclusive: nobody else may use the model")
    deadline = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def clean_budget(self) -> int:
        return _cents(self.cleaned_data["budget"])

    def clean_examples(self) -> list[str]:
        text = (self.cleaned_data.get("examples") or "").replace("\r\n", "\n")
        return [part.strip() for part in text.split("\n\n") if part.strip()]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("file") and not cleaned.get("licence_attested"):
            self.add_error("licence_attested", "Confirm you may have a model trained on this data.")
        return cleaned


class ProposalForm(forms.Form):
    price = forms.CharField(help_text="In the commission's currency, e.g. 400.00.")
    base_model = forms.ChoiceField(choices=[])
    method = forms.ChoiceField(choices=[("full", "Full fine-tuning"), ("lora", "LoRA adapter")])
    steps = forms.IntegerField(min_value=1, max_value=1_000_000, initial=400)
    context_length = forms.IntegerField(min_value=8, max_value=4096, initial=64, label="Context (tokens)")
    delivery_date = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    message = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Plan and message")

    def __init__(self, *args, **kwargs):
        from training.forms import BASE_MODEL_CHOICES

        super().__init__(*args, **kwargs)
        self.fields["base_model"].choices = BASE_MODEL_CHOICES

    def clean_price(self) -> int:
        return _cents(self.cleaned_data["price"])
