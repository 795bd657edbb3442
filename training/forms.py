"""Forms of the training app. The API validates through the same forms, so the page and the API
give the same field errors."""

from django import forms

from .base_models import BASE_MODELS, TINY, base_defaults
from .config import METHODS, HyperparameterError, Limits, TrainConfig, hyperparameters

LICENCE_CHOICES = [
    ("public-domain", "Public domain (e.g. out of copyright)"),
    ("cc0-1.0", "CC0 1.0 (public domain dedication)"),
    ("cc-by-4.0", "CC BY 4.0"),
    ("cc-by-sa-4.0", "CC BY-SA 4.0 (share-alike)"),
    ("cc-by-nc-4.0", "CC BY-NC 4.0 (non-commercial)"),
    ("cc-by-nc-sa-4.0", "CC BY-NC-SA 4.0 (non-commercial, share-alike)"),
    ("cc-by-nd-4.0", "CC BY-ND 4.0 (no derivatives: cannot be sold)"),
    ("cc-by-nc-nd-4.0", "CC BY-NC-ND 4.0 (no derivatives: cannot be sold)"),
    ("mit", "MIT"),
    ("apache-2.0", "Apache 2.0"),
    ("openrail-m", "OpenRAIL-M (use restrictions apply)"),
    ("proprietary-owned", "My own text (I hold all rights)"),
    ("custom", "Other / custom"),
]
BASE_MODEL_CHOICES = [(m.name, m.label) for m in BASE_MODELS.values()]
MAX_RIGHTS_HOLDERS = 20


class BaseModelSelect(forms.Select):
    """The base-model choice with every base this server cannot train on now shown disabled, its
    reason beside its name ("preparing, 43 %"), so a trainer sees it and why before choosing."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unavailable: dict[str, str] = {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if value in self.unavailable:
            option["label"] = f"{label} (unavailable: {self.unavailable[value]})"
            option["attrs"]["disabled"] = True
        return option


def base_model_field(**kwargs) -> forms.ChoiceField:
    """A base-model field whose widget knows which bases are unavailable now (read when the form is
    made: the built-in base's state, local copies, the cached hub probe)."""
    from .availability import base_models_list

    field = forms.ChoiceField(choices=BASE_MODEL_CHOICES, widget=BaseModelSelect, **kwargs)
    field.base_models = base_models_list()
    field.widget.unavailable = {b["name"]: b["reason"] for b in field.base_models if not b["available"]}
    return field


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the file name.")
    file = forms.FileField(help_text="UTF-8 text; separate documents with <|endoftext|>.")
    licence = forms.ChoiceField(choices=LICENCE_CHOICES, help_text="The licence the data is under.")
    licence_attested = forms.BooleanField(
        required=True, label="I have the right to train on this data under this licence")
    rights_holders = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), label="Rights-holders",
        help_text="Who holds the rights in this text (authors, publishers; you, for your own text): one per "
                  "line or separated by semicolons. Every licence sold on a model trained on it names them.")
    stats_base_model = forms.ChoiceField(choices=BASE_MODEL_CHOICES, initial=TINY, required=False,
                                         label="Count tokens for")


    def clean_rights_holders(self) -> list[str]:
        text = self.cleaned_data.get("rights_holders") or ""
        names = list(dict.fromkeys(" ".join(n.split()) for n in text.replace(";", "\n").splitlines() if n.strip()))
        if len(names) > MAX_RIGHTS_HOLDERS or any(len(n) > 200 for n in names):
            raise forms.ValidationError(f"At most {MAX_RIGHTS_HOLDERS} rights-holders of 200 characters each.")
        return names


def _hyperparameter_field(kind: type, default, limits: Limits) -> forms.Field:
    """The form field of one TrainConfig field. Its limits are checked by TrainConfig (JobForm.clean),
    so the page, the API and the CLI show the same message; the widget's min/max only guide the browser."""
    common = {"required": False, "label": limits.label, "help_text": limits.help, "initial": default}
    if limits.choices:
        # An optional choice's blank is a value of its own (the method: "the base's default").
        blank = [("", "default for the base model")] if limits.optional else []
        return forms.TypedChoiceField(choices=blank + [(c, c) for c in limits.choices], empty_value=None,
                                      **common)
    if kind is str:
        return forms.CharField(max_length=limits.max_length, **common)
    bounds = {k: v for k, v in (("min", limits.min), ("max", limits.max)) if v is not None}
    if kind is int:
        return forms.IntegerField(widget=forms.NumberInput(attrs=bounds), **common)
    return forms.FloatField(widget=forms.NumberInput(attrs={"step": "any", **bounds}), **common)


def job_defaults(base_model: str, method: str | None = None) -> dict:
    """Every hyperparameter a job of `method` (None: the base's default) on `base_model` starts
    from: TrainConfig's defaults with the base's own (learning rate, warmup, context) over them; an
    unknown base gets TrainConfig's."""
    return {**TrainConfig().to_dict(), **base_defaults(base_model, method)}


def all_job_defaults() -> dict:
    """job_defaults of every base and method ("": the base's default method), for the page's script
    that switches them with the base and the method."""
    return {name: {method: job_defaults(name, method or None) for method in ("", *METHODS)} for name in BASE_MODELS}


class JobForm(forms.Form):
    """A job's dataset, name and base model, then one field per TrainConfig field, starting from
    the chosen base's defaults. A blank field takes its default, so an API client can send just
    the dataset."""

    dataset = forms.UUIDField(widget=forms.HiddenInput)
    name = forms.CharField(max_length=200, required=False)
    base_model = forms.ChoiceField(choices=BASE_MODEL_CHOICES, initial=TINY)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["base_model"] = base_model_field(initial=TINY)
        self.base_models = self.fields["base_model"].base_models
        chosen = (self.data.get("base_model") if self.is_bound else self.initial.get("base_model")) or TINY
        method = (self.data.get("method") if self.is_bound else None) or None
        defaults = job_defaults(str(chosen), method if method in METHODS else None)
        self.fields.update({name: _hyperparameter_field(kind, defaults.get(name, default), limits)
                            for name, kind, default, limits in hyperparameters()})
        if not self.is_bound:
            return
        data = self.data.copy()
        for name, field in self.fields.items():
            if data.get(name) in (None, "") and field.initial is not None:
                data[name] = field.initial
        self.data = data

    def clean(self):
        cleaned = super().clean()
        names = [name for name, *_ in hyperparameters() if name not in self.errors]
        try:
            config = TrainConfig.from_dict({name: cleaned.get(name) for name in names})
        except HyperparameterError as exc:
            self._add_errors(exc.errors)
            return cleaned
        self._add_errors(config.plan_errors())
        if not self.errors:
            self.config = config
        return cleaned

    def _add_errors(self, errors: dict[str, str]) -> None:
        for name, message in errors.items():
            self.add_error(name if name in self.fields else None, f"{message[0].upper()}{message[1:]}.")

    def hyperparameters(self) -> dict:
        """What the job stores (call after is_valid)."""
        return self.config.to_dict()
