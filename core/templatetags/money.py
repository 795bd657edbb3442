"""{{ cents|money:currency }} → "USD 25.00". Integer cents in, exact decimal text out."""

from django import template

register = template.Library()
ZERO_DECIMAL = {"jpy"}  # currencies without a minor unit (Stripe's amounts are then whole units)


@register.filter
def money(cents, currency: str = "usd") -> str:
    if cents is None:
        return ""
    cents, code = int(cents), (currency or "usd").lower()
    if code in ZERO_DECIMAL:
        return f"{code.upper()} {cents:,}"
    sign = "-" if cents < 0 else ""
    whole, rest = divmod(abs(cents), 100)
    return f"{code.upper()} {sign}{whole:,}.{rest:02d}"
