from django.shortcuts import render

from accounts.roles import role_required

from . import selectors


@role_required("trainer")
def studio(request):
    """The trainer's home: their datasets, jobs and model versions."""
    return render(request, "training/studio.html", selectors.studio_overview(owner=request.user))
