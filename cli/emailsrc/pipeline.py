"""backfill / validate / replay / status: compose the stages and return a RunReport."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import orjson

from .batching import batch_body, batch_events, batches
from .exitcodes import ExitCode
from .files import OutputError, open_private
from .ledger import Destination, Ledger, LedgerBusy, LedgerError, StoredEvent, lock_path
from .normalize import InputStop, Normalized, Normalizer
from .progress import Reporter
from .readers import RecordReader
from .rejects import RejectsWriter
from .report import FileReport, RunReport, reason_category
from .scratch import ScratchStore
from .segment import (
    DRY_RUN_NAMESPACE_LABEL,
    build_integrations,
    finish_body,
    message_id,
    message_namespace,
)
from .settings import RunSettings
from .transport import (
    BatchOutcome,
    EndpointError,
    HttpTransport,
    OutgoingEvent,
    RateLimiter,
    RetryPolicy,
    Sender,
    WriteKeyRejected,
    normalize_endpoint,
)

CHUNK = 2000
T = TypeVar("T")


class Stop(Exception):
    """Ends a command before or during a run with one line and an exit code."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def default_rejects_path(settings: RunSettings) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"{settings.command}-{stamp}-{os.getpid()}.jsonl"
    return settings.state_path.parent / "rejects" / name


class Interrupts:
    """What Ctrl-C and SIGTERM do during a run.

    While batches are being sent, the first one only asks the sender to stop: no new batch
    is taken, the batches in flight finish and are recorded, then the run raises
    KeyboardInterrupt itself (`check`) at a safe point. An exception thrown into the main
    thread at a random point could land after a batch's 2xx and before it is recorded, and
    the next run would send that batch again. The planning loops call `check` too, so a
    re-run that has nothing left to send still stops promptly.

    Otherwise (before sending, or a second signal: abandon the batches in flight) the
    signal raises KeyboardInterrupt at once, except inside `shield()`, which holds it until
    the ledger write in progress has committed.
    """

    def __init__(self) -> None:
        self.requested = False
        self._stop: Callable[[], None] | None = None
        self._shielded = 0
        self._pending = False

    def handle(self, signum: int, frame: object) -> None:
        if self._stop is not None and not self.requested:
            self.requested = True
            self._stop()
            return
        self.requested = True
        if self._shielded:
            self._pending = True
            return
        raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt here if a stop was asked for."""
        if self.requested:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def stopping(self, stop: Callable[[], None]) -> Iterator[None]:
        """While sending: the first signal calls ``stop`` instead of raising."""
        self._stop = stop
        try:
            yield
        finally:
            self._stop = None

    @contextlib.contextmanager
    def shield(self, *, hold: bool = False) -> Iterator[None]:
        """Defer interrupts; raise a deferred one at the end unless ``hold``."""
        self._shielded += 1
        try:
            yield
        finally:
            self._shielded -= 1
        if self._pending and not self._shielded and not hold:
            self._pending = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_handled(interrupts: Interrupts) -> Iterator[None]:
    """SIGINT and SIGTERM go through `interrupts` while a run lasts: in-flight batches
    are settled and recorded, then the run ends with exit 130."""
    previous: dict[int, Any] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            # An ignored signal stays ignored (a job started with nohup or in the background).
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, interrupts.handle)
    except ValueError:  # not the main thread (tests drive the pipeline from threads)
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class Run:
    """One command's run: owns the ledger, scratch store, rejects and output files."""

    def __init__(self, settings: RunSettings, reporter: Reporter, *, debug: bool = False) -> None:
        self.settings = settings
        self.reporter = reporter
        self.debug = debug
        self.report = RunReport(command=settings.command, dry_run=settings.dry_run)
        self.rejects = RejectsWriter(settings.rejects or default_rejects_path(settings))
        self.scratch = ScratchStore()
        self.ledger: Ledger | None = None
        self.run_id: int | None = None
        self.destination_id: int | None = None
        self.output: BinaryIO | None = None
        self.in_flight: dict[bytes, tuple[str | None, int | None]] = {}
        self.interrupts = Interrupts()
        send = settings.send
        self.namespace = message_namespace(send.write_key, send.id_namespace)
        self.integrations = build_integrations(
            list(send.only_destinations),
            list(send.exclude_destinations),
            send.integrations,
            send.keep_customerio,
        )
        self.integrations_json = orjson.dumps(self.integrations)
        self.report.integrations = self.integrations
        self._started = time.monotonic()

    # -- lifecycle -----------------------------------------------------------------------

    def execute(self, body: Callable[[], None]) -> RunReport:
        report = self.report
        with interrupts_handled(self.interrupts):
            try:
                body()
            except Stop as stop:
                report.error, report.exit_code = str(stop), stop.code
            except InputStop as stop:
                report.error, report.exit_code = str(stop), ExitCode.INPUT
            except WriteKeyRejected as rejected:
                report.error, report.exit_code = str(rejected), ExitCode.AUTH
            except LedgerBusy as busy:
                report.error, report.exit_code = str(busy), ExitCode.LEDGER
            except LedgerError as broken:
                report.error, report.exit_code = str(broken), ExitCode.LEDGER
            except OutputError as unwritable:  # --output or the rejects file
                report.error, report.exit_code = str(unwritable), ExitCode.USAGE
            except KeyboardInterrupt:
                report.interrupted, report.exit_code = True, ExitCode.INTERRUPTED
                if not report.dry_run:
                    report.notes.append(self._interrupted_note())
            finally:
                # A second Ctrl-C must not cut short the run's record in the ledger.
                with self.interrupts.shield(hold=True):
                    self._close()
        return report

    def _interrupted_note(self) -> str:
        report = self.report
        done = f"interrupted after {report.sent:,} events were acknowledged and recorded"
        if report.unsent:
            done += f" ({report.unsent:,} planned but not acknowledged)"
        if self.settings.command == "replay":
            # A replay sends its whole window again; what Segment already has carries the
            # same messageIds, so Segment and warehouses keep one copy.
            return f"{done}; run the same command again to replay the window"
        return f"{done}; run the same command again to send the rest"

    def _close(self) -> None:
        report = self.report
        report.distinct_user_ids, report.distinct_anonymous_ids = self.scratch.distinct_identities()
        report.elapsed_seconds = time.monotonic() - self._started
        self.rejects.close()
        if self.rejects.count:
            report.rejects_path = str(self.rejects.path)
        if self.output is not None:
            self.output.close()
        if report.exit_code == ExitCode.OK and report.failed_total:
            report.exit_code = ExitCode.FAILED
        if self.ledger is not None:
            if self.run_id is not None:
                with contextlib.suppress(LedgerError):
                    self.ledger.finish_run(self.run_id, self._run_status(), report.to_dict())
            self.ledger.close()
        self.scratch.close()

    def _run_status(self) -> str:
        report = self.report
        if report.interrupted:
            return "interrupted"
        if report.error:
            return "failed"
        return "completed_with_failures" if report.failed_total else "completed"

    # -- pieces shared by the commands ---------------------------------------------------

    def open_ledger(self, *, readonly: bool) -> Ledger:
        self.ledger = Ledger.open(self.settings.state_path, readonly=readonly)
        return self.ledger

    def start_destination(self) -> None:
        """Register the run and its destination in a writable ledger."""
        send = self.settings.send
        assert self.ledger is not None and send.write_key is not None
        self.run_id = self.ledger.start_run(self.settings.command, self.settings.public_options())
        self.report.run_id = self.run_id
        self.destination_id = self.ledger.destination_id(self.destination())

    def destination(self) -> Destination:
        send = self.settings.send
        assert send.write_key is not None
        return Destination(send.endpoint, send.write_key.fingerprint, str(self.namespace))

    def look_up_destination(self) -> None:
        """A dry run with a write key: find the destination in the ledger without writing
        to it or taking its lock, so the plan can leave out what it already has."""
        if self.settings.send.write_key is None or not self.settings.state_path.exists():
            return
        ledger = self.ledger or self.open_ledger(readonly=True)
        self.destination_id = ledger.find_destination(self.destination())

    def describe_destination(self) -> None:
        send = self.settings.send
        if send.write_key:
            self.report.destination = f"{send.endpoint} (write key {send.write_key.masked})"
        elif send.id_namespace:
            self.report.destination = f"none (messageIds in namespace {send.id_namespace!r})"
        else:
            self.report.destination = f"none ({DRY_RUN_NAMESPACE_LABEL})"
        excluded = [name for name, on in self.integrations.items() if on is False]
        if excluded and not send.keep_customerio:
            self.report.notes.append(
                "Customer.io destinations are excluded (integrations) so backfilled email "
                "events can't trigger campaigns; --keep-customerio turns this off"
            )

    def outgoing(self, key_hash_value: bytes, key: str, payload: bytes) -> OutgoingEvent:
        mid = message_id(self.namespace, key)
        return OutgoingEvent(key_hash_value, mid, finish_body(payload, mid, self.integrations_json))

    def write_output(self, stream: Iterable[list[OutgoingEvent]]) -> Iterator[list[OutgoingEvent]]:
        """Count batches and, with --output, write each exactly as it is (or would be) posted."""
        path = self.settings.output
        if path is not None:
            self.output = open_private(path)
            self.report.output_path = str(path)
        for batch in stream:
            self.report.batches += 1
            if self.output is not None:
                self.output.write(batch_body(batch) + b"\n")
            yield batch

    def send(self, stream: Iterable[list[OutgoingEvent]]) -> None:
        settings = self.settings
        send = settings.send
        assert send.write_key is not None
        limiter = RateLimiter(send.rate)
        policy = RetryPolicy(
            max_attempts=send.max_attempts,
            backoff_base=send.backoff_base,
            backoff_max=send.backoff_max,
        )
        transport: Any
        if send.transport == "sdk":
            from .transport import SdkTransport

            transport = SdkTransport(send.endpoint, send.write_key.reveal())
        else:
            transport = HttpTransport(
                send.endpoint,
                send.write_key.reveal(),
                policy=policy,
                limiter=limiter,
                timeout=send.timeout,
                on_retry=lambda status, reason: self.reporter.retried(),
            )
        sender = Sender(transport, concurrency=send.concurrency)
        try:
            with self.interrupts.stopping(sender.stop):
                sender.run(stream, self.on_outcome)
        finally:
            transport.close()
        self.interrupts.check()  # stopped by a signal: everything in flight is recorded

    def on_outcome(self, batch: Sequence[OutgoingEvent], outcome: BatchOutcome) -> None:
        with self.interrupts.shield():
            self._record_outcome(batch, outcome)

    def _record_outcome(self, batch: Sequence[OutgoingEvent], outcome: BatchOutcome) -> None:
        report = self.report
        assert self.ledger is not None and self.run_id is not None
        assert self.destination_id is not None
        if outcome.sent:
            sent = [e.key_hash for e in outcome.sent]
            self.ledger.mark_sent(self.run_id, self.destination_id, sent)
        if outcome.failed:
            self.ledger.mark_failed(
                self.run_id, self.destination_id, [(e.key_hash, why) for e, why in outcome.failed]
            )
        for event, why in outcome.failed:
            source, line = self.in_flight.get(event.key_hash, (None, None))
            report.failed[reason_category(why)] += 1
            report.note_problem(f"{source}:{line}" if source else event.message_id, why)
            self.rejects.write(why, file=source, line=line, event=event.body)
        for event in batch:
            self.in_flight.pop(event.key_hash, None)
        report.sent += len(outcome.sent)
        report.retries += outcome.retries
        self.reporter.events_done(len(outcome.sent), len(outcome.failed))

    def count_identities(self, payloads: Iterable[dict[str, Any]]) -> None:
        users: list[str] = []
        anonymous: list[str] = []
        for payload in payloads:
            if "userId" in payload:
                users.append(payload["userId"])
            elif payload.get("anonymousId"):
                anonymous.append(payload["anonymousId"])
        self.scratch.add_identities(users, anonymous)

    def estimate(self) -> None:
        rate = self.settings.send.rate
        if rate > 0:
            self.report.estimated_seconds = round(self.report.to_send / rate, 1)


# -- backfill and validate ----------------------------------------------------------------


def _check_inputs(files: Sequence[str]) -> None:
    """Stop before anything is sent when an input can't be read at all."""
    if not files:
        raise Stop(
            "no input files: give one or more exports, or - for standard input", ExitCode.USAGE
        )
    for source in files:
        if source == "-":
            continue
        path = Path(source)
        if not path.exists():
            raise Stop(f"{source}: no such file", ExitCode.INPUT)
        if path.is_dir():
            raise Stop(f"{source}: is a directory, not an export file", ExitCode.INPUT)
        if not os.access(path, os.R_OK):
            raise Stop(f"{source}: permission denied", ExitCode.INPUT)


def backfill(settings: RunSettings, reporter: Reporter, *, debug: bool = False) -> RunReport:
    run = Run(settings, reporter, debug=debug)
    return run.execute(lambda: _backfill(run))


def validate(settings: RunSettings, reporter: Reporter, *, debug: bool = False) -> RunReport:
    run = Run(settings, reporter, debug=debug)
    report = run.execute(lambda: _backfill(run))
    if report.exit_code == ExitCode.OK and report.rejected_total > settings.max_rejects:
        report.exit_code = ExitCode.FAILED
    return report


def _backfill(run: Run) -> None:
    settings = run.settings
    real = not settings.dry_run and settings.command == "backfill"
    _check_inputs(settings.inputs.files)
    if real:
        if settings.send.write_key is None:
            raise Stop(
                "no write key: set SEGMENT_WRITE_KEY or pass --write-key (or use --dry-run)",
                ExitCode.USAGE,
            )
        _check_endpoint(settings)
        run.open_ledger(readonly=False)
        run.start_destination()
    elif settings.command == "backfill":
        run.look_up_destination()
    run.describe_destination()
    on_file_done = _file_recorder(run) if real else None
    normalizer = Normalizer(
        settings.inputs,
        run.report,
        run.rejects,
        run.reporter,
        on_file_done=on_file_done,
        debug=run.debug,
    )
    planned = _plan(run, normalizer.events(), real=real)
    stream = run.write_output(batches(planned, max_events=batch_events(settings.send.rate)))
    if real:
        run.send(stream)
    else:
        for _ in stream:
            pass
        run.estimate()
    if run.report.to_send == 0 and run.report.already_sent:
        run.report.notes.append(
            f"all {run.report.already_sent:,} events already sent to this destination"
        )


def _check_endpoint(settings: RunSettings) -> None:
    try:
        normalize_endpoint(settings.send.endpoint)
    except EndpointError as error:
        raise Stop(str(error), ExitCode.USAGE) from None


def _file_recorder(run: Run) -> Callable[[RecordReader, FileReport], None]:
    def record(reader: RecordReader, file_report: FileReport) -> None:
        assert run.ledger is not None and run.run_id is not None
        if reader.stream_error is not None:  # cut short: not read to the end
            return
        path = Path(reader.source)
        stat = path.stat() if reader.source != "-" and path.exists() else None
        run.ledger.mark_file(
            run.run_id,
            reader.source,
            stat.st_size if stat else None,
            stat.st_mtime if stat else None,
            file_report.records,
        )

    return record


def _plan(run: Run, events: Iterator[Normalized], *, real: bool) -> Iterator[OutgoingEvent]:
    """Dedupe within the run and against the ledger; yield what must be sent."""
    report = run.report
    for chunk in chunked(events, CHUNK):
        run.interrupts.check()
        if real:
            assert run.ledger is not None and run.run_id is not None
            assert run.destination_id is not None
            states = run.ledger.store_events(
                run.run_id,
                [
                    StoredEvent(
                        n.key_hash, n.key, n.event.name.value, n.event.timestamp_ms(), n.payload
                    )
                    for n in chunk
                ],
            )
            fresh = [n for n, state in zip(chunk, states, strict=True) if state != "duplicate"]
            plans = run.ledger.plan_deliveries(
                run.run_id, run.destination_id, [n.key_hash for n in fresh]
            )
            due = [n for n, plan in zip(fresh, plans, strict=True) if plan == "send"]
        else:
            firsts = run.scratch.first_seen([n.key_hash for n in chunk])
            fresh = [n for n, first in zip(chunk, firsts, strict=True) if first]
            due = fresh
            if run.destination_id is not None:  # a dry run for a destination the ledger knows
                assert run.ledger is not None
                sent = run.ledger.sent_among(run.destination_id, [n.key_hash for n in fresh])
                due = [n for n in fresh if n.key_hash not in sent]
        report.duplicates += len(chunk) - len(fresh)
        report.already_sent += len(fresh) - len(due)
        report.to_send += len(due)
        run.scratch.add_identities(
            [n.event.user_id for n in due if n.event.user_id],
            [n.event.recipient for n in due if not n.event.user_id and n.event.recipient],
        )
        for n in due:
            if real:
                run.in_flight[n.key_hash] = (n.source, n.line)
            yield run.outgoing(n.key_hash, n.key, n.payload)


# -- replay -------------------------------------------------------------------------------


def replay(settings: RunSettings, reporter: Reporter, *, debug: bool = False) -> RunReport:
    run = Run(settings, reporter, debug=debug)
    return run.execute(lambda: _replay(run))


def _replay(run: Run) -> None:
    settings = run.settings
    real = not settings.dry_run
    if real:
        if settings.send.write_key is None:
            raise Stop(
                "no write key: set SEGMENT_WRITE_KEY or pass --write-key (or use --dry-run)",
                ExitCode.USAGE,
            )
        _check_endpoint(settings)
    if not settings.state_path.exists():
        raise Stop(
            f"no ledger at {settings.state_path}: run a backfill first, or point --state at one",
            ExitCode.LEDGER,
        )
    ledger = run.open_ledger(readonly=not real)
    if real:
        run.start_destination()
    else:
        run.look_up_destination()  # read-only: only for the 24-hour warning
    run.describe_destination()
    inputs = settings.inputs
    since_ms = _to_ms(inputs.since)
    until_ms = _to_ms(inputs.until)
    names = [name.value for name in settings.events] or None
    selected = ledger.select_events(since_ms, until_ms, names)
    planned = _replay_plan(run, selected, real=real)
    stream = run.write_output(batches(planned, max_events=batch_events(settings.send.rate)))
    if real:
        run.send(stream)
    else:
        for _ in stream:
            pass
        run.estimate()
    if run.report.recently_sent:
        run.report.notes.append(
            f"{run.report.recently_sent:,} of these events were sent to this destination less "
            "than 24 hours ago: Segment will drop them as duplicates (it drops a messageId it "
            "has seen within about 24 hours)"
        )
    if not run.report.events_total:
        run.report.notes.append("the ledger holds no events in this window")


def _replay_plan(
    run: Run, selected: Iterator[StoredEvent], *, real: bool
) -> Iterator[OutgoingEvent]:
    report = run.report
    for chunk in chunked(selected, CHUNK):
        run.interrupts.check()
        hashes = [stored.key_hash for stored in chunk]
        for stored in chunk:
            report.events[stored.name] += 1
        if run.destination_id is not None:  # a real replay, or a dry run to a known one
            assert run.ledger is not None
            report.recently_sent += run.ledger.recently_sent(run.destination_id, hashes)
        if real:
            assert run.ledger is not None and run.run_id is not None
            assert run.destination_id is not None
            run.ledger.plan_deliveries(run.run_id, run.destination_id, hashes)
        report.to_send += len(chunk)
        run.count_identities(orjson.loads(stored.payload) for stored in chunk)
        for stored in chunk:
            yield run.outgoing(stored.key_hash, stored.key, stored.payload)


def _to_ms(moment: datetime | None) -> int | None:
    """A window bound in whole ms, rounded up: events are stored in ms, so "at or after
    since" and "before until" keep their meaning for a bound with microseconds (a span
    such as 90m has them). Integer arithmetic: float seconds * 1000 can land 1 ms off."""
    if moment is None:
        return None
    return -((datetime(1970, 1, 1, tzinfo=UTC) - moment) // timedelta(milliseconds=1))


# -- status -------------------------------------------------------------------------------


def status(settings: RunSettings) -> dict[str, Any]:
    try:
        with Ledger.open(settings.state_path, readonly=True) as ledger:
            data = ledger.status()
    except LedgerError as error:
        raise Stop(str(error), ExitCode.LEDGER) from None
    if not _run_in_progress(settings.state_path):
        # Only a writable open marks the runs a killed process left "running"; status
        # reads without writing, so it says how they ended here.
        for run in data.get("runs") or []:
            if run.get("status") == "running":
                run["status"] = "crashed"
    return data


def _run_in_progress(path: Path) -> bool:
    """Whether the process whose pid is in the run lock file is alive. A writer writes
    its pid there when it takes the lock; probing the lock itself could make a run that
    starts at that instant fail as busy."""
    try:
        text = lock_path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    if not text.isdigit():
        return False
    try:
        os.kill(int(text), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's live process, or a pid we can't check: assume alive
    return True
