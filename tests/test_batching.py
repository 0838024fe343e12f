from emailsrc.batching import ENVELOPE_BYTES, batch_events, batches
from emailsrc.segment import MAX_BATCH_EVENTS
from emailsrc.transport import OutgoingEvent


def event(size: int) -> OutgoingEvent:
    return OutgoingEvent(b"h" * 16, "id", b"x" * size)


def test_batches_respect_the_event_count_and_byte_limits() -> None:
    sizes = [len(batch) for batch in batches([event(100)] * 25, max_events=10)]
    assert sizes == [10, 10, 5]
    by_bytes = list(batches([event(100)] * 10, max_bytes=ENVELOPE_BYTES + 100 * 3 + 2))
    assert [len(batch) for batch in by_bytes] == [3, 3, 3, 1]


def test_a_rate_limit_sends_a_quarter_second_of_events_per_batch() -> None:
    # Spread over the second: a 2,500-event request at 1,000/s would burst past the limit.
    assert batch_events(0) == MAX_BATCH_EVENTS
    assert batch_events(1000) == 250
    assert batch_events(500) == 125
    assert batch_events(2) == 1
    assert batch_events(100_000) == MAX_BATCH_EVENTS
