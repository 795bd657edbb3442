"""Domain errors of the marketplace."""

from core.errors import Conflict, DomainError, InvalidRequest, NotFound, PaymentRequired, TooManyRequests


class ModelVersionNotOwned(NotFound):
    """Publishing someone else's model version. 404, so ids of others' versions are not confirmed."""

    code = "model_version_not_found"


class ModelVersionNotReady(Conflict):
    code = "model_version_not_ready"


class MemorisationUnacknowledged(InvalidRequest):
    """400: the version's samples copy its training data; publishing it needs the trainer's
    explicit acknowledgement (acknowledge_memorisation). extra: the warning's figures."""

    code = "memorisation_unacknowledged"


class ListingInvalid(InvalidRequest):
    code = "invalid_listing"


class ListingNotFound(NotFound):
    code = "listing_not_found"


class OfferNotFound(NotFound):
    code = "offer_not_found"


class OrderNotFound(NotFound):
    code = "order_not_found"


class PriceInvalid(InvalidRequest):
    code = "invalid_price"


class TermsChanged(Conflict):
    """The customer accepted a different terms version than the offer now carries."""

    code = "terms_changed"


class PaymentDeclined(PaymentRequired):
    error_type = "card_error"
    code = "card_declined"


class PaymentProviderError(DomainError):
    """Stripe could not be reached or refused the request (not the customer's card)."""

    status_code = 502
    error_type = "api_error"
    code = "payment_provider_error"


class WrongPaymentProvider(Conflict):
    code = "wrong_payment_provider"


class TryItLimitReached(TooManyRequests):
    code = "try_it_limit"


class TryItInvalid(InvalidRequest):
    code = "invalid_prompt"


class TryItBusy(TooManyRequests):
    code = "try_it_busy"


class OrderNotPayable(Conflict):
    """The offer was withdrawn, the listing unpublished, or the order is no longer pending."""

    code = "order_not_payable"


class OrderExpired(Conflict):
    code = "order_expired"


class MeteredOfferHeld(Conflict):
    """The customer already holds a live metered licence under this offer: a second subscription
    on the offer's meter would bill the same usage twice."""

    code = "metered_offer_held"


class CommissionNotFound(NotFound):
    """Unknown, or not yours to see: 404 either way, so strangers learn nothing about it."""

    code = "commission_not_found"


class CommissionInvalid(InvalidRequest):
    code = "invalid_commission"


class CommissionStateConflict(Conflict):
    """The commission is not in a state that allows this (already accepted, past its deadline...)."""

    code = "commission_state"


class ProposalNotFound(NotFound):
    code = "proposal_not_found"


class ProposalInvalid(InvalidRequest):
    code = "invalid_proposal"


class DeliveryInvalid(InvalidRequest):
    code = "invalid_delivery"


class VersionHeldExclusively(Conflict):
    """A version made for an exclusive commission is its customer's alone: it is never listed."""

    code = "version_held_exclusively"
