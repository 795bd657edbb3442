from django import forms
from django.contrib.auth.forms import UserCreationForm

from .models import PersonalAccessToken, User


class SignUpForm(UserCreationForm):
    email = forms.EmailField(required=True)
    is_trainer = forms.BooleanField(required=False, label_suffix="", label="I train and sell models")
    is_customer = forms.BooleanField(required=False, label_suffix="", initial=True,
                                     label="I buy licences and generate text")

    class Meta:
        model = User
        fields = ("username", "email")

    def clean_email(self):
        email = self.cleaned_data["email"].lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this e-mail address already exists.")
        return email

    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("is_trainer") or cleaned.get("is_customer")):
            raise forms.ValidationError("Choose at least one role: trainer, customer, or both.")
        return cleaned


class RolesForm(forms.Form):
    is_trainer = forms.BooleanField(required=False, label_suffix="", label="Trainer")
    is_customer = forms.BooleanField(required=False, label_suffix="", label="Customer")

    def clean(self):
        cleaned = super().clean()
        if not (cleaned.get("is_trainer") or cleaned.get("is_customer")):
            raise forms.ValidationError("Keep at least one role.")
        return cleaned


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. “laptop CLI”.")
    scopes = forms.MultipleChoiceField(choices=PersonalAccessToken.Scope.choices, widget=forms.CheckboxSelectMultiple,
                                       initial=["read", "training"])
