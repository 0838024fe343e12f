"""A local HTTP server that behaves like Segment's HTTP Tracking API, for tests and benchmarks.

In tests: `with FakeSegment() as segment: ...` (or the `segment_server` fixture), then send
to `segment.url` with `segment.write_key`. As a process, for crash tests and benchmarks:

    python tests/fake_segment.py --port 0 --write-key K --record ids.txt --fail-rate 0.1

prints "listening on http://127.0.0.1:PORT" and appends each accepted messageId to the
record file, one per line, flushed per request so a reader sees them while it runs.

Like Segment it checks Basic auth (or a writeKey in the body), gunzips, and refuses with
400 a request over 500 KB, a batch over 2,500 events, an event over 32 KB, bad JSON, or an
event without messageId, type or identity. Faults are injected from a seeded generator or
an exact script: 5xx, 429 with Retry-After, dropped connections (before or in the middle
of the body), hung requests, lost responses, per-request latency, outages, and a 400 for
batches holding a "poison" event. Only accepted (2xx) requests count as received.
With `max_rate` (`--max-rate`) it also enforces a rate like a token bucket holding one
second of events: a batch that does not fit is answered 429 with a Retry-After.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import math
import random
import signal
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any

import orjson

MAX_REQUEST_BYTES = 500_000
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_EVENTS = 2_500
EVENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
OK_BODY = b'{"success":true}'
# How far below empty the rate bucket may go: the client's clock and ours disagree by
# a few milliseconds, which must not turn a batch sent exactly on time into a 429.
RATE_SLACK_SECONDS = 0.02

# Script actions besides an HTTP status or a Reply.
OK = "ok"
DROP = "drop"  # close the connection before reading the body, no response
DROP_MID = "drop-mid"  # read half the body, then close
HANG = "hang"  # read the body, say nothing for hang_seconds, close (a client timeout)
LOST = "lost-response"  # accept and record the events, then close without answering
ACTIONS = frozenset({OK, DROP, DROP_MID, HANG, LOST})


@dataclass(frozen=True)
class Reply:
    """A scripted HTTP answer, e.g. Reply(429, {"Retry-After": "3"})."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Action = int | str | Reply


@dataclass(frozen=True)
class Faults:
    """Per-request fault probabilities (drawn once per request, in this order)."""

    drop_rate: float = 0.0
    drop_mid_rate: float = 0.0
    hang_rate: float = 0.0
    rate_limit_rate: float = 0.0
    fail_rate: float = 0.0
    lost_response_rate: float = 0.0
    latency: float = 0.0  # seconds added to every request
    hang_seconds: float = 5.0
    retry_after: str | None = "1"  # seconds or an HTTP date; None sends no header
    fail_statuses: tuple[int, ...] = (500, 502, 503, 504)


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it (headers without Authorization)."""

    path: str
    result: str  # "accepted", "400: <why>", "503", "drop", ...
    status: int | None  # None when no response was written
    wire_bytes: int
    body_bytes: int
    events: int
    sent_at: str | None
    headers: dict[str, str]


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = orjson.dumps({"code": code, "message": message})


class FakeSegment:
    """A threaded HTTP server on 127.0.0.1 speaking the Tracking API's /v1/batch and
    /v1/track. Thread-safe; every recorder accessor returns a copy."""

    def __init__(
        self,
        write_key: str = "test-write-key",
        *,
        faults: Faults | None = None,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        record_path: str | None = None,
        keep_events: bool = True,
        keep_ids: bool = True,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_event_bytes: int = MAX_EVENT_BYTES,
        max_batch_events: int = MAX_BATCH_EVENTS,
        max_rate: float = 0.0,
    ) -> None:
        self.write_key = write_key
        self.max_rate = max_rate  # events per second; 0: no limit
        self._tokens = max_rate
        self._tokens_at = time.monotonic()
        self._rate_limited = 0
        self.faults = faults or Faults()
        self.max_request_bytes = max_request_bytes
        self.max_event_bytes = max_event_bytes
        self.max_batch_events = max_batch_events
        self._address = (host, port)
        self._record_path = record_path
        self._record: IO[str] | None = None
        self._keep_events = keep_events
        self._keep_ids = keep_ids
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._script: list[Action] = []
        self._down_until = 0.0
        self._poison: set[str] = set()
        self._reject_if: Callable[[dict[str, Any]], bool] | None = None
        self._received: Counter[str] = Counter()
        self._events: list[dict[str, Any]] = []
        self._requests: list[RequestRecord] = []
        self._accepted_events = 0
        self._accepted_requests = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeSegment:
        if self._record_path:
            self._record = open(self._record_path, "a", encoding="ascii")  # noqa: SIM115
        self._server = _Server(self._address, _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._record is not None:
            self._record.close()
            self._record = None

    def __enter__(self) -> FakeSegment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the server first"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    # -- fault control -------------------------------------------------------------------

    def set_faults(self, **changes: Any) -> None:
        """Change fault settings while running, e.g. set_faults(fail_rate=0.2)."""
        with self._lock:
            self.faults = replace(self.faults, **changes)

    def script(self, *actions: Action) -> None:
        """Answer the next requests with these, in order, before any random fault:
        an HTTP status (429 gets the Retry-After of `faults`), a Reply, or one of
        "ok", "drop", "drop-mid", "hang", "lost-response"."""
        for action in actions:
            if isinstance(action, str) and action not in ACTIONS:
                raise ValueError(f"unknown action {action!r}")
        with self._lock:
            self._script.extend(actions)

    def go_down(self, seconds: float) -> None:
        """Close every connection without an answer for `seconds`, then recover."""
        with self._lock:
            self._down_until = time.monotonic() + seconds

    def poison(self, *message_ids: str) -> None:
        """Answer 400 to any batch that contains one of these messageIds."""
        with self._lock:
            self._poison.update(message_ids)

    def reject_if(self, predicate: Callable[[dict[str, Any]], bool] | None) -> None:
        """Answer 400 to any batch holding an event for which predicate(event) is true."""
        with self._lock:
            self._reject_if = predicate

    # -- what was received ---------------------------------------------------------------

    @property
    def received(self) -> Counter[str]:
        """messageId -> how many accepted requests carried it."""
        with self._lock:
            return Counter(self._received)

    def count(self, message_id: str) -> int:
        with self._lock:
            return self._received[message_id]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every accepted event, in arrival order, duplicates included."""
        with self._lock:
            return list(self._events)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def accepted_requests(self) -> list[RequestRecord]:
        return [r for r in self.requests if r.result == "accepted"]

    @property
    def accepted_events(self) -> int:
        with self._lock:
            return self._accepted_events

    def reset(self) -> None:
        """Forget what was received and any pending script."""
        with self._lock:
            self._received.clear()
            self._events.clear()
            self._requests.clear()
            self._script.clear()
            self._accepted_events = 0
            self._accepted_requests = 0

    # -- request handling (handler threads) ----------------------------------------------

    def handle(self, handler: _Handler) -> None:
        path = handler.path.split("?", 1)[0]
        length = int(handler.headers.get("Content-Length") or 0)
        with self._lock:
            down = time.monotonic() < self._down_until
            faults = self.faults
            action = None if down else self._next_action(faults)
        if down:
            self._hang_up(handler, path, "down", length)
            return
        if faults.latency:
            self._closing.wait(faults.latency)
        if action == DROP:
            self._hang_up(handler, path, DROP, length)
            return
        if action == DROP_MID:
            handler.rfile.read(length // 2)
            self._hang_up(handler, path, DROP_MID, length)
            return
        wire = handler.rfile.read(length)
        if action == HANG:
            self._closing.wait(faults.hang_seconds)
            self._hang_up(handler, path, HANG, length)
            return
        if action not in (None, OK, LOST):
            self._answer_fault(handler, path, action, faults, wire)
            return
        try:
            raw, document, events = self._parse(handler, path, wire)
        except _Refused as refused:
            self._log(handler, path, f"{refused.status}: {refused}", refused.status, len(wire))
            _respond(handler, refused.status, refused.body)
            return
        wait = self._take_tokens(len(events))
        if wait is not None:
            self._log(handler, path, "429: over the rate limit", 429, len(wire))
            body = orjson.dumps({"code": "rate_limited", "message": "too many events"})
            _respond(handler, 429, body, {"Retry-After": str(max(1, math.ceil(wait)))})
            return
        self._accept(handler, path, events, document, len(wire), len(raw))
        if action == LOST:
            handler.close_connection = True
            return
        _respond(handler, 200, OK_BODY)

    def _take_tokens(self, events: int) -> float | None:
        """Spend `events` from the rate bucket: None when they fit, else seconds to wait."""
        if self.max_rate <= 0:
            return None
        with self._lock:
            now = time.monotonic()
            earned = (now - self._tokens_at) * self.max_rate
            self._tokens = min(self.max_rate, self._tokens + earned)
            self._tokens_at = now
            if self._tokens + RATE_SLACK_SECONDS * self.max_rate < events:
                self._rate_limited += 1
                return (events - self._tokens) / self.max_rate
            self._tokens -= events
            return None

    def _next_action(self, faults: Faults) -> Action | None:
        if self._script:
            return self._script.pop(0)
        draw = self._rng.random()
        for rate, action in (
            (faults.drop_rate, DROP),
            (faults.drop_mid_rate, DROP_MID),
            (faults.hang_rate, HANG),
            (faults.rate_limit_rate, 429),
            (faults.fail_rate, -1),
            (faults.lost_response_rate, LOST),
        ):
            if draw < rate:
                return self._rng.choice(faults.fail_statuses) if action == -1 else action
            draw -= rate
        return None

    def _answer_fault(
        self, handler: _Handler, path: str, action: Action, faults: Faults, wire: bytes
    ) -> None:
        if isinstance(action, Reply):
            reply = action
        else:
            assert isinstance(action, int)
            headers = {}
            if action == 429 and faults.retry_after is not None:
                headers["Retry-After"] = faults.retry_after
            reply = Reply(action, headers, orjson.dumps({"code": "fault", "message": "injected"}))
        record = self._request_record(handler, path, str(reply.status), reply.status, len(wire))
        record = replace(record, sent_at=_peek_sent_at(wire, handler.headers))
        with self._lock:
            self._requests.append(record)
        _respond(handler, reply.status, reply.body, reply.headers)

    def _parse(
        self, handler: _Handler, path: str, wire: bytes
    ) -> tuple[bytes, dict[str, Any], list[dict[str, Any]]]:
        if path not in ("/v1/batch", "/v1/track"):
            raise _Refused(404, "not_found", f"no route for {path}")
        header_auth = handler.headers.get("Authorization")
        if header_auth is not None and not self._authorized(header_auth):
            raise _Refused(401, "unauthorized", "invalid write key")
        raw = self._inflate(wire, handler.headers.get("Content-Encoding"))
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _Refused(400, "invalid_json", "the body is not valid JSON") from None
        if not isinstance(document, dict):
            raise _Refused(400, "invalid_json", "the body is not a JSON object")
        if header_auth is None and document.get("writeKey") != self.write_key:
            raise _Refused(401, "unauthorized", "missing or invalid write key")
        events = self._events_of(path, document)
        self._check_events(events, whole_size=len(raw))
        return raw, document, events

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Segment still accepts the key without the trailing colon.
        return decoded in (f"{self.write_key}:", self.write_key)

    def _inflate(self, wire: bytes, encoding: str | None) -> bytes:
        if encoding is None or encoding.lower() == "identity":
            raw = wire
        elif encoding.lower() == "gzip":
            raw = _gunzip(wire, self.max_request_bytes + 1)
        else:
            raise _Refused(400, "bad_encoding", f"unsupported Content-Encoding {encoding}")
        if len(raw) > self.max_request_bytes:
            raise _Refused(400, "too_large", f"request over {self.max_request_bytes} bytes")
        return raw

    def _events_of(self, path: str, document: dict[str, Any]) -> list[dict[str, Any]]:
        if path == "/v1/track":
            return [{"type": "track", **document}]
        batch = document.get("batch")
        if not isinstance(batch, list) or not batch:
            raise _Refused(400, "invalid_batch", "batch must be a non-empty array")
        if len(batch) > self.max_batch_events:
            raise _Refused(400, "too_many", f"more than {self.max_batch_events} events")
        return batch

    def _check_events(self, events: list[dict[str, Any]], whole_size: int) -> None:
        with self._lock:
            poison, reject_if = set(self._poison), self._reject_if
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                raise _Refused(400, "invalid_event", f"event {index} is not an object")
            message_id = event.get("messageId")
            if not isinstance(message_id, str) or not message_id:
                raise _Refused(400, "invalid_event", f"event {index} has no messageId")
            if event.get("type") not in EVENT_TYPES:
                raise _Refused(400, "invalid_event", f"event {message_id} has no valid type")
            if not (event.get("userId") or event.get("anonymousId")):
                raise _Refused(400, "invalid_event", f"event {message_id} has no identity")
            # An event can only be too big when the whole body is.
            if (
                whole_size > self.max_event_bytes
                and len(orjson.dumps(event)) > self.max_event_bytes
            ):
                raise _Refused(400, "too_large", f"event {message_id} is over 32 KB")
            if message_id in poison or (reject_if is not None and reject_if(event)):
                raise _Refused(400, "invalid_event", f"event {message_id} was refused")

    def _accept(
        self,
        handler: _Handler,
        path: str,
        events: list[dict[str, Any]],
        document: dict[str, Any],
        wire_bytes: int,
        body_bytes: int,
    ) -> None:
        ids = [event["messageId"] for event in events]
        record = self._request_record(handler, path, "accepted", 200, wire_bytes)
        record = replace(
            record, body_bytes=body_bytes, events=len(events), sent_at=document.get("sentAt")
        )
        with self._lock:
            if self._keep_ids:
                self._received.update(ids)
            if self._keep_events:
                self._events.extend(events)
            self._accepted_events += len(events)
            self._accepted_requests += 1
            self._requests.append(record)
            if self._record is not None:
                self._record.write("\n".join(ids) + "\n")
                self._record.flush()

    def _hang_up(self, handler: _Handler, path: str, result: str, wire_bytes: int) -> None:
        handler.close_connection = True
        self._log(handler, path, result, None, wire_bytes)

    def _log(
        self, handler: _Handler, path: str, result: str, status: int | None, wire_bytes: int
    ) -> None:
        record = self._request_record(handler, path, result, status, wire_bytes)
        with self._lock:
            self._requests.append(record)

    def _request_record(
        self, handler: _Handler, path: str, result: str, status: int | None, wire_bytes: int
    ) -> RequestRecord:
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "authorization"}
        return RequestRecord(path, result, status, wire_bytes, 0, 0, None, headers)

    def summary(self) -> str:
        with self._lock:
            requests = len(self._requests)
            return (
                f"accepted {self._accepted_events} events in {self._accepted_requests} "
                f"requests ({requests} requests seen, {self._rate_limited} over --max-rate)"
            )


def _peek_sent_at(wire: bytes, headers: Any) -> str | None:
    """sentAt of a request answered with a fault, so tests can see every attempt's."""
    try:
        gzipped = (headers.get("Content-Encoding") or "").lower() == "gzip"
        document = orjson.loads(_gunzip(wire, MAX_REQUEST_BYTES) if gzipped else wire)
    except (_Refused, orjson.JSONDecodeError):
        return None
    sent_at = document.get("sentAt") if isinstance(document, dict) else None
    return sent_at if isinstance(sent_at, str) else None


def _gunzip(wire: bytes, limit: int) -> bytes:
    """Inflate (possibly multi-member) gzip, stopping once past `limit` bytes."""
    out: list[bytes] = []
    size = 0
    data = wire
    try:
        while data and size < limit:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = inflater.decompress(data, limit - size)
            out.append(chunk)
            size += len(chunk)
            if not inflater.eof:
                break
            data = inflater.unused_data
    except zlib.error:
        raise _Refused(400, "bad_encoding", "the body is not valid gzip") from None
    return b"".join(out)


def _respond(
    handler: _Handler, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True  # the client gave up first


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256
    fake: FakeSegment


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    # Headers and body leave in one write, without Nagle: otherwise every response
    # waits out the client's delayed ACK (~40 ms).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server_version = "FakeSegment/1"
    sys_version = ""
    server: _Server

    def do_POST(self) -> None:
        try:
            self.server.fake.handle(self)
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # per-request lines would flood test output and slow benchmarks


# -- as a process --------------------------------------------------------------------------


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A local stand-in for Segment's Tracking API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--write-key", default="test-write-key")
    parser.add_argument("--record", help="append each accepted messageId to this file")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of 5xx answers")
    parser.add_argument("--rate-limit-rate", type=float, default=0.0, help="share of 429s")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of dropped requests")
    parser.add_argument("--retry-after", default="1", help="Retry-After sent with a 429")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--max-rate",
        type=float,
        default=0.0,
        help="events per second before answering 429 (0: no limit)",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    faults = Faults(
        drop_rate=args.drop_rate,
        rate_limit_rate=args.rate_limit_rate,
        fail_rate=args.fail_rate,
        latency=args.latency_ms / 1000,
        retry_after=args.retry_after,
    )
    # A benchmark pushes millions of events: keep nothing per event in memory.
    fake = FakeSegment(
        args.write_key,
        faults=faults,
        seed=args.seed,
        host=args.host,
        port=args.port,
        record_path=args.record,
        keep_events=False,
        keep_ids=False,
        max_rate=args.max_rate,
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    fake.start()
    print(f"listening on {fake.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        fake.stop()
        print(fake.summary(), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
