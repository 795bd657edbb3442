from django.shortcuts import render

from accounts.roles import role_required


@role_required("staff")
def review_queue(request):
    """Compliance review queue: open cases and flags, by severity and age."""
    return render(request, "licensing/review_queue.html", {"cases": []})
