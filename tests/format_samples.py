"""Helpers the provider format tests share: converting one record, and whole sample exports.

Sample exports are read with the project's own reader (`emailsrc.readers.open_records`), so
the golden tests prove the path a real run takes: reader, then the format's explode and its
converter bound to the file. A record the reader cannot read counts as a reject under
``unreadable line: <the reader's category>``, e.g. ``unreadable line: malformed JSON``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emailsrc.events import EmailEvent, RecordRejected, Skip
from emailsrc.formats.base import Format
from emailsrc.readers import Record, open_records
from emailsrc.report import reason_category

SAMPLES = Path(__file__).resolve().parent.parent / "sample_exports"
UNREADABLE = "unreadable line"


# --- one record ----------------------------------------------------------------------------


def events_of(fmt: Format, data: Mapping[str, Any]) -> list[EmailEvent]:
    """The events `fmt` converts `data` to; fails the test on a skip."""
    result = fmt.convert(data)
    assert isinstance(result, list), result
    return result


def one_event(fmt: Format, data: Mapping[str, Any]) -> EmailEvent:
    """The one event `fmt` converts `data` to; fails the test on a skip or on several."""
    found = events_of(fmt, data)
    assert len(found) == 1, found
    return found[0]


def skip_reason(fmt: Format, data: Mapping[str, Any]) -> str:
    """Why `fmt` skips `data`; fails the test when it yields events."""
    result = fmt.convert(data)
    assert isinstance(result, Skip), result
    return result.reason


# --- whole sample exports ------------------------------------------------------------------


def read_records(path: Path) -> tuple[list[Record], list[str] | None]:
    """Every record the reader yields for `path` (unreadable ones too), and the CSV header
    (None for JSON)."""
    with open_records(str(path)) as reader:
        return list(reader), reader.columns


def first_data(records: list[Record]) -> Mapping[str, Any]:
    """The first readable record: what format detection and binding look at."""
    return next(record.data for record in records if record.data is not None)


@dataclass
class SampleRun:
    """What converting one sample export gave; skips and rejects count full reasons."""

    read: int = 0  # records the reader could read (a batch array gives one per item)
    items: int = 0  # records handed to the converter, after explode
    events: list[EmailEvent] = field(default_factory=list)
    skips: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)

    @property
    def unreadable(self) -> int:
        rejects = self.rejects.items()
        return sum(n for reason, n in rejects if reason_category(reason) == UNREADABLE)


def convert_file(fmt: Format, path: Path) -> SampleRun:
    """Read `path` with the project's reader and convert every record with `fmt`."""
    records, columns = read_records(path)
    run = SampleRun()
    convert = fmt.bind(first_data(records), columns)
    for record in records:
        if record.data is None:
            run.rejects[f"{UNREADABLE}: {reason_category(record.error or '')}"] += 1
            continue
        run.read += 1
        try:
            items = list(fmt.explode(record.data))
        except RecordRejected as error:
            run.rejects[error.reason] += 1
            continue
        for item in items:
            run.items += 1
            try:
                result = convert(item)
            except RecordRejected as error:
                run.rejects[error.reason] += 1
                continue
            if isinstance(result, Skip):
                run.skips[result.reason] += 1
            else:
                run.events.extend(result)
    return run


def categories(reasons: Counter[str]) -> dict[str, int]:
    """Reason counts grouped by category, as run summaries show them."""
    grouped: Counter[str] = Counter()
    for reason, count in reasons.items():
        grouped[reason_category(reason)] += count
    return dict(grouped)
