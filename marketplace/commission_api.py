"""Commissions for scripts and the CLI (personal access tokens): the same services as the pages."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.roles import user_with_role
from billing import held as held_payments
from core.errors import InvalidRequest

from . import commissions, selectors
from .models import Commission, Proposal


class ProposalOutput(serializers.ModelSerializer):
    trainer = serializers.CharField(source="trainer.username")

    class Meta:
        model = Proposal
        fields = ["id", "trainer", "price_cents", "base_model", "method", "steps", "context_length",
                  "delivery_date", "message", "state", "created_at"]


class CommissionOutput(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.username")
    dataset = serializers.SerializerMethodField()
    payment = serializers.SerializerMethodField()
    trainer = serializers.SerializerMethodField()

    class Meta:
        model = Commission
        fields = ["id", "title", "description", "examples", "state", "customer", "budget_cents", "currency",
                  "terms_raw", "exclusive", "deadline", "show_dataset_stats", "dataset", "trainer", "payment",
                  "delivered_version", "grant", "review_ends_at", "revisions_used", "created_at"]

    def get_dataset(self, commission) -> dict | None:
        user = self.context["request"].user
        if not selectors.commission_dataset_shown(commission, user) or commission.dataset is None:
            return {"provided": bool(commission.dataset_upload_id)}
        data = commission.dataset
        return {"provided": True, "id": str(data.pk), "name": data.name, "licence": data.licence, "stats": data.stats}

    def get_trainer(self, commission) -> str | None:
        return commission.accepted_proposal.trainer.username if commission.accepted_proposal_id else None

    def get_payment(self, commission) -> dict | None:
        held, user = commission.held_payment, self.context["request"].user
        if held is None or user.pk not in (held.payer_id, held.payee_id):
            return None
        return {"state": held.state, "amount_cents": held.amount_cents, "currency": held.currency,
                "provider": held.provider}


def _out(request, commission, code=status.HTTP_200_OK) -> Response:
    commission = commissions.commission_get_for(user=request.user, commission_id=commission.pk)
    return Response(CommissionOutput(commission, context={"request": request}).data, status=code)


class CommissionListCreateApi(APIView):
    class CommissionInput(serializers.Serializer):
        title = serializers.CharField(max_length=200)
        description = serializers.CharField()
        examples = serializers.ListField(child=serializers.CharField(), required=False)
        budget_cents = serializers.IntegerField()
        currency = serializers.CharField(default="usd")
        uses = serializers.ListField(child=serializers.CharField())
        ownership = serializers.CharField(default="customer")
        exclusive = serializers.BooleanField(default=True)
        deadline = serializers.DateTimeField()
        dataset_upload = serializers.UUIDField(required=False, allow_null=True,
                                               help_text="One of your dataset uploads (POST /api/v1/training/datasets/).")
        dataset = serializers.UUIDField(required=False, allow_null=True, help_text="Or one of your datasets.")
        show_dataset_stats = serializers.BooleanField(default=False)

    @extend_schema(operation_id="commissions_list", responses=CommissionOutput(many=True))
    def get(self, request):
        board = selectors.commission_board(request.user)
        seen = {c.pk: c for c in board["mine"] + board["proposed"] + board["open"]}
        return Response(CommissionOutput(list(seen.values()), many=True, context={"request": request}).data)

    @extend_schema(operation_id="commissions_create", request=CommissionInput, responses={201: CommissionOutput})
    def post(self, request):
        data = _valid(self.CommissionInput, request)
        commission = commissions.commission_create(
            customer=user_with_role(request.user, "customer"), title=data["title"], description=data["description"],
            examples=data.get("examples"), budget_cents=data["budget_cents"], currency=data["currency"],
            uses=data["uses"], ownership=data["ownership"], exclusive=data["exclusive"], deadline=data["deadline"],
            dataset_upload_id=data.get("dataset_upload"), dataset_id=data.get("dataset"), show_dataset_stats=data["show_dataset_stats"])
        return _out(request, commission, status.HTTP_201_CREATED)


def _valid(serializer_class, request) -> dict:
    # The API's error shape for every field error (config.api_errors): param, message and fields.
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class CommissionDetailApi(APIView):
    @extend_schema(operation_id="commissions_retrieve", responses=CommissionOutput)
    def get(self, request, commission_id):
        commission = commissions.commission_get_for(user=request.user, commission_id=commission_id)
        body = CommissionOutput(commission, context={"request": request}).data
        mine = commission.customer_id == request.user.pk or request.user.is_staff
        proposals = commission.proposals.select_related("trainer")
        body["proposals"] = ProposalOutput(proposals if mine else proposals.filter(trainer=request.user), many=True).data
        if mine or (commission.accepted_proposal_id and commission.accepted_proposal.trainer_id == request.user.pk):
            body["timeline"] = [{"at": e["created_at"], "event": e["event"], "text": e["text"], "detail": e["detail"]}
                                for e in selectors.commission_timeline(commission)]
        return Response(body)


class ProposalCreateApi(APIView):
    class ProposalInput(serializers.Serializer):
        price_cents = serializers.IntegerField()
        base_model = serializers.CharField()
        method = serializers.CharField(default="full")
        steps = serializers.IntegerField()
        context_length = serializers.IntegerField()
        delivery_date = serializers.DateTimeField()
        message = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(operation_id="commissions_propose", request=ProposalInput, responses={201: ProposalOutput})
    def post(self, request, commission_id):
        data = _valid(self.ProposalInput, request)
        proposal = commissions.proposal_submit(trainer=user_with_role(request.user, "trainer"),
                                               commission_id=commission_id, **data)
        return Response(ProposalOutput(proposal).data, status=status.HTTP_201_CREATED)


class ProposalAcceptApi(APIView):
    @extend_schema(operation_id="commissions_accept_proposal", request=None, responses=CommissionOutput)
    def post(self, request, proposal_id):
        commission = commissions.proposal_accept(customer=user_with_role(request.user, "customer"),
                                                 proposal_id=proposal_id)
        return _out(request, commission)


class CommissionPayTestModeApi(APIView):
    """Local test mode: pay the held payment with a test card (4242 4242 4242 4242)."""

    class TestCardInput(serializers.Serializer):
        card_number = serializers.CharField()

    @extend_schema(operation_id="commissions_pay_test_mode", request=TestCardInput, responses=CommissionOutput)
    def post(self, request, commission_id):
        commission = commissions.commission_get_for(user=request.user, commission_id=commission_id)
        if commission.customer_id != request.user.pk or commission.held_payment_id is None:
            raise InvalidRequest("There is nothing of yours to pay on this commission.", param="commission")
        from billing.errors import CardDeclined
        from marketplace.errors import PaymentDeclined

        try:
            held_payments.held_payment_pay_local_test(held_id=commission.held_payment_id,
                                                      card_number=str(request.data.get("card_number", "")))
        except CardDeclined as exc:
            raise PaymentDeclined(exc.shown, param="card_number") from exc
        return _out(request, commission)


class CommissionActionApi(APIView):
    """deliver (trainer: model_version), accept, revision (note), dispute (reason), cancel (reason)."""

    class ActionInput(serializers.Serializer):
        model_version = serializers.UUIDField(required=False, help_text="deliver: the version delivered")
        note = serializers.CharField(required=False, help_text="revision: what to change")
        reason = serializers.CharField(required=False, help_text="dispute, cancel: why")

    @extend_schema(operation_id="commissions_action", request=ActionInput, responses=CommissionOutput)
    def post(self, request, commission_id, action):
        data, user = request.data, request.user
        services = {
            "deliver": lambda: commissions.commission_deliver(trainer=user, commission_id=commission_id,
                                                              model_version_id=data.get("model_version")),
            "accept": lambda: commissions.commission_accept(customer=user, commission_id=commission_id),
            "revision": lambda: commissions.commission_request_revision(customer=user, commission_id=commission_id,
                                                                        note=str(data.get("note", ""))),
            "dispute": lambda: commissions.commission_dispute(customer=user, commission_id=commission_id,
                                                              reason=str(data.get("reason", ""))),
            "cancel": lambda: commissions.commission_cancel(user=user, commission_id=commission_id,
                                                            reason=str(data.get("reason", ""))),
        }
        if action not in services:
            raise InvalidRequest(f"Unknown action {action!r}: {', '.join(services)}.", param="action")
        return _out(request, services[action]())
