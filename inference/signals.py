"""Inference's upward notification: a metered generation left a meter event to deliver.

`meter_event_recorded` is sent after the transaction that settled the generation commits, with
`outbox_id` (a MeterOutbox row). Billing (marketplace) connects a receiver that enqueues the
delivery; its periodic sweep resends any row whose delivery was lost, so a missed signal only
delays the event.
"""

from django.dispatch import Signal

meter_event_recorded = Signal()
