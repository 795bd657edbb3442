"""Receivers for news from the layers below: accounts announces refused personal access tokens
(it cannot import the audit log, which sits above it)."""

from .services import audit_refusal_record


def record_token_refusal(sender, *, event: str, actor, data: dict, **kwargs) -> None:
    audit_refusal_record(event=event, actor=actor, subject=None, data=data)
