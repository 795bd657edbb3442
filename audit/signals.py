"""The audit log's one upward notification.

`entry_appended` is sent after the transaction that appended an entry commits (never for an entry
that was rolled back), with `entry` (the AuditEntry). Apps above connect receivers in their
AppConfig.ready(); a receiver that fails is logged and never undoes the append or the change it
records (Django's `send_robust`).
"""

from django.dispatch import Signal

entry_appended = Signal()
