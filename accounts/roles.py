"""Role gates for pages. A missing role is a 403 with a message saying how to get it."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied


def role_required(role: str):
    """Page decorator: the signed-in user must have `role` ("trainer", "customer" or "staff")."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if role not in request.user.roles:
                raise PermissionDenied(
                    f"This page is for {role}s. "
                    + ("Turn the role on in your account settings." if role != "staff" else "")
                )
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
