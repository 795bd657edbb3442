"""Forms of the licensing pages."""

from django import forms

from training.model_names import model_name

from .terms import USES


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100)
    default_purpose = forms.ChoiceField(choices=[(u, u) for u in USES])
    scope = forms.ChoiceField(choices=[("all", "All my licences"), ("some", "Only the licences ticked")],
                              widget=forms.RadioSelect, initial="all")
    grants = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, grants=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["grants"].choices = [(str(g.pk), str(model_name(g.model_version))) for g in grants]
