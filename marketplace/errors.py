"""Domain errors of the marketplace, mapped once to HTTP statuses (they are `ApiError`s)."""

from rest_framework import status

from config.api_errors import ApiError


class MarketplaceError(ApiError):
    pass


class ModelVersionNotOwned(MarketplaceError):
    """Publishing someone else's model version. 404, so ids of others' versions are not confirmed."""

    status_code = status.HTTP_404_NOT_FOUND
    error_type = "not_found_error"
    code = "model_version_not_found"


class ModelVersionNotReady(MarketplaceError):
    status_code = status.HTTP_409_CONFLICT
    error_type = "conflict_error"
    code = "model_version_not_ready"


class ListingInvalid(MarketplaceError):
    code = "invalid_listing"


class ListingNotFound(MarketplaceError):
    status_code = status.HTTP_404_NOT_FOUND
    error_type = "not_found_error"
    code = "listing_not_found"


class OfferNotFound(MarketplaceError):
    status_code = status.HTTP_404_NOT_FOUND
    error_type = "not_found_error"
    code = "offer_not_found"


class OrderNotFound(MarketplaceError):
    status_code = status.HTTP_404_NOT_FOUND
    error_type = "not_found_error"
    code = "order_not_found"


class PriceInvalid(MarketplaceError):
    code = "invalid_price"


class TermsChanged(MarketplaceError):
    """The customer accepted a different terms version than the offer now carries."""

    status_code = status.HTTP_409_CONFLICT
    error_type = "conflict_error"
    code = "terms_changed"


class PaymentDeclined(MarketplaceError):
    status_code = status.HTTP_402_PAYMENT_REQUIRED
    error_type = "card_error"
    code = "card_declined"


class PaymentProviderError(MarketplaceError):
    """Stripe could not be reached or refused the request (not the customer's card)."""

    status_code = status.HTTP_502_BAD_GATEWAY
    error_type = "api_error"
    code = "payment_provider_error"


class WrongPaymentProvider(MarketplaceError):
    status_code = status.HTTP_409_CONFLICT
    error_type = "conflict_error"
    code = "wrong_payment_provider"
