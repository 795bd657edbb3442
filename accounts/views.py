from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.shortcuts import redirect, render

from . import services
from .forms import RolesForm, SignUpForm
from .models import User


def signup(request):
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.user_create(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            is_trainer=form.cleaned_data["is_trainer"],
            is_customer=form.cleaned_data["is_customer"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, "Welcome to Imprint. We sent you an e-mail to confirm your address.")
        return redirect("home")
    return render(request, "accounts/signup.html", {"form": form})


def verify_email(request, token: str):
    try:
        services.user_verify_email(token=token)
    except (signing.BadSignature, User.DoesNotExist):
        messages.error(request, "This confirmation link is invalid or has expired.")
        return redirect("home")
    messages.success(request, "Your e-mail address is confirmed.")
    return redirect("home")


@login_required
def account(request):
    user = request.user
    form = RolesForm(request.POST or None, initial={"is_trainer": user.is_trainer, "is_customer": user.is_customer})
    if request.method == "POST" and form.is_valid():
        services.user_set_roles(user=user, **form.cleaned_data)
        messages.success(request, "Your roles were updated.")
        return redirect("accounts:account")
    return render(request, "accounts/account.html", {"form": form})


@login_required
def resend_verification(request):
    if request.method == "POST" and request.user.email_verified_at is None:
        services.user_send_verification(user=request.user)
        messages.success(request, "We sent the confirmation e-mail again.")
    return redirect("accounts:account")
