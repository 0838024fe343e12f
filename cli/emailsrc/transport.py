"""Send batches of encoded events to Segment's HTTP Tracking API.

`HttpTransport` posts one batch per call to `{endpoint}/v1/batch` with retries, backoff,
`Retry-After`, rate limiting and 400-splitting; `SdkTransport` does the same job through
segment-analytics-python; `Sender` keeps a few batches in flight and reports each outcome
back in the calling thread so the ledger is only ever written from one thread.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import ipaddress
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx
import orjson

from . import __version__
from .secrets import REDACT_MIN_CHARS

Verdict = Literal["ok", "retry", "auth", "split", "fail"]

USER_AGENT = f"emailsrc/{__version__}"
BATCH_PATH = "/v1/batch"
# Retry-After beyond this is treated as a misconfigured header, not an instruction.
MAX_RETRY_AFTER = 300.0
# Level 1 deflates a typical batch about twice as fast as level 6 for ~20% more bytes;
# the event rate cap, not bandwidth, is what bounds a real run.
DEFAULT_GZIP_LEVEL = 1
INTERRUPTED = "interrupted before it could be sent"

_SECONDS = re.compile(r"\d+(?:\.\d+)?")
_HOSTNAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")
_RETRYABLE_4XX = frozenset({408, 410, 429, 460})
_FATAL_5XX = frozenset({501, 505})
_SHORT_BODY = 200

log = logging.getLogger(__name__)


# -- data ----------------------------------------------------------------------------------


@dataclass(slots=True)
class OutgoingEvent:
    """One encoded Track call, ready to be spliced into a batch request."""

    key_hash: bytes
    message_id: str
    body: bytes


@dataclass(slots=True)
class BatchOutcome:
    """What became of one batch. Every event of the batch is in exactly one list."""

    sent: list[OutgoingEvent]
    failed: list[tuple[OutgoingEvent, str]]
    attempts: int
    retries: int
    status: int | None
    # Neither acknowledged nor refused: the run stopped before they could be (re)tried.
    # They stay pending, so a re-run sends them.
    unsent: list[OutgoingEvent] = field(default_factory=list)

    @classmethod
    def empty(cls) -> BatchOutcome:
        return cls(sent=[], failed=[], attempts=0, retries=0, status=None)


class WriteKeyRejected(Exception):
    """Segment answered 401/403: the write key is wrong. Ends the whole run."""

    def __init__(self, status: int, outcome: BatchOutcome | None = None) -> None:
        super().__init__(f"the write key was rejected (HTTP {status}); check SEGMENT_WRITE_KEY")
        self.status = status
        # What this batch achieved before the rejection (a split half may have gone through).
        self.outcome = outcome


class EndpointError(ValueError):
    """An unusable --endpoint value."""


# -- pure helpers --------------------------------------------------------------------------


def normalize_endpoint(url: str) -> str:
    """The endpoint as `scheme://host[:port][/prefix]`, without a trailing slash.

    https:// is required, except plain http:// to a loopback host (a local test server).
    A pasted `/v1` or `/v1/batch` suffix is dropped because the transport adds it.
    """
    text = url.strip()
    if not text:
        raise EndpointError("the endpoint is empty; expected a URL like https://api.segment.io")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise EndpointError(f"the endpoint is not a valid URL: {text!r}") from None
    if parts.username is not None or parts.password is not None:
        # Never echo it: whatever sits before the '@' may be a secret.
        raise EndpointError("the endpoint must not contain credentials; pass the write key alone")
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise EndpointError(f"the endpoint must be an https:// URL, got {text!r}")
    host = parts.hostname or ""
    if not _valid_host(host):
        raise EndpointError(f"the endpoint has no valid host name: {text!r}")
    if parts.query or parts.fragment:
        raise EndpointError(f"the endpoint must not have a query or fragment: {text!r}")
    if scheme == "http" and not _is_loopback(host):
        raise EndpointError(
            f"plain http:// is only allowed for a loopback host (127.0.0.1, ::1, localhost); "
            f"use https:// for {host}"
        )
    path = parts.path.rstrip("/")
    for suffix in (BATCH_PATH, "/v1"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{path}"


def _valid_host(host: str) -> bool:
    if _HOSTNAME.fullmatch(host):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def classify_status(status: int) -> Verdict:
    """What to do with a batch after an HTTP status (see DESIGN.md, "Sending")."""
    if 200 <= status < 300:
        return "ok"
    if status in (401, 403):
        return "auth"
    if status == 400:
        return "split"
    if status in _RETRYABLE_4XX or (500 <= status < 600 and status not in _FATAL_5XX):
        return "retry"
    return "fail"


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or an HTTP date), clamped to
    [0, MAX_RETRY_AFTER]; None when absent or unreadable."""
    if header is None:
        return None
    text = header.strip()
    if _SECONDS.fullmatch(text):
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        # "-0000" dates come back naive; they are UTC by RFC 5322.
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return min(max((when - now).total_seconds(), 0.0), MAX_RETRY_AFTER)


def format_sent_at(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, the shape Segment documents."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _one_line(text: str, limit: int = _SHORT_BODY) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- rate limiting and retry policy --------------------------------------------------------


class RateLimiter:
    """A token bucket in events per second, shared by every sending thread.

    The bucket holds one second of tokens at the current rate and starts full. A request
    for more tokens than the bucket holds is granted by going into debt: the caller waits
    until the debt is repaid, so a 2,500-event batch at 500/s waits 5 s after the first
    second's burst. Waits are reserved under the lock and slept outside it, so concurrent
    callers queue behind each other instead of all waking at once.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0 (0 means unlimited)")
        self.target_rate = float(rate)
        self.current_rate = float(rate)
        self._clock = clock
        self._wake = threading.Event()
        self._sleep = sleep if sleep is not None else self._interruptible_sleep
        self._lock = threading.Lock()
        self._tokens = self._capacity()
        self._updated = clock()

    @property
    def floor(self) -> float:
        """The slowest slow_down() goes: 5% of the target, at least 10/s (or the target)."""
        return min(self.target_rate, max(10.0, 0.05 * self.target_rate))

    def acquire(self, n: int) -> None:
        """Block until n events may be sent."""
        if n <= 0 or self.target_rate == 0:
            return
        with self._lock:
            self._refill()
            self._tokens -= n
            wait_for = -self._tokens / self.current_rate if self._tokens < 0 else 0.0
        if wait_for > 0:
            self._sleep(wait_for)

    def slow_down(self) -> None:
        """Halve the rate after a 429, down to the floor."""
        self._set_rate(max(self.floor, self.current_rate / 2))

    def speed_up(self) -> None:
        """Recover 5% of the target rate per successful request."""
        self._set_rate(min(self.target_rate, self.current_rate + 0.05 * self.target_rate))

    def interrupt(self) -> None:
        """Cut short the current and future waits (the run is stopping)."""
        self._wake.set()

    def _set_rate(self, rate: float) -> None:
        if self.target_rate == 0:
            return
        with self._lock:
            self._refill()  # tokens earned so far count at the old rate
            self.current_rate = rate
            self._tokens = min(self._tokens, self._capacity())

    def _capacity(self) -> float:
        return max(self.current_rate, 1.0)

    def _refill(self) -> None:
        now = self._clock()
        earned = (now - self._updated) * self.current_rate
        self._tokens = min(self._capacity(), self._tokens + earned)
        self._updated = now

    def _interruptible_sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long one batch keeps being retried.

    Exponential backoff from backoff_base doubling up to backoff_max, with full jitter (a
    uniform draw below the ceiling) so concurrent senders do not retry in lockstep. A
    Retry-After from the server is a minimum. max_total_delay caps the seconds spent
    waiting for one batch, so a long outage fails batches instead of hanging the run.
    """

    max_attempts: int = 10
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    jitter: bool = True
    max_total_delay: float | None = 900.0
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("backoff times must be >= 0")

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(max(attempt - 1, 0), 64))
        backoff = ceiling * self.rng() if self.jitter else ceiling
        if retry_after is None:
            return backoff
        return max(retry_after, backoff)


# -- the httpx transport -------------------------------------------------------------------


class Transport(Protocol):
    def send(self, events: Sequence[OutgoingEvent]) -> BatchOutcome: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class _Attempt:
    """The result of one POST: a status (None for a network error) and why it failed."""

    status: int | None
    reason: str = ""
    retry_after: float | None = None


class HttpTransport:
    """Posts batches to `{endpoint}/v1/batch` with httpx. Thread-safe: one instance serves
    every sending thread over a shared connection pool."""

    def __init__(
        self,
        endpoint: str,
        write_key: str,
        *,
        policy: RetryPolicy = RetryPolicy(),
        limiter: RateLimiter | None = None,
        timeout: float = 30.0,
        sleep: Callable[[float], None] | None = None,
        on_retry: Callable[[int | None, str], None] | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] = _utc_now,
        gzip_level: int = DEFAULT_GZIP_LEVEL,
    ) -> None:
        if not write_key:
            raise ValueError("a write key is required")
        self.endpoint = normalize_endpoint(endpoint)
        self._url = self.endpoint + BATCH_PATH
        self._policy = policy
        self._limiter = limiter
        self._timeout = timeout
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._interruptible_sleep
        self._on_retry = on_retry
        self._clock = clock
        self._gzip_level = gzip_level
        token = base64.b64encode(f"{write_key}:".encode()).decode("ascii")
        # A proxy or a misconfigured host may echo the request's credentials in its error
        # body; reasons built from answers go to the rejects file and the ledger.
        self._secrets = (write_key, token, base64.b64encode(write_key.encode()).decode("ascii"))
        self._headers = {
            "Authorization": f"Basic {token}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": USER_AGENT,
        }
        self._owns_client = client is None
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            follow_redirects=False,
            # A local test server must never be reached through a corporate proxy.
            trust_env=not _is_loopback(urlsplit(self.endpoint).hostname or ""),
        )

    def __repr__(self) -> str:
        return f"HttpTransport({self.endpoint!r})"

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, events: Sequence[OutgoingEvent]) -> BatchOutcome:
        """Deliver one batch; every event ends up sent, failed (with a reason) or unsent."""
        outcome = BatchOutcome.empty()
        try:
            self._deliver(list(events), outcome)
        except WriteKeyRejected as rejected:
            rejected.outcome = outcome
            raise
        return outcome

    def interrupt(self) -> None:
        """Stop retrying: backoff waits end now and no new attempt starts. Events not yet
        acknowledged come back as unsent."""
        self._stop.set()
        if self._limiter is not None:
            self._limiter.interrupt()

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # Splitting on 400 isolates the events Segment refuses: each half is retried on its
    # own, down to single events, which then fail with Segment's reason.
    def _deliver(self, events: list[OutgoingEvent], outcome: BatchOutcome) -> None:
        if not events:
            return
        verdict, reason = self._settle(events, outcome)
        if verdict == "ok":
            outcome.sent.extend(events)
        elif verdict == "split" and len(events) > 1:
            middle = len(events) // 2
            self._deliver(events[:middle], outcome)
            self._deliver(events[middle:], outcome)
        elif verdict == "unsent":
            outcome.unsent.extend(events)
        else:
            outcome.failed.extend((event, reason) for event in events)

    def _settle(
        self, events: list[OutgoingEvent], outcome: BatchOutcome
    ) -> tuple[Verdict | Literal["unsent"], str]:
        """Attempt one request body until it succeeds, is refused, or the budget is spent."""
        joined = b",".join(event.body for event in events)
        waited = 0.0
        attempt = 0
        while True:
            if self._limiter is not None and not self._stop.is_set():
                self._limiter.acquire(len(events))
            if self._stop.is_set():
                return "unsent", INTERRUPTED
            attempt += 1
            outcome.attempts += 1
            if attempt > 1:
                outcome.retries += 1
            result = self._post(joined)
            if result.status is not None:
                outcome.status = result.status
            verdict = "retry" if result.status is None else classify_status(result.status)
            if verdict == "ok":
                if self._limiter is not None:
                    self._limiter.speed_up()
                return "ok", ""
            if verdict == "auth":
                raise WriteKeyRejected(result.status or 0)
            if verdict != "retry":
                return verdict, result.reason
            if result.status == 429 and self._limiter is not None:
                self._limiter.slow_down()
            delay = self._policy.delay(attempt, result.retry_after)
            budget = self._policy.max_total_delay
            if attempt >= self._policy.max_attempts or (
                budget is not None and waited + delay > budget
            ):
                tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
                return "fail", f"retry budget spent after {tries}: {result.reason}"
            if self._on_retry is not None:
                self._on_retry(result.status, result.reason)
            self._sleep(delay)
            waited += delay

    def _post(self, joined: bytes) -> _Attempt:
        # sentAt is rebuilt per attempt: Segment corrects timestamps by (receivedAt - sentAt).
        sent_at = format_sent_at(self._clock()).encode("ascii")
        payload = b'{"batch":[' + joined + b'],"sentAt":"' + sent_at + b'"}'
        content = gzip.compress(payload, compresslevel=self._gzip_level, mtime=0)
        try:
            response = self._client.post(self._url, content=content, headers=self._headers)
        except httpx.TimeoutException as exc:
            return _Attempt(None, f"timed out after {self._timeout:g} s ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return _Attempt(None, self._redact(f"network error: {_describe(exc)}"))
        status = response.status_code
        if 200 <= status < 300:
            return _Attempt(status)
        return _Attempt(
            status,
            # Redacted before the reason is cut short, which could leave half a key.
            _status_reason(status, self._redact(response.text)),
            retry_after_seconds(response.headers.get("Retry-After"), self._clock()),
        )

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            # A key shorter than a real one (a test's "k") would mangle every word.
            if len(secret) >= REDACT_MIN_CHARS and secret in text:
                text = text.replace(secret, "***")
        return text

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)


def _status_reason(status: int, body: str) -> str:
    short = _one_line(body)
    if status == 400:
        return f"HTTP 400 rejected by Segment: {short}" if short else "HTTP 400 rejected by Segment"
    if status == 429:
        return "HTTP 429 rate limited"
    if status >= 500 or not short:
        return f"HTTP {status}"
    return f"HTTP {status}: {short}"


def _describe(exc: BaseException) -> str:
    detail = _one_line(str(exc), 120)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


# -- the segment-analytics-python transport ------------------------------------------------

# The SDK measures events and batches with json.dumps (spaces, \u escapes), not our compact
# bytes; these keep each request it builds from one of our chunks under 500 KB.
_SDK_CHUNK_BYTES = 465_000
_SDK_EVENT_OVERHEAD = 200  # the context.library it adds, its timestamp format, null ids
_SDK_MAX_EVENTS = 2_500


class SdkTransport:
    """Sends through segment-analytics-python (`--transport sdk`), for users who want the
    official library on the wire. Same `send()` contract as HttpTransport, with limits:

    - No per-event acknowledgement: the SDK queues events and uploads them from its own
      thread. `send()` enqueues one batch, calls `flush()` (which waits until the queue is
      drained), and reports every event as sent unless the SDK's `on_error` named it.
    - One batch at a time: flush() waits for the shared queue, so `send()` is serialized
      and a Sender's concurrency buys nothing here.
    - The SDK retries with its own policy (max_retries, exponential backoff; 429s with a
      Retry-After are waited out for up to max_rate_limit_duration), invisible to us:
      no `on_retry` calls, attempts/retries are not counted, and a 429 cannot slow our
      rate limiter down.
    - No control of sentAt (the SDK sets its own per attempt, which is correct), no
      splitting of a batch that Segment refuses with 400: the whole upload fails.
    - Only track events; a 401/403 is seen through on_error and raised as
      WriteKeyRejected once the batch is flushed.
    - Stopping cannot cut the SDK's waits short: a batch in its retry loop is waited for.
    - The SDK measures sizes with json.dumps (spaces, \\u escapes), so an event near 32 KB
      of non-ASCII text can be refused here though HttpTransport would send it; and its
      own batching can overshoot 500 KB by one event, so batches are fed to it in chunks
      it cannot overfill. Each flush also waits up to `upload_interval` for a full upload.
    """

    def __init__(
        self,
        endpoint: str,
        write_key: str,
        *,
        limiter: RateLimiter | None = None,
        max_retries: int = 9,
        timeout: float = 15.0,
        max_total_delay: float = 900.0,
        upload_interval: float = 0.05,
        max_queue_size: int = 20_000,
    ) -> None:
        from segment.analytics.client import Client

        if not write_key:
            raise ValueError("a write key is required")
        self.endpoint = normalize_endpoint(endpoint)
        self._write_key = write_key
        self._limiter = limiter
        self._send_lock = threading.Lock()
        self._errors_lock = threading.Lock()
        self._failures: dict[str, str] = {}
        self._auth_status: int | None = None
        _quiet_sdk_logger()
        self._client = Client(
            write_key=write_key,
            host=self.endpoint,
            gzip=True,
            on_error=self._on_error,
            max_queue_size=max_queue_size,
            upload_size=_SDK_MAX_EVENTS,
            # The consumer waits this long to fill an upload; we flush per batch anyway.
            upload_interval=upload_interval,
            max_retries=max_retries,
            timeout=timeout,
            max_total_backoff_duration=max_total_delay,
            max_rate_limit_duration=max_total_delay,
        )

    def __repr__(self) -> str:
        return f"SdkTransport({self.endpoint!r})"

    def send(self, events: Sequence[OutgoingEvent]) -> BatchOutcome:
        outcome = BatchOutcome.empty()
        with self._send_lock:
            if self._limiter is not None:
                self._limiter.acquire(len(events))
            ready = self._decode(events, outcome)
            for chunk in _sdk_chunks(ready):
                self._send_chunk(chunk, outcome)
        return outcome

    def close(self) -> None:
        self._client.flush()
        self._client.join()

    def _decode(
        self, events: Sequence[OutgoingEvent], outcome: BatchOutcome
    ) -> list[tuple[OutgoingEvent, dict[str, Any]]]:
        ready = []
        for event in events:
            try:
                ready.append((event, _sdk_track_arguments(event.body)))
            except ValueError as exc:
                outcome.failed.append((event, f"the SDK path cannot send this event: {exc}"))
        return ready

    def _send_chunk(
        self, chunk: list[tuple[OutgoingEvent, dict[str, Any]]], outcome: BatchOutcome
    ) -> None:
        with self._errors_lock:
            self._failures.clear()
        queued: list[OutgoingEvent] = []
        for event, arguments in chunk:
            refused = self._enqueue(arguments)
            if refused:
                outcome.failed.append((event, refused))
            else:
                queued.append(event)
        self._client.flush()
        outcome.attempts += 1
        with self._errors_lock:
            failures, auth_status = dict(self._failures), self._auth_status
        if auth_status is not None:
            outcome.unsent.extend(queued)
            raise WriteKeyRejected(auth_status, outcome)
        for event in queued:
            why = failures.get(event.message_id)
            if why is None:
                outcome.sent.append(event)
                outcome.status = 200  # the SDK hides statuses; a 2xx is implied
            else:
                outcome.failed.append((event, why))

    def _enqueue(self, arguments: dict[str, Any]) -> str | None:
        """Queue one event; the reason it was refused, or None."""
        for _ in range(2):
            try:
                accepted, _message = self._client.track(**arguments)
            except (AssertionError, RuntimeError, TypeError, ValueError) as exc:
                return f"the SDK refused the event: {_one_line(str(exc), 160)}"
            if accepted:
                return None
            # A full queue makes track() drop the event and return False: drain, try again.
            self._client.flush()
        return "the SDK's queue stayed full"

    def _on_error(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        # Called from the SDK's consumer thread for a batch it gave up on.
        status = getattr(error, "status", None)
        reason = self._sdk_reason(error, status)
        with self._errors_lock:
            if status in (401, 403):
                self._auth_status = status
            for message in batch:
                self._failures[str(message.get("messageId"))] = reason

    def _sdk_reason(self, error: Exception, status: object) -> str:
        detail = _one_line(str(error).replace(self._write_key, "***"), 160)
        if isinstance(status, int):
            return f"HTTP {status} (the SDK gave up): {detail}"
        return f"the SDK gave up: {type(error).__name__}: {detail}"


def _sdk_track_arguments(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError("its body is not valid JSON") from exc
    if not isinstance(payload, dict) or payload.get("type", "track") != "track":
        raise ValueError("only track events are supported")
    stamp = payload.get("timestamp")
    try:
        timestamp = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError as exc:
        raise ValueError(f"unreadable timestamp {stamp!r}") from exc
    return {
        "user_id": payload.get("userId"),
        "anonymous_id": payload.get("anonymousId"),
        "event": payload.get("event"),
        "properties": payload.get("properties") or {},
        "context": payload.get("context") or {},
        "timestamp": timestamp,
        "message_id": payload.get("messageId"),
        "integrations": payload.get("integrations") or {},
    }


def _sdk_chunks(
    ready: list[tuple[OutgoingEvent, dict[str, Any]]],
) -> Iterator[list[tuple[OutgoingEvent, dict[str, Any]]]]:
    chunk: list[tuple[OutgoingEvent, dict[str, Any]]] = []
    size = 0
    for item in ready:
        measured = len(json.dumps(item[1], default=str)) + _SDK_EVENT_OVERHEAD
        if chunk and (size + measured > _SDK_CHUNK_BYTES or len(chunk) >= _SDK_MAX_EVENTS):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += measured
    if chunk:
        yield chunk


def _quiet_sdk_logger() -> None:
    # The SDK logs every upload error; failures reach the run summary through on_error,
    # and stray lines on stderr would tear the progress display.
    sdk_log = logging.getLogger("segment")
    if not sdk_log.handlers:
        sdk_log.addHandler(logging.NullHandler())


# -- concurrency ---------------------------------------------------------------------------


class Sender:
    """Keeps up to `concurrency` batches in flight so round-trip latency does not cap
    throughput, while the batch iterable and `on_outcome` stay in the calling thread.

    Stopping (Ctrl-C, `stop()`, a rejected write key, an error from the iterable or from
    on_outcome): no new batch is taken; in-flight batches get `grace` seconds to finish,
    then the transport is interrupted (no new attempts; unacknowledged events come back
    unsent) and each in-flight batch is still reported before run() returns or raises.
    A second Ctrl-C while waiting abandons the in-flight batches: they stay pending in the
    ledger and a re-run sends them again (Segment drops the duplicates by messageId).
    """

    def __init__(self, transport: Transport, *, concurrency: int = 4, grace: float = 10.0) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._transport = transport
        self._concurrency = concurrency
        self._grace = grace
        self._stop_requested = threading.Event()
        self.stopped = False

    def stop(self) -> None:
        """Ask run() to wind down; safe to call from a signal handler or another thread."""
        self._stop_requested.set()

    def run(
        self,
        batches: Iterable[Sequence[OutgoingEvent]],
        on_outcome: Callable[[Sequence[OutgoingEvent], BatchOutcome], None],
    ) -> None:
        run = _Run(self._transport, on_outcome, self._stop_requested, self._grace)
        executor = ThreadPoolExecutor(self._concurrency, thread_name_prefix="emailsrc-send")
        try:
            try:
                run.pump(iter(batches), executor, self._concurrency)
            except BaseException as exc:
                run.fail(exc)
            try:
                run.drain()
            except KeyboardInterrupt:
                run.abandon()
                raise
        finally:
            executor.shutdown(wait=not run.abandoned, cancel_futures=True)
        self.stopped = self._stop_requested.is_set()
        if run.error is not None:
            raise run.error


class _Run:
    """The state of one Sender.run(): the batches in flight and why it is stopping."""

    def __init__(
        self,
        transport: Transport,
        on_outcome: Callable[[Sequence[OutgoingEvent], BatchOutcome], None],
        stop_requested: threading.Event,
        grace: float,
    ) -> None:
        self.transport = transport
        self.on_outcome = on_outcome
        self.stop_requested = stop_requested
        self.grace = grace
        self.in_flight: dict[Future[BatchOutcome], Sequence[OutgoingEvent]] = {}
        self.error: BaseException | None = None
        self.abandoned = False
        self._deadline: float | None = None
        self._interrupted = False

    @property
    def stopping(self) -> bool:
        return self.error is not None or self.stop_requested.is_set()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error

    def pump(
        self, batches: Iterator[Sequence[OutgoingEvent]], pool: ThreadPoolExecutor, limit: int
    ) -> None:
        exhausted = False
        while not self.stopping:
            while not exhausted and not self.stopping and len(self.in_flight) < limit:
                batch = next(batches, None)
                if batch is None:
                    exhausted = True
                elif batch:
                    self.in_flight[pool.submit(self.transport.send, batch)] = batch
            if not self.in_flight:
                return
            self._report_some(timeout=0.1)

    def drain(self) -> None:
        while self.in_flight:
            self._report_some(timeout=self._until_interrupt())

    def abandon(self) -> None:
        self.abandoned = True
        self._interrupt_transport()

    def _until_interrupt(self) -> float | None:
        """Seconds left of the grace period; interrupts the transport once it is over."""
        if self._interrupted:
            return None
        if self._deadline is None:
            self._deadline = time.monotonic() + self.grace
        left = self._deadline - time.monotonic()
        if left <= 0:
            self._interrupt_transport()
            return None
        return min(left, 0.1)

    def _interrupt_transport(self) -> None:
        self._interrupted = True
        interrupt = getattr(self.transport, "interrupt", None)
        if interrupt is not None:
            interrupt()

    def _report_some(self, timeout: float | None) -> None:
        done, _ = wait(list(self.in_flight), timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            batch = self.in_flight.pop(future)
            outcome = self._outcome_of(future, batch)
            if outcome is None:
                continue
            try:
                self.on_outcome(batch, outcome)
            except Exception as exc:  # e.g. the ledger failed: stop, but settle the rest
                self.fail(exc)

    def _outcome_of(
        self, future: Future[BatchOutcome], batch: Sequence[OutgoingEvent]
    ) -> BatchOutcome | None:
        try:
            return future.result()
        except WriteKeyRejected as rejected:
            self.fail(rejected)
            return _partial(batch, rejected.outcome)
        except Exception as exc:
            self.fail(exc)
            return None


def _partial(batch: Sequence[OutgoingEvent], outcome: BatchOutcome | None) -> BatchOutcome | None:
    """What to report for a batch whose key was rejected midway: only if part of it was
    acknowledged (a split half went through before the key stopped working)."""
    if outcome is None or not outcome.sent:
        return None
    settled = {id(e) for e in outcome.sent} | {id(e) for e, _ in outcome.failed}
    outcome.unsent = [e for e in batch if id(e) not in settled]
    return outcome
