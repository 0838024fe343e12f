"""Files -> records -> formats -> normalized events, with every record accounted for."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .events import EmailEvent, RecordRejected, Skip
from .formats import Converter, Format, FormatError, detect_format, get_format
from .formats.mapped_csv import MappedCsvFormat
from .ledger import key_hash
from .progress import Reporter
from .readers import InputError, Record, RecordReader, open_records
from .rejects import RejectsWriter
from .report import FileReport, RunReport, reason_category
from .segment import MAX_EVENT_BYTES, encode_payload, track_payload
from .settings import InputSettings

# A record that yields an event later than this is rejected: providers' clocks and ours
# disagree by seconds, never by this much.
FUTURE_TOLERANCE = timedelta(minutes=5)
# Room for what each destination adds to a stored payload (messageId, integrations).
DESTINATION_OVERHEAD_BYTES = 1024
# How far to look for a first readable record before giving up on a file.
DETECTION_WINDOW = 1000
PROGRESS_EVERY = 2048


class InputStop(Exception):
    """A whole input can't be used: one line for the user."""


@dataclass(slots=True)
class Normalized:
    event: EmailEvent
    key: str
    key_hash: bytes
    payload: bytes  # the Track call without messageId and integrations
    source: str
    line: int


def forced_format(inputs: InputSettings) -> Format | None:
    if inputs.field_map or inputs.mapping_file:
        return MappedCsvFormat.from_options(inputs.field_map, inputs.event_map, inputs.mapping_file)
    if inputs.format_name:
        return get_format(inputs.format_name)
    return None


def _head(reader: RecordReader) -> list[Record]:
    """The records up to the first readable one (at most DETECTION_WINDOW): only that one
    is needed to detect the format, and a wide row can take a lot of memory, so no more
    good records are held than one."""
    head: list[Record] = []
    for record in reader:
        head.append(record)
        if record.data is not None or len(head) >= DETECTION_WINDOW:
            break
    return head


class Normalizer:
    """Reads the inputs and yields normalized events; counts into the report as it goes."""

    def __init__(
        self,
        inputs: InputSettings,
        report: RunReport,
        rejects: RejectsWriter,
        progress: Reporter,
        *,
        on_file_done: Callable[[RecordReader, FileReport], None] | None = None,
        debug: bool = False,
        now: datetime | None = None,
    ) -> None:
        self._inputs = inputs
        self._report = report
        self._rejects = rejects
        self._progress = progress
        self._on_file_done = on_file_done
        self._debug = debug
        self._latest = (now or datetime.now(UTC)) + FUTURE_TOLERANCE
        try:
            self._forced = forced_format(inputs)
        except (FormatError, ValueError, OSError) as error:
            raise InputStop(str(error)) from None

    def events(self) -> Iterator[Normalized]:
        for source in self._inputs.files:
            yield from self._read_file(source)

    def _read_file(self, source: str) -> Iterator[Normalized]:
        try:
            reader = open_records(source)
        except InputError as error:
            raise InputStop(str(error)) from None
        with reader:
            head = _head(reader)
            sample = head[-1] if head and head[-1].data is not None else None
            file_report = FileReport(source=source, format="?", bytes=reader.total_bytes)
            if sample is None and not head:
                file_report.format = "empty"
            else:
                fmt, converter = self._choose_format(source, reader, sample, head)
                file_report.format = fmt.name
                self._progress.file_started(source, reader.total_bytes)
                for count, record in enumerate(itertools.chain(head, reader), 1):
                    if count % PROGRESS_EVERY == 0:
                        self._progress.file_progress(reader.bytes_read)
                    # Lists, not a generator per record: making and draining one cost
                    # more than converting a record that yields no event.
                    normalized = self._record(fmt, converter, record, file_report)
                    if normalized:
                        yield from normalized
                self._progress.file_progress(reader.bytes_read)
            self._report.files.append(file_report)
            if self._on_file_done is not None:
                self._on_file_done(reader, file_report)

    def _choose_format(
        self, source: str, reader: RecordReader, sample: Record | None, head: list[Record]
    ) -> tuple[Format, Converter]:
        if sample is None or sample.data is None:
            first = head[0]
            raise InputStop(
                f"{source}: no readable record in the first {len(head)} "
                f"(line {first.line}: {first.error})"
            )
        fmt = self._forced or detect_format(sample.data, reader.columns)
        if fmt is None:
            seen = reader.columns or sorted(sample.data)[:12]
            raise InputStop(
                f"{source}: not a format emailsrc knows (found {', '.join(map(str, seen))}); "
                "see `emailsrc formats`, force one with --format, or map columns with --map"
            )
        try:
            return fmt, fmt.bind(sample.data, reader.columns)
        except FormatError as error:
            raise InputStop(f"{source}: {error}") from None

    def _record(
        self, fmt: Format, converter: Converter, record: Record, file_report: FileReport
    ) -> list[Normalized]:
        if record.data is None:
            self._count_record(file_report)
            self._reject(record, record.error or "unreadable record")
            return []
        try:
            items = list(fmt.explode(record.data))
        except RecordRejected as error:
            self._count_record(file_report)
            self._reject(record, error.reason)
            return []
        except Exception as error:  # hostile input must never end the run
            if self._debug:
                raise
            self._count_record(file_report)
            self._reject(record, f"unreadable record: {type(error).__name__}")
            return []
        if len(items) == 1:  # nearly every record
            self._count_record(file_report)
            return self._convert(converter, record, items[0], False)
        if not items:
            self._count_record(file_report)
            self._report.skipped["container with no items"] += 1
            return []
        normalized: list[Normalized] = []
        for item in items:
            self._count_record(file_report)
            normalized += self._convert(converter, record, item, True)
        return normalized

    def _convert(
        self, converter: Converter, record: Record, item: Mapping[str, Any], exploded: bool
    ) -> list[Normalized]:
        shown = item if exploded else None
        try:
            result = converter(item)
            if isinstance(result, Skip):
                self._report.skipped[reason_category(result.reason)] += 1
                return []
            if not result:
                self._report.skipped["record yields no event"] += 1
                return []
            normalized = [self._normalize(event, record) for event in result]
        except RecordRejected as error:
            self._reject(record, error.reason, shown)
            return []
        except Exception as error:  # a format bug or hostile value: reject, keep going
            if self._debug:
                raise
            self._reject(record, f"could not convert record: {type(error).__name__}", shown)
            return []
        report = self._report
        report.records_with_events += 1
        kept: list[Normalized] = []
        for item_event in normalized:
            event = item_event.event
            report.events[event.name.value] += 1
            excluded = self._exclusion(event)
            if excluded:
                report.excluded[excluded] += 1
            else:
                kept.append(item_event)
        return kept

    def _normalize(self, event: EmailEvent, record: Record) -> Normalized:
        if event.timestamp > self._latest:
            raise RecordRejected(f"timestamp in the future: {event.timestamp.isoformat()}")
        payload = encode_payload(track_payload(event))
        if len(payload) + DESTINATION_OVERHEAD_BYTES > MAX_EVENT_BYTES:
            raise RecordRejected(
                f"event over 32 KB: {len(payload):,} bytes (Segment drops such events)"
            )
        key = event.key()
        return Normalized(event, key, key_hash(key), payload, record.source, record.line)

    def _exclusion(self, event: EmailEvent) -> str | None:
        inputs = self._inputs
        if inputs.exclude_machine_opens and event.machine_open:
            return "machine open (--exclude-machine-opens)"
        if inputs.since and event.timestamp < inputs.since:
            return "before --since"
        if inputs.until and event.timestamp >= inputs.until:
            return "at or after --until"
        return None

    def _count_record(self, file_report: FileReport) -> None:
        self._report.records_read += 1
        file_report.records += 1

    def _reject(self, record: Record, reason: str, item: Mapping[str, Any] | None = None) -> None:
        self._report.rejected[reason_category(reason)] += 1
        self._report.note_problem(f"{record.source}:{record.line}", reason)
        if item is not None:
            # raw too: the rejects file falls back to it for an item it can't write as JSON.
            self._rejects.write(
                reason, file=record.source, line=record.line, record=item, raw=record.raw
            )
        else:
            self._rejects.write(reason, file=record.source, line=record.line, raw=record.raw)
