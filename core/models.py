"""Abstract model bases (core has no tables of its own)."""

from django.db import models


class AppendOnlyQuerySet(models.QuerySet):
    """Refuses bulk updates and deletes: history is corrected by a new row, never rewritten."""

    def update(self, **kwargs):
        raise PermissionError(f"{self.model._meta.verbose_name_plural} are append-only.")

    def delete(self):
        raise PermissionError(f"{self.model._meta.verbose_name_plural} are append-only.")


class AppendOnlyModel(models.Model):
    """A row that is written once: saving it again or deleting it raises PermissionError.

    For ledgers, audit entries and decisions, whose worth is that nobody edits them afterwards."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError(f"{self._meta.verbose_name_plural} are append-only; record a new row instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError(f"{self._meta.verbose_name_plural} are append-only.")


class Credential(models.Model):
    """What Imprint's two kinds of secret credential (licensing's API keys, accounts' personal
    access tokens) store alike besides their digest and prefix (see core.credentials): a name, when
    it was made and last used, and its revocation."""

    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
