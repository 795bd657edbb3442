"""Compliance JSON API: public verification and reports, the staff review API, customers' answers.

Verification and reports are public (rate limits guard them); the review API is for staff only,
and a customer sees only the cases about their own licences.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from core.http import client_ip
from inference.api import ApiKeyAuthentication
from licensing.api import MODEL_NAME_HELP, MODEL_TITLE_HELP, ModelNameField
from licensing.models import ApiKey

from .models import Case, Decision, Flag
from .selectors import case_evidence, case_for_staff, review_queue, terms_in_force
from .services.cases import case_answer, case_decide, case_open_from_flag
from .services.flags import Presenter, flag_dismiss
from .services.reports import report_submit
from .services.verification import (
    MAX_PROMPT_CHARS,
    MAX_RECEIPT_CHARS,
    MAX_TEXT_CHARS,
    verification_submit,
)
from .verdicts import explanation_json, verification_explained


class VerificationCreateApi(APIView):
    """Public: check a text (and optionally its receipt) for Imprint provenance. Limited per address,
    and also per account and per key when an API key is presented (`Authorization: Bearer imp_…`,
    optional): a key never raises the address's limit."""

    authentication_classes = [ApiKeyAuthentication]  # no session: a forged request gains nothing
    permission_classes = [permissions.AllowAny]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "VerificationInput"

        text = serializers.CharField(trim_whitespace=False, max_length=MAX_TEXT_CHARS)
        receipt = serializers.CharField(required=False, allow_blank=True, max_length=MAX_RECEIPT_CHARS)
        prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                       max_length=MAX_PROMPT_CHARS)

    @extend_schema(request=InputSerializer, responses={200: dict})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        key = request.auth if isinstance(request.auth, ApiKey) else None
        presenter = Presenter(ip=client_ip(request), user=key.owner if key else None, api_key=key)
        result = verification_submit(text=v["text"], receipt=v.get("receipt") or "", prompt=v.get("prompt") or "",
                                     source="verify_api", presenter=presenter)
        # The codes for programs; `explanation` says the same in words (as the verify page does).
        return Response({**result, "explanation": explanation_json(verification_explained(result))})


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
        fields = ["id", "kind", "severity", "about", "presenter_ip", "presenter_user", "grant", "customer",
                  "api_key", "evidence", "case", "created_at", "updated_at", "dismissed_at", "dismissed_reason"]


class CaseOutput(serializers.ModelSerializer):
    severity = serializers.CharField(source="get_severity_display")
    customer = serializers.CharField(source="customer.username")
    model_version_name = serializers.CharField(source="model_version.name")
    model_title = ModelNameField("title", source="model_version", help_text=MODEL_TITLE_HELP)
    model_name = ModelNameField("api_id", source="model_version", help_text=MODEL_NAME_HELP)

    class Meta:
        model = Case
        fields = ["id", "state", "severity", "source", "summary", "grant", "customer", "model_version",
                  "model_version_name", "model_title", "model_name", "report", "created_at", "decided_at"]


class DecisionOutput(serializers.ModelSerializer):
    staff = serializers.CharField(source="staff.username")

    class Meta:
        model = Decision
        fields = ["id", "case", "action", "reason", "grant_state_after", "staff", "created_at"]


def _report_body(report, verification: dict | None) -> dict:
    case = getattr(report, "case", None) if report else None
    body = {"report": report.pk if report else None, "verdict": (verification or {}).get("verdict", "not_checked"),
            "verification": verification, "case": None,
            "explanation": explanation_json(verification_explained(verification)) if verification else None}
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
