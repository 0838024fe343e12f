"""Group encoded events into batch requests within Segment's size and count limits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .segment import MAX_BATCH_BYTES, MAX_BATCH_EVENTS
from .transport import OutgoingEvent

# '{"batch":[' + '],"sentAt":"2025-01-01T00:00:00.000Z"}' around the events.
ENVELOPE_BYTES = len(b'{"batch":[],"sentAt":"2025-01-01T00:00:00.000Z"}')


def batch_events(rate: float) -> int:
    """The most events in one batch at `rate` events/s (0: unlimited).

    Under a rate limit a batch holds a quarter second of events, so requests arrive a few
    times a second at the rate instead of bursts of thousands every few seconds, which a
    per-second limit on Segment's side would refuse.
    """
    if rate <= 0:
        return MAX_BATCH_EVENTS
    return max(1, min(MAX_BATCH_EVENTS, int(rate / 4)))


def batches(
    events: Iterable[OutgoingEvent],
    *,
    max_events: int = MAX_BATCH_EVENTS,
    max_bytes: int = MAX_BATCH_BYTES,
) -> Iterator[list[OutgoingEvent]]:
    """Yield lists whose request body stays within max_bytes (uncompressed JSON) and
    max_events. Events are assumed to be under the per-event limit already."""
    current: list[OutgoingEvent] = []
    size = ENVELOPE_BYTES
    for event in events:
        added = len(event.body) + (1 if current else 0)  # the comma between events
        if current and (len(current) >= max_events or size + added > max_bytes):
            yield current
            current, size = [], ENVELOPE_BYTES
            added = len(event.body)
        current.append(event)
        size += added
    if current:
        yield current


def batch_body(events: Iterable[OutgoingEvent]) -> bytes:
    """The batch as written to --output: exactly the events posted, without sentAt."""
    return b'{"batch":[' + b",".join(e.body for e in events) + b"]}"
