from __future__ import annotations

import base64
import gzip
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import orjson
import pytest

from emailsrc import __version__
from emailsrc.transport import (
    INTERRUPTED,
    MAX_RETRY_AFTER,
    BatchOutcome,
    EndpointError,
    HttpTransport,
    OutgoingEvent,
    RateLimiter,
    RetryPolicy,
    SdkTransport,
    Sender,
    WriteKeyRejected,
    classify_status,
    normalize_endpoint,
    retry_after_seconds,
)
from fake_segment import DROP, DROP_MID, HANG, OK, FakeSegment, Faults, Reply

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=10, backoff_base=0.01, backoff_max=0.05, jitter=False)


def event(index: int, *, run: str = "t") -> OutgoingEvent:
    message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{run}/{index}"))
    payload = {
        "type": "track",
        "event": "Email Opened",
        "userId": f"user-{index}",
        "timestamp": "2024-05-01T12:00:00.123Z",
        "messageId": message_id,
        "properties": {
            "email_id": f"dlv-{index}",
            "email_subject": "Your weekly digest",
            "campaign_id": "c-7",
            "provider": "customerio",
        },
        "context": {"traits": {"email": f"person{index}@example.com"}},
        "integrations": {"Customer.io": False},
    }
    return OutgoingEvent(message_id.encode(), message_id, orjson.dumps(payload))


def events(count: int, *, run: str = "t") -> list[OutgoingEvent]:
    return [event(i, run=run) for i in range(count)]


class Sleeps(list[float]):
    """An injected sleep that records the delay instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Ticking:
    """A wall clock that advances one second per reading."""

    def __init__(self) -> None:
        self.moment = NOW

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=1)
        return self.moment


def transport(
    server: FakeSegment, *, write_key: str | None = None, **options: object
) -> HttpTransport:
    options.setdefault("policy", FAST)
    options.setdefault("sleep", Sleeps())
    return HttpTransport(server.url, write_key or server.write_key, **options)  # type: ignore[arg-type]


# -- classify_status -----------------------------------------------------------------------

STATUS_TABLE = [
    (200, "ok"), (201, "ok"), (202, "ok"), (204, "ok"), (299, "ok"),
    (401, "auth"), (403, "auth"),
    (400, "split"),
    (408, "retry"), (410, "retry"), (429, "retry"), (460, "retry"),
    (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"), (511, "retry"), (599, "retry"),
    (501, "fail"), (505, "fail"),
    (402, "fail"), (404, "fail"), (405, "fail"), (409, "fail"), (411, "fail"), (413, "fail"),
    (415, "fail"), (422, "fail"), (451, "fail"), (499, "fail"),
    (100, "fail"), (301, "fail"), (302, "fail"), (304, "fail"), (307, "fail"),
]  # fmt: skip


@pytest.mark.parametrize(("status", "verdict"), STATUS_TABLE)
def test_classify_status(status: int, verdict: str) -> None:
    assert classify_status(status) == verdict


# -- retry_after_seconds -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 2.5 ", 2.5),
        ("0", 0.0),
        ("100000", MAX_RETRY_AFTER),
        (format_datetime(NOW + timedelta(seconds=12), usegmt=True), 12.0),
        ("Sun, 01 Jun 2025 12:00:30 -0000", 30.0),
        (format_datetime(NOW - timedelta(hours=1), usegmt=True), 0.0),
        (format_datetime(NOW + timedelta(days=3), usegmt=True), MAX_RETRY_AFTER),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1e3", None),
        ("12 seconds", None),
    ],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert retry_after_seconds(header, NOW) == expected


# -- RateLimiter ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(rate: float) -> tuple[RateLimiter, FakeClock]:
    clock = FakeClock()
    return RateLimiter(rate, clock=clock, sleep=clock.sleep), clock


def test_rate_limiter_burst_then_steady_rate() -> None:
    bucket, clock = limiter(100)
    bucket.acquire(100)  # the first second's burst
    assert clock.slept == []
    bucket.acquire(50)
    assert clock.slept == [pytest.approx(0.5)]
    clock.now += 2.0  # idle time refills, but only up to one second's worth
    bucket.acquire(100)
    bucket.acquire(10)
    assert clock.slept == [pytest.approx(0.5), pytest.approx(0.1)]


def test_rate_limiter_goes_into_debt_for_a_batch_bigger_than_the_bucket() -> None:
    bucket, clock = limiter(500)
    bucket.acquire(500)
    bucket.acquire(2500)
    assert clock.slept == [pytest.approx(5.0)]
    bucket.acquire(500)  # the debt was repaid by the wait, so the next batch waits its own share
    assert clock.slept[-1] == pytest.approx(1.0)


def test_rate_limiter_unlimited_never_waits() -> None:
    bucket, clock = limiter(0)
    for _ in range(100):
        bucket.acquire(1_000_000)
    bucket.slow_down()
    assert clock.slept == []
    assert bucket.current_rate == 0


def test_rate_limiter_slow_down_halves_to_a_floor_and_speed_up_recovers() -> None:
    bucket, _ = limiter(500)
    bucket.slow_down()
    assert bucket.current_rate == 250
    for _ in range(10):
        bucket.slow_down()
    assert bucket.current_rate == 25  # 5% of the target
    bucket.speed_up()
    assert bucket.current_rate == 50  # +5% of the target per success
    for _ in range(100):
        bucket.speed_up()
    assert bucket.current_rate == 500
    small, _ = limiter(100)
    for _ in range(10):
        small.slow_down()
    assert small.current_rate == 10


def test_rate_limiter_slower_rate_means_longer_waits() -> None:
    bucket, clock = limiter(100)
    bucket.acquire(100)
    bucket.slow_down()
    bucket.acquire(50)
    assert clock.slept == [pytest.approx(1.0)]


def test_rate_limiter_reservations_queue_across_threads() -> None:
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    bucket = RateLimiter(1000, clock=lambda: 0.0, sleep=record)
    threads = [threading.Thread(target=bucket.acquire, args=(100,)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == pytest.approx([0.1 * i for i in range(1, 11)])


def test_rate_limiter_rejects_a_negative_rate() -> None:
    with pytest.raises(ValueError):
        RateLimiter(-1)


# -- RetryPolicy ---------------------------------------------------------------------------


def test_retry_policy_backoff_doubles_up_to_the_max() -> None:
    policy = RetryPolicy(backoff_base=0.5, backoff_max=60, jitter=False)
    delays = [policy.delay(attempt, None) for attempt in range(1, 11)]
    assert delays == [0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert policy.delay(500, None) == 60


def test_retry_policy_full_jitter_draws_below_the_ceiling() -> None:
    assert RetryPolicy(rng=lambda: 0.25).delay(3, None) == pytest.approx(0.5)
    assert RetryPolicy(rng=lambda: 0.0).delay(9, None) == 0.0


def test_retry_policy_retry_after_is_a_minimum() -> None:
    policy = RetryPolicy(jitter=False)
    assert policy.delay(1, 7.0) == 7.0
    assert policy.delay(8, 7.0) == 60.0
    assert RetryPolicy(rng=lambda: 0.999).delay(1, 0.0) == pytest.approx(0.4995)


def test_retry_policy_validates() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_base=-1)


# -- normalize_endpoint --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.segment.io", "https://api.segment.io"),
        ("https://api.segment.io/", "https://api.segment.io"),
        (" https://events.eu1.segmentapis.com// ", "https://events.eu1.segmentapis.com"),
        ("HTTPS://API.Segment.io", "https://api.segment.io"),
        ("https://api.segment.io/v1", "https://api.segment.io"),
        ("https://api.segment.io/v1/batch", "https://api.segment.io"),
        ("https://proxy.example.com:8443/segment/", "https://proxy.example.com:8443/segment"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.3.4.5", "http://127.3.4.5"),
        ("http://localhost:9000/", "http://localhost:9000"),
        ("http://[::1]:9000", "http://[::1]:9000"),
    ],
)
def test_normalize_endpoint_accepts(url: str, expected: str) -> None:
    assert normalize_endpoint(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "api.segment.io",
        "http://api.segment.io",
        "http://10.0.0.1:8080",
        "http://localhost.example.com",
        "ftp://api.segment.io",
        "https://",
        "https://exa mple.com",
        "https://api.segment.io:99999",
        "https://api.segment.io/?x=1",
        "not a url at all",
        "https://[::1",
    ],
)
def test_normalize_endpoint_refuses(url: str) -> None:
    with pytest.raises(EndpointError) as raised:
        normalize_endpoint(url)
    assert "\n" not in str(raised.value)


def test_normalize_endpoint_never_echoes_credentials() -> None:
    with pytest.raises(EndpointError) as raised:
        normalize_endpoint("https://secretkey:pw@api.segment.io")
    assert "secretkey" not in str(raised.value)


# -- HttpTransport against the fake server -------------------------------------------------


def test_send_delivers_a_gzipped_authenticated_batch(segment_server: FakeSegment) -> None:
    batch = events(50)
    with transport(segment_server) as sender:
        outcome = sender.send(batch)
    assert outcome == BatchOutcome(batch, [], attempts=1, retries=0, status=200)
    assert segment_server.received == {e.message_id: 1 for e in batch}
    assert segment_server.events[0] == orjson.loads(batch[0].body)
    (request,) = segment_server.requests
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"emailsrc/{__version__}"
    assert "Authorization" not in request.headers
    assert request.wire_bytes < request.body_bytes
    assert request.sent_at is not None
    assert datetime.strptime(request.sent_at, "%Y-%m-%dT%H:%M:%S.%fZ")
    assert len(request.sent_at) == len("2025-01-01T00:00:00.000Z")


def test_send_uses_basic_auth_with_the_key_as_user_and_no_password() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    sender = HttpTransport("https://api.segment.io", "wk_123", client=client, clock=lambda: NOW)
    sender.send(events(2))
    (request,) = seen
    assert str(request.url) == "https://api.segment.io/v1/batch"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"wk_123:").decode()
    body = orjson.loads(gzip.decompress(request.content))
    assert body["sentAt"] == "2025-06-01T12:00:00.000Z"
    assert [e["messageId"] for e in body["batch"]] == [e.message_id for e in events(2)]


def test_sent_at_is_the_time_of_each_attempt(segment_server: FakeSegment) -> None:
    segment_server.script(503, 500, OK)
    with transport(segment_server, clock=Ticking()) as sender:
        outcome = sender.send(events(3))
    assert outcome.sent and outcome.attempts == 3
    stamps = [r.sent_at for r in segment_server.requests]
    assert stamps == [
        "2025-06-01T12:00:01.000Z",
        "2025-06-01T12:00:03.000Z",  # the clock is also read for Retry-After dates
        "2025-06-01T12:00:05.000Z",
    ]


def test_5xx_then_success(segment_server: FakeSegment) -> None:
    segment_server.script(500, 502, OK)
    retries: list[tuple[int | None, str]] = []
    sleeps = Sleeps()
    sender = transport(segment_server, sleep=sleeps, on_retry=lambda s, r: retries.append((s, r)))
    batch = events(10)
    outcome = sender.send(batch)
    sender.close()
    assert outcome.sent == batch and not outcome.failed
    assert (outcome.attempts, outcome.retries, outcome.status) == (3, 2, 200)
    assert retries == [(500, "HTTP 500"), (502, "HTTP 502")]
    assert sleeps == [0.01, 0.02]
    assert segment_server.received == {e.message_id: 1 for e in batch}


def test_429_honours_retry_after_and_slows_the_rate(segment_server: FakeSegment) -> None:
    segment_server.script(Reply(429, {"Retry-After": "7"}), OK)
    sleeps = Sleeps()
    bucket = RateLimiter(1000, sleep=sleeps)
    with transport(segment_server, sleep=sleeps, limiter=bucket) as sender:
        outcome = sender.send(events(5))
    assert outcome.sent and outcome.retries == 1
    assert sleeps == [7.0]
    assert bucket.current_rate == 550  # halved by the 429, +5% by the success


def test_429_with_an_http_date(segment_server: FakeSegment) -> None:
    when = format_datetime(NOW + timedelta(seconds=12), usegmt=True)
    segment_server.script(Reply(429, {"Retry-After": when}), OK)
    sleeps = Sleeps()
    with transport(segment_server, sleep=sleeps, clock=lambda: NOW) as sender:
        assert sender.send(events(1)).sent
    assert sleeps == [12.0]


@pytest.mark.parametrize("fault", [DROP, DROP_MID])
def test_dropped_connection_is_retried(segment_server: FakeSegment, fault: str) -> None:
    segment_server.script(fault, OK)
    retries: list[tuple[int | None, str]] = []
    with transport(segment_server, on_retry=lambda s, r: retries.append((s, r))) as sender:
        outcome = sender.send(events(300))
    assert len(outcome.sent) == 300 and outcome.retries == 1
    assert retries[0][0] is None and retries[0][1].startswith("network error:")
    assert sum(segment_server.received.values()) == 300


def test_timeout_is_retried(segment_server: FakeSegment) -> None:
    segment_server.set_faults(hang_seconds=3.0)
    segment_server.script(HANG, OK)
    retries: list[str] = []
    started = time.monotonic()
    with transport(segment_server, timeout=0.3, on_retry=lambda s, r: retries.append(r)) as sender:
        outcome = sender.send(events(4))
    assert len(outcome.sent) == 4
    assert retries == ["timed out after 0.3 s (ReadTimeout)"]
    assert time.monotonic() - started < 2.0


def test_spent_budget_returns_the_events_as_failed(segment_server: FakeSegment) -> None:
    segment_server.set_faults(fail_rate=1.0, fail_statuses=(503,))
    batch = events(20)
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01, jitter=False)
    with transport(segment_server, policy=policy) as sender:
        outcome = sender.send(batch)
    assert outcome.sent == []
    assert [e for e, _ in outcome.failed] == batch
    assert {why for _, why in outcome.failed} == {"retry budget spent after 3 attempts: HTTP 503"}
    assert (outcome.attempts, outcome.retries, outcome.status) == (3, 2, 503)
    assert segment_server.received == {}


def test_total_delay_budget_stops_long_waits(segment_server: FakeSegment) -> None:
    segment_server.set_faults(rate_limit_rate=1.0, retry_after="120")
    policy = RetryPolicy(max_total_delay=100.0)
    sleeps = Sleeps()
    with transport(segment_server, policy=policy, sleep=sleeps) as sender:
        outcome = sender.send(events(2))
    assert sleeps == [] and outcome.attempts == 1
    assert outcome.failed[0][1] == "retry budget spent after 1 attempt: HTTP 429 rate limited"


def test_network_failure_when_nothing_listens() -> None:
    with FakeSegment() as gone:
        url = gone.url
    sender = HttpTransport(url, "k", policy=RetryPolicy(max_attempts=2), sleep=Sleeps())
    outcome = sender.send(events(1))
    assert outcome.status is None
    assert outcome.failed[0][1].startswith("retry budget spent after 2 attempts: network error:")


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_write_key_raises_without_the_key(
    segment_server: FakeSegment, status: int
) -> None:
    key = "super-secret-key-123"
    if status == 403:
        key = segment_server.write_key
        segment_server.script(Reply(403, body=b'{"message":"forbidden"}'))
    with (
        transport(segment_server, write_key=key) as sender,
        pytest.raises(WriteKeyRejected) as raised,
    ):
        sender.send(events(5))
    message = str(raised.value)
    assert message == f"the write key was rejected (HTTP {status}); check SEGMENT_WRITE_KEY"
    assert key not in message and key not in repr(raised.value) and key not in repr(sender)
    assert raised.value.status == status
    assert segment_server.received == {}


def test_400_splits_to_isolate_poison_events(segment_server: FakeSegment) -> None:
    batch = events(100)
    poison = {batch[3].message_id, batch[4].message_id, batch[77].message_id}
    segment_server.poison(*poison)
    with transport(segment_server) as sender:
        outcome = sender.send(batch)
    assert {e.message_id for e, _ in outcome.failed} == poison
    for _, why in outcome.failed:
        assert why.startswith("HTTP 400 rejected by Segment: ")
        assert "was refused" in why
    assert len(outcome.sent) == 97
    assert segment_server.received == {e.message_id: 1 for e in outcome.sent}
    assert outcome.status == 200 and outcome.retries == 0


def test_other_4xx_fails_without_retry(segment_server: FakeSegment) -> None:
    segment_server.script(Reply(413, body=b'{"message":"too big"}'))
    with transport(segment_server) as sender:
        outcome = sender.send(events(3))
    assert outcome.attempts == 1 and len(outcome.failed) == 3
    assert outcome.failed[0][1] == 'HTTP 413: {"message":"too big"}'


def test_empty_batch_sends_nothing(segment_server: FakeSegment) -> None:
    with transport(segment_server) as sender:
        assert sender.send([]) == BatchOutcome.empty()
    assert segment_server.requests == []


def test_rate_limiter_paces_each_attempt(segment_server: FakeSegment) -> None:
    segment_server.script(500, OK)
    clock = FakeClock()
    bucket = RateLimiter(100, clock=clock, sleep=clock.sleep)
    with transport(segment_server, limiter=bucket) as sender:
        sender.send(events(100))
    assert clock.slept == [pytest.approx(1.0)]  # the retry paid for its 100 events again


def test_interrupt_ends_backoff_and_returns_events_unsent(segment_server: FakeSegment) -> None:
    segment_server.set_faults(fail_rate=1.0)
    slow = RetryPolicy(backoff_base=30.0, jitter=False)
    sender = HttpTransport(segment_server.url, segment_server.write_key, policy=slow)
    threading.Timer(0.2, sender.interrupt).start()
    started = time.monotonic()
    outcome = sender.send(events(4))
    sender.close()
    assert time.monotonic() - started < 5
    assert len(outcome.unsent) == 4 and not outcome.sent and not outcome.failed
    assert INTERRUPTED == "interrupted before it could be sent"


def test_chaos_every_acknowledged_event_arrives_exactly_once() -> None:
    faults = Faults(fail_rate=0.1, rate_limit_rate=0.1, drop_rate=0.05, drop_mid_rate=0.03)
    all_events = events(4000, run="chaos")
    batches = [all_events[i : i + 50] for i in range(0, len(all_events), 50)]
    outcomes: list[BatchOutcome] = []
    with FakeSegment(faults=faults, seed=7) as server:
        with transport(server, policy=RetryPolicy(max_attempts=6, backoff_base=0.001)) as http:
            Sender(http, concurrency=4).run(batches, lambda _, o: outcomes.append(o))
        received = server.received
        accepted = server.accepted_events
        results = {r.result for r in server.requests}
    sent = [e for o in outcomes for e in o.sent]
    failed = [e for o in outcomes for e, _ in o.failed]
    assert len(sent) + len(failed) == 4000
    assert {e.message_id: 1 for e in sent} == received
    assert accepted == len(sent)
    assert sum(o.retries for o in outcomes) > 10
    assert {"accepted", "429", "drop"} <= results
    assert any(r in results for r in ("500", "502", "503", "504"))


# -- Sender --------------------------------------------------------------------------------


class FakeTransport:
    """Sends nothing; records concurrency and the threads it ran on."""

    def __init__(
        self,
        delay: float = 0.01,
        fail_on: Callable[[Sequence[OutgoingEvent]], bool] | None = None,
        warmup: int = 0,
    ) -> None:
        self.delay = delay
        self.fail_on = fail_on
        # The first `warmup` calls wait for each other, so a loaded machine still reaches
        # full concurrency.
        self.warmup = threading.Barrier(warmup) if warmup else None
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.calls = 0
        self.calls_after_rejection = 0
        self.rejected = False
        self.interrupted = threading.Event()

    def send(self, batch: Sequence[OutgoingEvent]) -> BatchOutcome:
        with self.lock:
            self.active += 1
            self.calls += 1
            self.calls_after_rejection += self.rejected
            self.peak = max(self.peak, self.active)
            warming = self.warmup is not None and self.calls <= self.warmup.parties
        try:
            if warming and self.warmup is not None:
                self.warmup.wait(timeout=5)
            self.interrupted.wait(self.delay)
            if self.fail_on is not None and self.fail_on(batch):
                self.rejected = True
                raise WriteKeyRejected(401)
            if self.interrupted.is_set():
                return BatchOutcome([], [], 0, 0, None, unsent=list(batch))
            return BatchOutcome(list(batch), [], 1, 0, 200)
        finally:
            with self.lock:
                self.active -= 1

    def interrupt(self) -> None:
        self.interrupted.set()

    def close(self) -> None:
        pass


def numbered_batches(count: int, pulled: list[int] | None = None) -> Iterator[list[OutgoingEvent]]:
    for index in range(count):
        if pulled is not None:
            pulled.append(threading.get_ident())
        yield [event(index)]


def test_sender_caps_in_flight_and_reports_in_the_calling_thread() -> None:
    fake = FakeTransport(delay=0.02, warmup=3)
    pulled: list[int] = []
    reported: list[tuple[int, str]] = []
    caller = threading.get_ident()

    def on_outcome(batch: Sequence[OutgoingEvent], outcome: BatchOutcome) -> None:
        reported.append((threading.get_ident(), batch[0].message_id))
        assert len(pulled) - len(reported) <= 3  # lazily pulled, never far ahead

    sender = Sender(fake, concurrency=3)
    sender.run(numbered_batches(30, pulled), on_outcome)
    assert fake.peak == 3
    assert {thread for thread, _ in reported} == {caller}
    assert set(pulled) == {caller}
    assert sorted(m for _, m in reported) == sorted(event(i).message_id for i in range(30))
    assert sender.stopped is False


def test_sender_with_one_worker_keeps_one_in_flight() -> None:
    fake = FakeTransport(delay=0.001)
    Sender(fake, concurrency=1).run(numbered_batches(10), lambda b, o: None)
    assert fake.peak == 1 and fake.calls == 10


def test_sender_rejected_key_settles_in_flight_batches_then_raises() -> None:
    poisoned = event(5).message_id
    fake = FakeTransport(delay=0.01, fail_on=lambda batch: batch[0].message_id == poisoned)
    reported: list[str] = []
    with pytest.raises(WriteKeyRejected):
        Sender(fake, concurrency=4).run(
            numbered_batches(100), lambda b, o: reported.append(b[0].message_id)
        )
    assert poisoned not in reported
    assert fake.calls_after_rejection <= 3  # stopped taking batches once it saw the rejection
    assert len(reported) == fake.calls - 1  # everything else that was sent got reported


def test_sender_stop_reports_in_flight_batches_and_returns() -> None:
    fake = FakeTransport(delay=0.02)
    sender = Sender(fake, concurrency=4)
    reported: list[BatchOutcome] = []

    def on_outcome(batch: Sequence[OutgoingEvent], outcome: BatchOutcome) -> None:
        reported.append(outcome)
        if len(reported) == 3:
            sender.stop()

    sender.run(numbered_batches(1000), on_outcome)
    assert sender.stopped is True
    assert fake.calls <= 7  # the three reported plus at most four in flight
    assert len(reported) == fake.calls
    assert all(o.sent for o in reported)


def test_sender_ctrl_c_settles_in_flight_then_raises() -> None:
    fake = FakeTransport(delay=0.05)
    reported: list[str] = []

    def batches() -> Iterator[list[OutgoingEvent]]:
        yield from numbered_batches(4)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Sender(fake, concurrency=4).run(batches(), lambda b, o: reported.append(b[0].message_id))
    assert sorted(reported) == sorted(event(i).message_id for i in range(4))


def test_sender_real_sigint_while_waiting() -> None:
    fake = FakeTransport(delay=0.05)
    reported: list[BatchOutcome] = []
    threading.Timer(0.15, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        Sender(fake, concurrency=4).run(numbered_batches(400), lambda b, o: reported.append(o))
    assert 0 < fake.calls < 400
    assert fake.calls - len(reported) <= 1  # at most a report cut short by the signal itself


def test_sender_interrupts_the_transport_after_the_grace_period(
    segment_server: FakeSegment,
) -> None:
    segment_server.set_faults(fail_rate=1.0)
    slow = RetryPolicy(backoff_base=30.0, jitter=False)
    stop_on_first_retry: list[Sender] = []
    http = HttpTransport(
        segment_server.url,
        segment_server.write_key,
        policy=slow,
        on_retry=lambda status, reason: stop_on_first_retry[0].stop(),
    )
    sender = Sender(http, concurrency=2, grace=0.2)
    stop_on_first_retry.append(sender)
    reported: list[BatchOutcome] = []
    started = time.monotonic()
    sender.run(
        [events(3, run="a"), events(2, run="b"), events(9, run="c")],
        lambda b, o: reported.append(o),
    )
    http.close()
    assert time.monotonic() - started < 5
    assert sender.stopped
    assert sorted(len(o.unsent) for o in reported) == [2, 3]  # the third batch never left


def test_sender_on_outcome_error_stops_and_propagates() -> None:
    fake = FakeTransport(delay=0.005)
    calls: list[int] = []

    def broken(batch: Sequence[OutgoingEvent], outcome: BatchOutcome) -> None:
        calls.append(1)
        raise RuntimeError("ledger is gone")

    with pytest.raises(RuntimeError, match="ledger is gone"):
        Sender(fake, concurrency=2).run(numbered_batches(50), broken)
    assert fake.calls <= 4 and len(calls) == fake.calls


# -- SdkTransport --------------------------------------------------------------------------


def sdk(server: FakeSegment, **options: object) -> SdkTransport:
    return SdkTransport(server.url, server.write_key, **options)  # type: ignore[arg-type]


def test_sdk_transport_delivers_events(segment_server: FakeSegment) -> None:
    batch = events(120, run="sdk")
    transport_ = sdk(segment_server)
    try:
        outcome = transport_.send(batch)
    finally:
        transport_.close()
    assert outcome.sent == batch and not outcome.failed
    assert segment_server.received == {e.message_id: 1 for e in batch}
    arrived = {e["messageId"]: e for e in segment_server.events}
    original = orjson.loads(batch[7].body)
    got = arrived[batch[7].message_id]
    assert got["event"] == original["event"] and got["userId"] == original["userId"]
    assert got["properties"] == original["properties"]
    assert got["integrations"] == original["integrations"]
    assert got["context"]["traits"] == original["context"]["traits"]
    assert got["timestamp"].startswith("2024-05-01T12:00:00.123")
    assert all(r.headers.get("Content-Encoding") == "gzip" for r in segment_server.requests)


def test_sdk_transport_reports_a_failing_server(segment_server: FakeSegment) -> None:
    segment_server.set_faults(fail_rate=1.0, fail_statuses=(500,))
    transport_ = sdk(segment_server, max_retries=1)
    try:
        outcome = transport_.send(events(10))
    finally:
        segment_server.set_faults(fail_rate=0.0)
        transport_.close()
    assert outcome.sent == [] and len(outcome.failed) == 10
    assert outcome.failed[0][1].startswith("HTTP 500 (the SDK gave up)")
    assert segment_server.received == {}


def test_sdk_transport_maps_401_to_write_key_rejected(segment_server: FakeSegment) -> None:
    key = "wrong-key-456"
    transport_ = SdkTransport(segment_server.url, key)
    try:
        with pytest.raises(WriteKeyRejected) as raised:
            transport_.send(events(3))
    finally:
        transport_.close()
    assert raised.value.status == 401 and key not in str(raised.value)


def test_sdk_transport_survives_a_small_queue(segment_server: FakeSegment) -> None:
    batch = events(40, run="queue")
    transport_ = sdk(segment_server, max_queue_size=5)
    try:
        outcome = transport_.send(batch)
    finally:
        transport_.close()
    assert len(outcome.sent) == 40
    assert segment_server.received == {e.message_id: 1 for e in batch}


def test_sdk_transport_refuses_what_it_cannot_send(segment_server: FakeSegment) -> None:
    good = event(1)
    broken = OutgoingEvent(b"x", "m-1", b"{not json")
    identify = OutgoingEvent(b"y", "m-2", orjson.dumps({"type": "identify", "userId": "u"}))
    transport_ = sdk(segment_server)
    try:
        outcome = transport_.send([good, broken, identify])
    finally:
        transport_.close()
    assert outcome.sent == [good]
    assert [why for _, why in outcome.failed] == [
        "the SDK path cannot send this event: its body is not valid JSON",
        "the SDK path cannot send this event: only track events are supported",
    ]


# -- FakeSegment itself --------------------------------------------------------------------


_client = httpx.Client()  # one client: building one per request costs ~50 ms of TLS setup


def post(
    server: FakeSegment, body: bytes, *, gzipped: bool = True, key: str | None = None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    auth = (key or server.write_key, "")
    return _client.post(server.url + "/v1/batch", content=body, headers=headers, auth=auth)


def batch_of(*items: dict[str, object]) -> bytes:
    return orjson.dumps({"batch": list(items), "sentAt": "2025-01-01T00:00:00.000Z"})


def track(message_id: str = "m-1", **extra: object) -> dict[str, object]:
    return {"type": "track", "event": "E", "userId": "u", "messageId": message_id, **extra}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "not valid JSON"),
        (batch_of({"type": "track", "userId": "u", "event": "E"}), "no messageId"),
        (batch_of(track(properties={"blob": "x" * 33_000})), "over 32 KB"),
        (batch_of(*[track(f"m-{i}") for i in range(2501)]), "more than 2500"),
        (
            batch_of(*[track(f"m-{i}", properties={"p": "x" * 30_000}) for i in range(17)]),
            "request over",
        ),
        (batch_of(track(userId=None)), "no identity"),
        (orjson.dumps({"batch": []}), "non-empty"),
    ],
)
def test_fake_segment_refuses_what_segment_refuses(
    segment_server: FakeSegment, body: bytes, message: str
) -> None:
    response = post(segment_server, body)
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert segment_server.received == {}


def test_fake_segment_auth_plain_bodies_and_body_write_key(segment_server: FakeSegment) -> None:
    assert post(segment_server, batch_of(track("a")), key="bad").status_code == 401
    assert post(segment_server, batch_of(track("b")), gzipped=False).status_code == 200
    in_body = orjson.dumps({"batch": [track("c")], "writeKey": segment_server.write_key})
    response = _client.post(segment_server.url + "/v1/batch", content=in_body)
    assert response.status_code == 200
    assert segment_server.received == {"b": 1, "c": 1}


def test_fake_segment_goes_down_and_recovers(segment_server: FakeSegment) -> None:
    segment_server.go_down(0.3)
    with pytest.raises(httpx.TransportError):
        post(segment_server, batch_of(track("x")))
    time.sleep(0.35)
    assert post(segment_server, batch_of(track("x"))).status_code == 200


def test_fake_segment_lost_response_records_the_events(segment_server: FakeSegment) -> None:
    segment_server.script("lost-response")
    with pytest.raises(httpx.TransportError):
        post(segment_server, batch_of(track("lost")))
    assert segment_server.received == {"lost": 1}


def test_fake_segment_faults_are_reproducible() -> None:
    def results(seed: int) -> list[str]:
        with FakeSegment(faults=Faults(fail_rate=0.3, rate_limit_rate=0.3), seed=seed) as server:
            for i in range(30):
                post(server, batch_of(track(f"m-{i}")))
            return [r.result for r in server.requests]

    assert results(3) == results(3)
    assert results(3) != results(4)


def test_fake_segment_runs_as_a_process(tmp_path: object) -> None:
    import subprocess
    import sys
    from pathlib import Path

    record = Path(str(tmp_path)) / "ids.txt"
    script = Path(__file__).with_name("fake_segment.py")
    process = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--write-key", "K", "--record", str(record)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        with HttpTransport(url, "K") as sender:
            outcome = sender.send(events(5, run="proc"))
        assert len(outcome.sent) == 5
        assert record.read_text().split() == [e.message_id for e in events(5, run="proc")]
    finally:
        process.terminate()
        process.wait(timeout=10)
