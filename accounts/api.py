"""Account API: who the credential belongs to (the CLI's `imprint login` checks a token with it)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import PersonalAccessToken
from .services import TOKEN_ANY_SCOPE


class AccountMeApi(APIView):
    token_scope = TOKEN_ANY_SCOPE  # any valid token may ask whose it is

    @extend_schema(operation_id="account_me", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        user, token = request.user, request.auth
        body = {"username": user.username, "roles": user.roles, "email_verified": user.email_verified_at is not None}
        if isinstance(token, PersonalAccessToken):
            body["token"] = {"name": token.name, "prefix": token.prefix, "scopes": token.scopes}
        return Response(body)
