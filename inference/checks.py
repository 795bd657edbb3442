"""System checks of the inference settings: a watermark the server cannot build refuses to start,
rather than leaving every grant made under it unable to generate."""

from __future__ import annotations

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured


@register()
def watermark_settings_check(app_configs=None, **kwargs) -> list[Error]:
    """WATERMARK_SCHEME and its parameters (licensing stores them as given), and each of
    WATERMARK_CANDIDATES, build a scheme."""
    from licensing.services import grant_watermark_defaults

    from .watermark import WatermarkSchemeError, scheme_build

    from django.conf import settings

    try:
        scheme_build(*grant_watermark_defaults())
        for candidate in settings.WATERMARK_CANDIDATES:  # measured on every version published
            scheme_build(candidate["scheme"], {k: v for k, v in candidate.items() if k != "scheme"})
    except (ImproperlyConfigured, WatermarkSchemeError, KeyError, TypeError, AttributeError) as exc:
        return [Error(str(exc), hint="See WATERMARK_SCHEME and WATERMARK_SCHEMES in config/settings.py.",
                      id="inference.E001")]
    return []
