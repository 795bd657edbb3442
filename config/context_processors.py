from django.conf import settings


def imprint(request):
    """Values every page needs: whether payments are in local test mode, and the environment."""
    return {
        "PAYMENTS_TEST_MODE": settings.PAYMENTS_TEST_MODE,
        "IMPRINT_ENV": settings.IMPRINT_ENV,
    }
