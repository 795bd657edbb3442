"""The tamper-evident audit log: append-only, hash-chained entries of every licence-relevant event."""
