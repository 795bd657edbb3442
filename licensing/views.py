from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from accounts.roles import role_required

from .models import LicenceTerms
from .terms import render_terms_text


@role_required("staff")
def review_queue(request):
    """Compliance review queue: open cases and flags, by severity and age."""
    return render(request, "licensing/review_queue.html", {"cases": []})


def _terms_or_404(sha256: str) -> LicenceTerms:
    terms = LicenceTerms.objects.filter(pk=sha256.lower()).first()
    if terms is None:
        raise Http404("No such licence terms.")
    return terms


def terms_json(request, sha256):
    """Machine-readable terms at a stable URL: the id is the SHA-256 of the canonical JSON, so
    the content behind this URL can never change (and anyone can check that it did not)."""
    terms = _terms_or_404(sha256)
    body = {
        "sha256": terms.sha256, "terms": terms.document, "canonical": terms.canonical,
        "text_url": request.build_absolute_uri(reverse("licensing:terms_text", args=[terms.sha256])),
    }
    response = JsonResponse(body, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


def terms_text(request, sha256):
    """The human-readable licence beside the JSON (plain text with ?format=txt)."""
    terms = _terms_or_404(sha256)
    text = render_terms_text(terms.document, sha256=terms.sha256)
    if request.GET.get("format") == "txt":
        return HttpResponse(text, content_type="text/plain; charset=utf-8")
    return render(request, "licensing/terms.html", {"terms": terms, "text": text})
