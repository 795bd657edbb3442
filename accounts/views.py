from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from core.http import client_ip
from core.links import site_root

from . import services
from .errors import TokenNotFound, TooManyAttempts
from .forms import RolesForm, SignUpForm, TokenForm
from .models import User


def _too_many(request, template: str, context: dict, exc: TooManyAttempts):
    """The page again, with the throttle's message, as a 429 that says when to retry."""
    messages.error(request, exc.message)
    response = render(request, template, context, status=429)
    response["Retry-After"] = exc.headers["retry-after"]
    return response


class LoginView(auth_views.LoginView):
    """Django's log-in; the password check is throttled (accounts.backends), and a throttled
    attempt is answered 429 with the throttle's message."""

    template_name = "accounts/login.html"

    def form_invalid(self, form):
        throttle = getattr(self.request, "account_throttle", None)
        if throttle is not None:
            return _too_many(self.request, self.template_name, self.get_context_data(form=form), throttle)
        return super().form_invalid(form)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's password reset, throttled, with the link built by core.links (from SITE_URL when
    configured: Django's own view always takes the domain from the request's Host header)."""

    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/password_reset_email.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):
        try:
            services.email_request_authorize(email=form.cleaned_data["email"], ip=client_ip(self.request))
        except TooManyAttempts as exc:
            return _too_many(self.request, self.template_name, self.get_context_data(form=form), exc)
        site = urlsplit(site_root(self.request))
        form.save(domain_override=site.netloc, use_https=site.scheme == "https", request=self.request,
                  token_generator=self.token_generator, from_email=self.from_email,
                  email_template_name=self.email_template_name, subject_template_name=self.subject_template_name,
                  html_email_template_name=self.html_email_template_name,
                  extra_email_context={"site_url": site_root(self.request)})
        return HttpResponseRedirect(self.get_success_url())


def signup(request):
    form = SignUpForm(request.POST or None)
    if request.method == "POST":
        try:
            services.signup_authorize(email=request.POST.get("email", ""), ip=client_ip(request))
        except TooManyAttempts as exc:
            return _too_many(request, "accounts/signup.html", {"form": form}, exc)
    if request.method == "POST" and form.is_valid():
        user = services.user_create(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            is_trainer=form.cleaned_data["is_trainer"],
            is_customer=form.cleaned_data["is_customer"],
        )
        login(request, user, backend="accounts.backends.ThrottledModelBackend")
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


def _roles_form(user, data=None) -> RolesForm:
    return RolesForm(data, initial={"is_trainer": user.is_trainer, "is_customer": user.is_customer})


@login_required
def account(request):
    user = request.user
    form = _roles_form(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.user_set_roles(user=user, **form.cleaned_data)
        messages.success(request, "Your roles were updated.")
        return redirect("accounts:account")
    return render(request, "accounts/account.html", {"form": form})


@login_required
def resend_verification(request):
    if request.method == "POST" and request.user.email_verified_at is None:
        try:
            services.email_request_authorize(email=request.user.email, ip=client_ip(request))
        except TooManyAttempts as exc:
            return _too_many(request, "accounts/account.html", {"form": _roles_form(request.user)}, exc)
        services.user_send_verification(user=request.user)
        messages.success(request, "We sent the confirmation e-mail again.")
    return redirect("accounts:account")


@login_required
def tokens(request):
    """Personal access tokens: create one (its plaintext shown on this response only) or revoke."""
    form = TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        token, plaintext = services.token_create(owner=request.user, name=form.cleaned_data["name"],
                                                 scopes=form.cleaned_data["scopes"])
        created = {"token": token, "plaintext": plaintext}
        form = TokenForm()
    response = render(request, "accounts/tokens.html", {
        "form": form, "created": created, "tokens": request.user.access_tokens.all()})
    response["Cache-Control"] = "no-store"  # the page may hold a secret shown only once
    return response


@require_POST
@login_required
def token_revoke(request, pk: int):
    try:
        token = services.token_revoke(owner=request.user, token_id=pk)
    except TokenNotFound as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Token {token.prefix}… revoked: it no longer works.")
    return redirect("accounts:tokens")
