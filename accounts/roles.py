"""Role gates for pages and APIs. A missing role is a 403 with a message saying how to get it."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from core.errors import Forbidden


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


class RoleRequired(Forbidden):
    """403 for an API caller without the role; the code names it (`customer_role_required`)."""

    def __init__(self, role: str):
        super().__init__(f"This endpoint is for {role}s; turn the role on in your account.")
        self.code = f"{role}_role_required"


def user_with_role(user, role: str):
    """`user` when they have `role` ("trainer", "customer" or "staff"). Raises RoleRequired."""
    if role not in getattr(user, "roles", ()):
        raise RoleRequired(role)
    return user
