"""One name per model, the same on every page, e-mail and API response, as the Hugging Face Hub
names models: the listing's title for people ("Poe Nocturnes"), `<trainer>/<slug>` as its id
(the title slugified), and `@<digest12>` (the first 12 hex digits of the version's SHA-256) to
pin one version. A version that was never listed keeps the name its trainer gave it, and has no
readable id: APIs name it by its UUID.

It lives here, with the model version, so that every layer above (licensing's grant pages,
inference's APIs, the marketplace and compliance) names a model the same way. The listing is
reached through the version's reverse relation `listing`: training imports nothing from the
marketplace. Callers that name many versions select `model_version__listing` (and the owner).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.text import slugify

PIN_DIGITS = 12


@dataclass(frozen=True)
class ModelName:
    title: str  # the listing's title, or the version's own name while unlisted
    trainer: str
    readable_id: str | None  # trainer/slug; None while unlisted
    digest12: str
    version_id: str

    @property
    def pinned_id(self) -> str | None:
        """`trainer/slug@digest12`: this version exactly (None while unlisted)."""
        return f"{self.readable_id}@{self.digest12}" if self.readable_id else None

    @property
    def api_id(self) -> str:
        """What an API calls this version: its pinned readable id, else its UUID."""
        return self.pinned_id or self.version_id

    def __str__(self) -> str:
        """For e-mails and plain text: `Poe Nocturnes (ravenpoet/poe-nocturnes@1a2b3c4d5e6f)`."""
        return f"{self.title} ({self.pinned_id or f'by {self.trainer}, @{self.digest12}'})"


def model_name(version) -> ModelName:
    """The name of a training.ModelVersion (see the module's docstring)."""
    listing = getattr(version, "listing", None)
    trainer = version.owner.username
    readable = f"{trainer}/{slugify(listing.title) or 'model'}" if listing is not None else None
    return ModelName(title=listing.title if listing is not None else version.name, trainer=trainer,
                     readable_id=readable, digest12=version.digest[:PIN_DIGITS], version_id=str(version.pk))
