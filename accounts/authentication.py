"""DRF authentication by personal access token: `Authorization: Bearer ipat_…`.

The scope check happens here rather than in each view's permission classes: several management
views replace `permission_classes` (AllowAny catalogue pages, trainer-only APIs), and a check that
a view can drop by overriding a list is one that some view eventually drops. Every request made
with a token therefore passes `token_require_scope` for the app that serves it, and a token sent
to any other endpoint (generation, compliance, the admin) is refused."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, permissions

from .errors import TokenNotAccepted
from .services import TOKEN_PREFIX, token_authenticate, token_require_scope

# The management APIs by the app whose module defines the view, and the scope each needs.
SCOPE_BY_APP = {"training": "training", "marketplace": "marketplace", "licensing": "licences"}


def view_token_scope(view) -> str | None:
    """The scope a view needs from a token: its `token_scope` attribute, else its app's; None
    when tokens are not accepted there."""
    explicit = getattr(view, "token_scope", None)
    if explicit:
        return explicit
    return SCOPE_BY_APP.get(type(view).__module__.split(".")[0])


class PersonalAccessTokenAuthentication(authentication.BaseAuthentication):
    """A bad, revoked or deactivated account's token is 401; a token without the view's scope is
    403 (insufficient_scope), as is one sent where tokens are not accepted."""

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, plaintext = header.partition(" ")
        plaintext = plaintext.strip()
        if scheme.lower() != "bearer" or not plaintext.startswith(TOKEN_PREFIX):
            return None  # not ours (an API key, or no credential): other classes may take it
        # Refusals are domain errors (401 TokenInvalid / TokenOwnerInactive, 403 scope), mapped
        # once to the error shape: DRF would turn its own AuthenticationFailed into a 403 here,
        # as the session authentication before this class sends no WWW-Authenticate challenge.
        token = token_authenticate(plaintext)
        view = (getattr(request, "parser_context", None) or {}).get("view")
        scope = view_token_scope(view) if view is not None else None
        if scope is None:
            raise TokenNotAccepted("Personal access tokens are not accepted here.")
        token_require_scope(token=token, scope=scope, write=request.method not in permissions.SAFE_METHODS)
        return token.owner, token

    def authenticate_header(self, request):
        return 'Bearer realm="imprint"'


class PersonalAccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = PersonalAccessTokenAuthentication
    name = "PersonalAccessToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A personal access token (ipat_…) with the scope the endpoint needs."}
