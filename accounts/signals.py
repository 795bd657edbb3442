"""News from accounts for the layers above (the audit log records it; accounts imports nothing
above itself). Sent after the fact, with `event`, `actor` (a user) and `data`."""

from django.dispatch import Signal

# A personal access token was refused for a reason staff should see: revoked and presented
# again, or presented for a deactivated account.
token_refused = Signal()
