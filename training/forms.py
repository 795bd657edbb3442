"""Forms of the training app. The API validates through the same forms, so the page and the API
give the same field errors."""

from django import forms

from .base_models import BASE_MODELS, TINY

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


class JobForm(forms.Form):
    """Hyperparameters with defaults that train the built-in model in seconds."""

    dataset = forms.UUIDField(widget=forms.HiddenInput)
    name = forms.CharField(max_length=200, required=False)
    base_model = forms.ChoiceField(choices=BASE_MODEL_CHOICES, initial=TINY)
    steps = forms.IntegerField(min_value=1, max_value=1_000_000, initial=200)
    learning_rate = forms.FloatField(min_value=1e-7, max_value=1.0, initial=1e-3)
    batch_size = forms.IntegerField(min_value=1, max_value=256, initial=8)
    context_length = forms.IntegerField(min_value=8, max_value=1024, initial=64)
    warmup_steps = forms.IntegerField(min_value=0, initial=0)
    sample_every = forms.IntegerField(min_value=1, initial=50, help_text="Evaluate and write samples every N steps.")
    sample_count = forms.IntegerField(min_value=0, max_value=8, initial=2)
    sample_prompt = forms.CharField(max_length=500, required=False)
    sample_max_new_tokens = forms.IntegerField(min_value=1, max_value=256, initial=40)
    checkpoint_every = forms.IntegerField(min_value=1, initial=50)
    seed = forms.IntegerField(min_value=0, max_value=2**31 - 1, initial=42)
    early_stopping_patience = forms.IntegerField(min_value=1, required=False,
                                                 help_text="Stop after N evaluations without improvement.")
    early_stopping_min_delta = forms.FloatField(min_value=0, required=False, initial=0.0)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            return
        # Unset fields take their defaults, so an API client can send just the dataset.
        data = self.data.copy()
        for name, field in self.fields.items():
            if data.get(name) in (None, "") and field.initial is not None:
                data[name] = field.initial
        self.data = data

    def clean(self):
        cleaned = super().clean()
        steps = cleaned.get("steps")
        for name in ("warmup_steps", "sample_every", "checkpoint_every"):
            value = cleaned.get(name)
            if steps and value is not None and value > steps and name != "checkpoint_every":
                self.add_error(name, f"Must not exceed the number of steps ({steps}).")
        return cleaned

    def hyperparameters(self) -> dict:
        keys = set(self.fields) - {"dataset", "name", "base_model"}
        return {k: self.cleaned_data[k] for k in sorted(keys)}
