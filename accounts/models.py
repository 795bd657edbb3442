from django.contrib.auth.models import AbstractUser
from django.db import models


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
