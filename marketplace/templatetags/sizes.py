from django import template

register = template.Library()


@register.filter
def parameter_count(value) -> str:
    """141056 → "141K", 124439808 → "124M", 1500000000 → "1.5B" (model sizes as people say them)."""
    value = int(value or 0)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= limit:
            scaled = value / limit
            return f"{scaled:.1f}{suffix}" if scaled < 10 and scaled != int(scaled) else f"{scaled:.0f}{suffix}"
    return str(value)
