"""The audit log's one upward notification.

`entry_appended` is sent after the transaction that recorded an event commits (never for one that
was rolled back), with `entry`: an AuditEntry of the chain (sender AuditEntry), or an AuditRefusal,
a refused request recorded off the chain head and sealed into the chain later (sender
AuditRefusal; it has the same event, created_at, actor_ref, subject and data fields). One signal
per refusal, so receivers hear of each at once, not when its batch is sealed. Apps above connect
receivers in their AppConfig.ready(); a receiver that fails is logged and never undoes the record
or the change it records (Django's `send_robust`).
"""

from django.dispatch import Signal

entry_appended = Signal()
