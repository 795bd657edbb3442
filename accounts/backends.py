"""The one password check of the site, throttled: the log-in page and the admin's both come here."""

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied

from core.http import client_ip

from .errors import TooManyAttempts
from .services import login_authorize


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend, counting each password check made for a request against its account
    and its client address before the password is tried."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is not None:
            try:
                login_authorize(username=username or kwargs.get("username") or "", ip=client_ip(request))
            except TooManyAttempts as exc:
                # PermissionDenied stops Django trying other backends; the log-in page reads the
                # refusal from the request to answer 429 with its message.
                request.account_throttle = exc
                raise PermissionDenied(exc.message) from exc
        return super().authenticate(request, username=username, password=password, **kwargs)
