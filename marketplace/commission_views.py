"""Commission pages: the board, the new-commission form, and a commission's page with its
proposals, payment, training, delivery, review and timeline. Views validate, call one service from
marketplace.commissions (or billing.held for the card), and render."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.roles import role_required
from billing import held as held_payments
from billing.errors import GatewayError
from core.errors import DomainError
from training.forms import JobForm
from training.models import ModelVersion, TrainingJob
from training.services.datasets import dataset_upload_receive

from . import commissions, selectors
from .errors import CommissionNotFound
from .forms import CommissionForm, ProposalForm
from .models import Commission, Proposal


def _page(request, commission_id) -> Commission:
    try:
        return commissions.commission_get_for(user=request.user, commission_id=commission_id)
    except CommissionNotFound as exc:
        raise Http404(exc.message) from exc


@login_required
def commission_board(request):
    return render(request, "marketplace/commission_board.html",
                  {**selectors.commission_board(request.user), "held": selectors.held_money(request.user)})


@role_required("customer")
def commission_new(request):
    form = CommissionForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            upload = None
            if data["file"]:
                holders = [h.strip() for h in (data["rights_holders"] or "").splitlines() if h.strip()]
                upload = dataset_upload_receive(
                    owner=request.user, name=f"{data['title'][:150]} (commission data)", upload=data["file"],
                    licence=data["licence"] or "proprietary-owned", licence_attested=data["licence_attested"],
                    rights_holders=holders or [request.user.username])
            commission = commissions.commission_create(
                customer=request.user, title=data["title"], description=data["description"],
                examples=data["examples"], budget_cents=data["budget"], currency=data["currency"],
                uses=data["uses"], ownership=data["ownership"], exclusive=data["exclusive"],
                deadline=data["deadline"], dataset_upload_id=upload.pk if upload else None,
                show_dataset_stats=data["show_dataset_stats"])
        except DomainError as exc:
            form.add_error(exc.param if exc.param in form.fields else None, exc.message)
        else:
            messages.success(request, "Your commission is posted: trainers can propose now.")
            return redirect("marketplace:commission_detail", commission_id=commission.pk)
    return render(request, "marketplace/commission_new.html", {"form": form})


def _versions_for(commission: Commission, trainer):
    if commission.dataset is None:
        return ModelVersion.objects.filter(owner=trainer, created_at__gte=commission.created_at)
    return ModelVersion.objects.filter(owner=trainer, job__dataset=commission.dataset,
                                       job__state=TrainingJob.State.SUCCEEDED)


@login_required
def commission_detail(request, commission_id):
    commission = _page(request, commission_id)
    user = request.user
    chosen = commission.accepted_proposal.trainer if commission.accepted_proposal_id else None
    is_customer, is_chosen = commission.customer_id == user.pk, chosen is not None and chosen.pk == user.pk
    proposals = commission.proposals.select_related("trainer")
    context = {
        "commission": commission, "is_customer": is_customer, "is_chosen": is_chosen, "chosen": chosen,
        "proposals": proposals if is_customer or user.is_staff else proposals.filter(trainer=user),
        "own_proposal": proposals.filter(trainer=user).first(),
        "show_dataset": selectors.commission_dataset_shown(commission, user),
        "timeline": selectors.commission_timeline(commission) if is_customer or is_chosen or user.is_staff else [],
        "test_card_ok": held_payments.TEST_CARD_SUCCEEDS,
    }
    if commission.state == Commission.State.OPEN and "trainer" in user.roles and not is_customer:
        context["proposal_form"] = ProposalForm(initial={"delivery_date": commission.deadline})
    if is_chosen and commission.state == Commission.State.IN_PROGRESS:
        context["job_form"] = JobForm(initial={"dataset": commission.dataset.pk if commission.dataset else None,
                                               "name": f"{commission.title[:80]} (commission)"})
        context["jobs"] = TrainingJob.objects.filter(owner=user, dataset=commission.dataset) \
            if commission.dataset else []
        context["versions"] = _versions_for(commission, user)
    if is_customer and commission.state == Commission.State.AWARDED and commission.held_payment_id:
        context.update(_payment_context(request, commission))
    return render(request, "marketplace/commission_detail.html", context)


def _payment_context(request, commission: Commission) -> dict:
    from .views import _stripe_js_url

    try:
        checkout = held_payments.held_payment_checkout(held_id=commission.held_payment_id)
    except GatewayError as exc:
        messages.error(request, f"Stripe is not reachable: {exc.shown}")
        return {}
    return {"checkout": checkout, "stripe_js_url": _stripe_js_url(),
            "publishable_key": settings.STRIPE_PUBLISHABLE_KEY or "pk_test_imprint_localstripe"}


def _act(request, commission_id, action, success: str):
    """Run one service for a POST from the commission page; its refusal is shown there."""
    try:
        action()
    except CommissionNotFound as exc:
        raise Http404(exc.message) from exc
    except DomainError as exc:
        messages.error(request, exc.message)
    except GatewayError as exc:
        messages.error(request, exc.shown)
    else:
        messages.success(request, success)
    return redirect("marketplace:commission_detail", commission_id=commission_id)


@require_POST
@role_required("trainer")
def proposal_submit(request, commission_id):
    form = ProposalForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {v[0]}" for k, v in form.errors.items()))
        return redirect("marketplace:commission_detail", commission_id=commission_id)
    data = form.cleaned_data
    return _act(request, commission_id, lambda: commissions.proposal_submit(
        trainer=request.user, commission_id=commission_id, price_cents=data["price"], base_model=data["base_model"],
        method=data["method"], steps=data["steps"], context_length=data["context_length"],
        delivery_date=data["delivery_date"], message=data["message"]), "Your proposal is sent to the customer.")


@require_POST
@role_required("customer")
def proposal_accept(request, commission_id, proposal_id):
    if not Proposal.objects.filter(pk=proposal_id, commission_id=commission_id).exists():
        raise Http404("No such proposal.")
    return _act(request, commission_id, lambda: commissions.proposal_accept(customer=request.user,
                                                                            proposal_id=proposal_id),
                "Proposal accepted. Pay to start the work: the payment is held until you accept the delivery.")


def _own_held(request, commission_id) -> Commission:
    commission = Commission.objects.filter(pk=commission_id, customer=request.user).first()
    if commission is None or commission.held_payment_id is None:
        raise Http404("No such commission of yours.")
    return commission


@require_POST
@role_required("customer")
def commission_pay_test_mode(request, commission_id):
    commission = _own_held(request, commission_id)
    return _act(request, commission_id, lambda: held_payments.held_payment_pay_local_test(
        held_id=commission.held_payment_id, card_number=request.POST.get("card_number", "")),
        "Payment held (local test mode). The trainer can start.")


@require_POST
@role_required("customer")
def commission_charge(request, commission_id):
    """Called by the payment page once Stripe.js confirmed the card: charge it to the platform."""
    commission = _own_held(request, commission_id)
    try:
        held = held_payments.held_payment_charge(held_id=commission.held_payment_id)
    except DomainError as exc:
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=exc.status_code)
    except GatewayError as exc:
        return JsonResponse({"error": {"code": "card_declined", "message": exc.shown}}, status=402)
    return JsonResponse({"status": held.state,
                         "next": reverse("marketplace:commission_detail", args=[commission.pk])})


@require_POST
@role_required("trainer")
def commission_deliver(request, commission_id):
    return _act(request, commission_id, lambda: commissions.commission_deliver(
        trainer=request.user, commission_id=commission_id, model_version_id=request.POST.get("model_version")),
        "Delivered. The customer reviews it now.")


@require_POST
@login_required
def commission_review(request, commission_id, action):
    services = {
        "accept": lambda: commissions.commission_accept(customer=request.user, commission_id=commission_id),
        "revision": lambda: commissions.commission_request_revision(
            customer=request.user, commission_id=commission_id, note=request.POST.get("note", "")),
        "dispute": lambda: commissions.commission_dispute(customer=request.user, commission_id=commission_id,
                                                          reason=request.POST.get("reason", "")),
        "cancel": lambda: commissions.commission_cancel(user=request.user, commission_id=commission_id,
                                                        reason=request.POST.get("reason", "")),
    }
    if action not in services:
        raise Http404("No such action.")
    done = {"accept": "Accepted: your licence is active and the trainer is paid.",
            "revision": "Revision requested.", "dispute": "Dispute opened: compliance staff review the evidence.",
            "cancel": "Cancelled. Any payment held is refunded."}
    return _act(request, commission_id, services[action], done[action])
