"""Licensing JSON API: the customer's grants (and their licence download), API keys and terms.

Object-level permission is by query: a grant or key that is not the caller's is a 404, the same
as one that does not exist, so ids of other customers' grants are never confirmed.
"""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.roles import user_with_role
from core.links import absolute_url
from training.model_names import model_name

from .errors import GrantNotOwned, TermsNotFound
from .models import Grant, LicenceTerms
from .selectors import apikeys_for_owner, grant_certificate, grants_for_customer
from .services import apikey_create, apikey_revoke
from .terms import render_terms_text, terms_hash, validate_terms


def _customer(request):
    return user_with_role(request.user, "customer")


@extend_schema_field(OpenApiTypes.STR)
class ModelNameField(serializers.ReadOnlyField):
    """A model version's one name (training.model_names): its `title`, or its readable `api_id`
    (trainer/slug@digest12, the UUID while unlisted)."""

    def __init__(self, part: str, **kwargs):
        self.part = part
        super().__init__(**kwargs)

    def to_representation(self, value):
        return getattr(model_name(value), self.part)


MODEL_TITLE_HELP, MODEL_NAME_HELP = "The model's title (its listing's).", "Its readable id, trainer/slug@digest12."


class GrantOutput(serializers.ModelSerializer):
    terms_sha256 = serializers.CharField(source="terms_id")
    remaining_tokens = serializers.IntegerField()
    model_version_name = serializers.CharField(source="model_version.name")
    model_title = ModelNameField("title", source="model_version", help_text=MODEL_TITLE_HELP)
    model_name = ModelNameField("api_id", source="model_version", help_text=MODEL_NAME_HELP)

    class Meta:
        model = Grant
        fields = ["id", "state", "model_version", "model_version_name", "model_title", "model_name", "terms_sha256", "starts_at",
                  "expires_at", "quota_tokens", "quota_period", "used_tokens", "reserved_tokens",
                  "remaining_tokens", "price_paid_cents", "currency", "created_at"]


def own_grant(request, grant_id) -> Grant:
    grant = grants_for_customer(_customer(request)).filter(pk=grant_id).first()
    if grant is None:
        raise GrantNotOwned("No such grant.", param="grant")
    return grant


class GrantListApi(APIView):
    @extend_schema(operation_id="licences_grant_list", responses=GrantOutput(many=True))
    def get(self, request):
        return Response({"data": GrantOutput(grants_for_customer(_customer(request)), many=True).data})


class GrantDetailApi(APIView):
    @extend_schema(operation_id="licences_grant_detail", responses=GrantOutput)
    def get(self, request, grant_id):
        return Response(GrantOutput(own_grant(request, grant_id)).data)


class GrantLicenceDownloadApi(APIView):
    """The licence certificate of one of the caller's grants, as a JSON download."""

    @extend_schema(operation_id="licences_grant_download", responses=OpenApiTypes.OBJECT)
    def get(self, request, grant_id):
        grant = own_grant(request, grant_id)
        response = Response(grant_certificate(grant))
        response["Content-Disposition"] = f'attachment; filename="imprint-licence-{grant.pk}.json"'
        return response


class ApiKeyOutput(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    all_grants = serializers.BooleanField()
    grants = serializers.SerializerMethodField()
    default_purpose = serializers.CharField()
    created_at = serializers.DateTimeField()
    revoked_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField()

    grant_models = serializers.SerializerMethodField(help_text="The model of each grant in `grants`, by name.")

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_grants(self, key) -> list[str]:
        return [str(g.pk) for g in key.grants.all()]

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_grant_models(self, key) -> list[dict]:
        return [{"grant": str(g.pk), "model_title": model_name(g.model_version).title,
                 "model_name": model_name(g.model_version).api_id} for g in key.grants.all()]


class ApiKeyListCreateApi(APIView):
    class ApiKeyCreateInput(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        default_purpose = serializers.CharField(default="personal")
        grants = serializers.ListField(child=serializers.UUIDField(), required=False, allow_null=True)

    @extend_schema(operation_id="licences_key_list", responses=ApiKeyOutput(many=True))
    def get(self, request):
        return Response({"data": ApiKeyOutput(apikeys_for_owner(_customer(request)), many=True).data})

    @extend_schema(operation_id="licences_key_create", request=ApiKeyCreateInput, responses={
        201: OpenApiTypes.OBJECT,
        409: OpenApiResponse(OpenApiTypes.OBJECT, "The account already holds API_KEYS_PER_ACCOUNT_MAX active keys "
                                                  "(api_key_limit_reached): revoke one to create another.")})
    def post(self, request):
        user = _customer(request)
        data = self.ApiKeyCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        grants = None
        if data.validated_data.get("grants") is not None:
            ids = data.validated_data["grants"]
            grants = list(Grant.objects.filter(pk__in=ids, customer=user))
            if len(grants) != len(set(ids)):
                raise GrantNotOwned("No such grant.", param="grants")
        key, plaintext = apikey_create(owner=user, name=data.validated_data["name"], grants=grants,
                                       default_purpose=data.validated_data["default_purpose"])
        # The only response that ever contains the key.
        return Response({**ApiKeyOutput(key).data, "key": plaintext}, status=201)


class ApiKeyRevokeApi(APIView):
    @extend_schema(operation_id="licences_key_revoke", request=None, responses=ApiKeyOutput)
    def post(self, request, key_id):
        key = apikey_revoke(key_id=key_id, owner=_customer(request))
        return Response(ApiKeyOutput(key).data)


class TermsDetailApi(APIView):
    """A terms version by its SHA-256 (public): the document and the rendered licence text."""

    permission_classes = [AllowAny]

    @extend_schema(operation_id="licences_terms_detail", responses=OpenApiTypes.OBJECT)
    def get(self, request, sha256):
        terms = LicenceTerms.objects.filter(pk=sha256.lower()).first()
        if terms is None:
            raise TermsNotFound("No such licence terms.", param="sha256")
        return Response({"sha256": terms.sha256, "terms": terms.document,
                         "text": render_terms_text(terms.document, sha256=terms.sha256),
                         "url": absolute_url(reverse("licensing:terms_json", args=[terms.sha256]), request)})


class TermsPreviewApi(APIView):
    """Validate terms and show their hash and text before offering them (a message per bad field)."""

    @extend_schema(operation_id="licences_terms_preview", request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        document = validate_terms(request.data.get("terms"))
        sha = terms_hash(document)
        return Response({"sha256": sha, "terms": document, "text": render_terms_text(document, sha256=sha)})
