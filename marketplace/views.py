from django.shortcuts import render

from accounts.roles import role_required


def catalogue(request):
    """Public catalogue of published models."""
    return render(request, "marketplace/catalogue.html", {"listings": []})


@role_required("customer")
def customer_home(request):
    """The customer's licences and API keys."""
    return render(request, "marketplace/customer_home.html", {"grants": []})
