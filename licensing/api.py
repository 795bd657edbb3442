"""Licensing JSON API: the customer's grants (and their licence download), API keys, terms, and
compliance (public reports, the staff review API, customers' answers).

Object-level permission is by query: a grant or key that is not the caller's is a 404, the same
as one that does not exist, so ids of other customers' grants are never confirmed.
"""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import ApiError

from .compliance import (
    case_answer,
    case_decide,
    case_open_from_flag,
    flag_dismiss,
    report_submit,
)
from .compliance_selectors import (
    case_evidence,
    case_for_staff,
    review_queue,
    terms_in_force,
)
from .errors import GrantNotOwned, TermsNotFound
from .models import Case, Decision, Flag, Grant, LicenceTerms
from .selectors import apikeys_for_owner, grant_certificate, grants_for_customer
from .services import apikey_create, apikey_revoke
from .terms import render_terms_text, terms_hash, validate_terms


class CustomerRequired(ApiError):
    status_code = 403
    error_type = "permission_error"
    code = "customer_role_required"


def _customer(request):
    if not request.user.is_customer:
        raise CustomerRequired("This endpoint is for customers; turn the role on in your account.")
    return request.user


class GrantOutput(serializers.ModelSerializer):
    terms_sha256 = serializers.CharField(source="terms_id")
    remaining_tokens = serializers.IntegerField()
    model_version_name = serializers.CharField(source="model_version.name")

    class Meta:
        model = Grant
        fields = ["id", "state", "model_version", "model_version_name", "terms_sha256", "starts_at",
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

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_grants(self, key) -> list[str]:
        return [str(g.pk) for g in key.grants.all()]


class ApiKeyListCreateApi(APIView):
    class ApiKeyCreateInput(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        default_purpose = serializers.CharField(default="personal")
        grants = serializers.ListField(child=serializers.UUIDField(), required=False, allow_null=True)

    @extend_schema(operation_id="licences_key_list", responses=ApiKeyOutput(many=True))
    def get(self, request):
        return Response({"data": ApiKeyOutput(apikeys_for_owner(_customer(request)), many=True).data})

    @extend_schema(operation_id="licences_key_create", request=ApiKeyCreateInput, responses={201: OpenApiTypes.OBJECT})
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
                         "url": request.build_absolute_uri(reverse("licensing:terms_json", args=[terms.sha256]))})


class TermsPreviewApi(APIView):
    """Validate terms and show their hash and text before offering them (a message per bad field)."""

    @extend_schema(operation_id="licences_terms_preview", request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        document = validate_terms(request.data.get("terms"))
        sha = terms_hash(document)
        return Response({"sha256": sha, "terms": document, "text": render_terms_text(document, sha256=sha)})


# --- Compliance (issue 6): public reports, the staff review API, customers' answers -------------



class StaffRequired(BasePermission):
    """Staff only; everyone else (signed in or not) gets 403 in the one error shape."""

    message = "This endpoint is for compliance staff."

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class FlagOutput(serializers.ModelSerializer):
    severity = serializers.CharField(source="get_severity_display")
    customer = serializers.CharField(source="customer.username", default=None)

    class Meta:
        model = Flag
        fields = ["id", "kind", "severity", "grant", "customer", "api_key", "evidence", "case", "created_at",
                  "updated_at", "dismissed_at", "dismissed_reason"]


class CaseOutput(serializers.ModelSerializer):
    severity = serializers.CharField(source="get_severity_display")
    customer = serializers.CharField(source="customer.username")
    model_version_name = serializers.CharField(source="model_version.name")

    class Meta:
        model = Case
        fields = ["id", "state", "severity", "source", "summary", "grant", "customer", "model_version",
                  "model_version_name", "report", "created_at", "decided_at"]


class DecisionOutput(serializers.ModelSerializer):
    staff = serializers.CharField(source="staff.username")

    class Meta:
        model = Decision
        fields = ["id", "case", "action", "reason", "grant_state_after", "staff", "created_at"]


def _report_body(report, verification: dict | None) -> dict:
    case = getattr(report, "case", None) if report else None
    body = {"report": report.pk if report else None, "verdict": (verification or {}).get("verdict", "not_checked"),
            "verification": verification, "case": None}
    if case is not None:
        # The public learns that a case was opened and which licence terms apply, not who the customer is.
        body["case"] = {"id": case.pk, "model_version": str(case.model_version_id), "grant": str(case.grant_id),
                        "terms_sha256": case.grant.terms_id, "terms_in_force": terms_in_force(case.grant)}
    return body


class ReportCreateApi(APIView):
    """Report a text found somewhere (anyone; rate limited per address). It is verified at once."""

    permission_classes = [AllowAny]

    class ReportInput(serializers.Serializer):
        text = serializers.CharField(trim_whitespace=False, max_length=20_000)
        receipt = serializers.CharField(required=False, allow_blank=True, default="")
        where_url = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
        where_text = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
        website = serializers.CharField(required=False, allow_blank=True, default="",
                                        help_text="Leave empty (a honeypot for bots).")

    @extend_schema(operation_id="compliance_report_create", request=ReportInput,
                   responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = self.ReportInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        if fields.pop("website"):
            return Response(_report_body(None, None), status=201)  # a bot: nothing recorded or checked
        from .views import client_ip

        report = report_submit(reporter=request.user, ip=client_ip(request), **fields)
        return Response(_report_body(report, report.verification), status=201)


class ReviewQueueApi(APIView):
    permission_classes = [StaffRequired]

    @extend_schema(operation_id="compliance_review_queue", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        queue = review_queue()
        return Response({"cases": CaseOutput(queue["cases"], many=True).data,
                         "flags": FlagOutput(queue["flags"], many=True).data})


class CaseDetailApi(APIView):
    permission_classes = [StaffRequired]

    @extend_schema(operation_id="compliance_case_detail", responses=OpenApiTypes.OBJECT)
    def get(self, request, case_id):
        evidence = case_evidence(case_for_staff(case_id))
        report = evidence["report"]
        return Response({
            **CaseOutput(evidence["case"]).data,
            "report": {"id": report.pk, "text": report.text, "where_url": report.where_url,
                       "where_text": report.where_text, "verification": report.verification} if report else None,
            "terms_in_force": evidence["terms_in_force"],
            "flags": FlagOutput(evidence["flags"], many=True).data,
            "usage": [{"day": d["day"].isoformat(), "tokens": d["tokens"], "requests": d["requests"]}
                      for d in evidence["usage"]],
            "previous_cases": CaseOutput(evidence["previous_cases"], many=True).data,
            "answer": {"text": evidence["answer"].text, "created_at": evidence["answer"].created_at}
            if evidence["answer"] else None,
            "decisions": DecisionOutput(evidence["decisions"], many=True).data,
        })


class CaseDecisionCreateApi(APIView):
    permission_classes = [StaffRequired]

    class DecisionInput(serializers.Serializer):
        action = serializers.ChoiceField(choices=Decision.Action.choices)
        reason = serializers.CharField(max_length=2000)

    @extend_schema(operation_id="compliance_case_decide", request=DecisionInput, responses={201: DecisionOutput})
    def post(self, request, case_id):
        data = self.DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        decision = case_decide(case_id=case_id, staff=request.user, **data.validated_data)
        return Response(DecisionOutput(decision).data, status=201)


class FlagCaseOpenApi(APIView):
    permission_classes = [StaffRequired]

    @extend_schema(operation_id="compliance_flag_open_case", request=None, responses={201: CaseOutput})
    def post(self, request, flag_id):
        return Response(CaseOutput(case_open_from_flag(flag_id=flag_id, staff=request.user)).data, status=201)


class FlagDismissApi(APIView):
    permission_classes = [StaffRequired]

    class DismissInput(serializers.Serializer):
        reason = serializers.CharField(max_length=2000)

    @extend_schema(operation_id="compliance_flag_dismiss", request=DismissInput, responses=FlagOutput)
    def post(self, request, flag_id):
        data = self.DismissInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(FlagOutput(flag_dismiss(flag_id=flag_id, staff=request.user, **data.validated_data)).data)


class CaseAnswerApi(APIView):
    """The customer's one answer to a case about them."""

    class AnswerInput(serializers.Serializer):
        text = serializers.CharField(max_length=20_000)

    @extend_schema(operation_id="compliance_case_answer", request=AnswerInput, responses={201: OpenApiTypes.OBJECT})
    def post(self, request, case_id):
        data = self.AnswerInput(data=request.data)
        data.is_valid(raise_exception=True)
        answer = case_answer(case_id=case_id, customer=request.user, text=data.validated_data["text"])
        return Response({"case": answer.case_id, "text": answer.text, "created_at": answer.created_at}, status=201)
