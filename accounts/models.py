from django.contrib.auth.models import AbstractUser
from django.db import models

from core.models import Credential


class User(AbstractUser):
    """A person on Imprint. Roles are not exclusive: one can train models and buy licences.

    Staff users (`is_staff`) are the compliance admins.
    """

    email = models.EmailField("e-mail address", unique=True)
    is_trainer = models.BooleanField(default=False, help_text="Can upload datasets and train models.")
    is_customer = models.BooleanField(default=True, help_text="Can buy licences and generate text.")
    email_verified_at = models.DateTimeField(null=True, blank=True)

    @property
    def roles(self) -> list[str]:
        roles = [r for r, on in (("trainer", self.is_trainer), ("customer", self.is_customer)) if on]
        return roles + (["staff"] if self.is_staff else [])


class PersonalAccessToken(Credential):
    """A user's token for the management APIs (training, marketplace, licences) and the `imprint`
    command line. Stored only as its SHA-256 with a visible prefix; the plaintext is shown once.

    Not the API keys that generate text under a licence (licensing's `imp_…` keys): a token
    manages an account, a key spends a grant, and neither is accepted where the other belongs."""

    class Scope(models.TextChoices):
        READ = "read", "read: look at everything the account can see"
        TRAINING = "training", "training: upload datasets, run and control jobs"
        MARKETPLACE = "marketplace", "marketplace: publish listings and offers, buy licences"
        LICENCES = "licences", "licences: manage grants and API keys"

    owner = models.ForeignKey("User", on_delete=models.CASCADE, related_name="access_tokens")
    prefix = models.CharField(max_length=16, db_index=True, help_text="Visible start of the token.")
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
