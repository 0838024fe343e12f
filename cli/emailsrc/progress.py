"""Progress reporting on stderr, behind a small interface so the pipeline knows no Rich."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Reporter(Protocol):
    def file_started(self, source: str, total_bytes: int | None) -> None: ...
    def file_progress(self, bytes_read: int) -> None: ...
    def events_done(self, sent: int, failed: int) -> None: ...
    def retried(self) -> None: ...
    def close(self) -> None: ...


class NullReporter:
    """--quiet."""

    def file_started(self, source: str, total_bytes: int | None) -> None:
        pass

    def file_progress(self, bytes_read: int) -> None:
        pass

    def events_done(self, sent: int, failed: int) -> None:
        pass

    def retried(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Counts:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.sent = 0
        self.failed = 0
        self.retries = 0

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0


class PlainReporter:
    """A line every few seconds, for logs and CI where stderr is not a terminal."""

    def __init__(self, stream: TextIO, interval: float = 5.0) -> None:
        self._stream = stream
        self._interval = interval
        self._counts = _Counts()
        self._source = ""
        self._total: int | None = None
        self._bytes = 0
        self._last = time.monotonic()

    def file_started(self, source: str, total_bytes: int | None) -> None:
        self._source, self._total, self._bytes = source, total_bytes, 0
        self._say(f"reading {source}")

    def file_progress(self, bytes_read: int) -> None:
        self._bytes = bytes_read
        self._tick()

    def events_done(self, sent: int, failed: int) -> None:
        self._counts.sent += sent
        self._counts.failed += failed
        self._tick()

    def retried(self) -> None:
        self._counts.retries += 1

    def close(self) -> None:
        if self._counts.sent or self._counts.failed:
            self._say(self._status())

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._say(self._status())

    def _status(self) -> str:
        read = f"{self._bytes / self._total:.0%} of {self._source}" if self._total else self._source
        counts = self._counts
        return (
            f"read {read}; sent {counts.sent:,} ({counts.rate():,.0f}/s), "
            f"retries {counts.retries:,}, failed {counts.failed:,}"
        )

    def _say(self, line: str) -> None:
        print(f"emailsrc: {line}", file=self._stream, flush=True)


class RichReporter:
    """Bars on a terminal: bytes read per file, events sent, rate, retries, failures."""

    def __init__(self, console: Console) -> None:
        self._counts = _Counts()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[amount]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._file_task: TaskID | None = None
        self._send_task = self._progress.add_task(
            "sent", total=None, detail="", amount="", visible=False
        )
        self._total_bytes: int | None = None
        self._progress.start()

    def file_started(self, source: str, total_bytes: int | None) -> None:
        self._total_bytes = total_bytes
        self._file_task = self._progress.add_task(
            f"read {source}", total=total_bytes, detail="", amount=""
        )

    def file_progress(self, bytes_read: int) -> None:
        if self._file_task is not None:
            total = f"/{decimal(self._total_bytes)}" if self._total_bytes else ""
            self._progress.update(
                self._file_task, completed=bytes_read, amount=f"{decimal(bytes_read)}{total}"
            )

    def events_done(self, sent: int, failed: int) -> None:
        counts = self._counts
        counts.sent += sent
        counts.failed += failed
        self._refresh_send()

    def retried(self) -> None:
        self._counts.retries += 1
        self._refresh_send()

    def close(self) -> None:
        self._progress.stop()

    def _refresh_send(self) -> None:
        counts = self._counts
        self._progress.update(
            self._send_task,
            visible=True,
            completed=counts.sent,
            description=f"sent {counts.sent:,}",
            detail=f"{counts.rate():,.0f}/s retries {counts.retries:,} failed {counts.failed:,}",
        )


def make_reporter(quiet: bool, stream: TextIO | None = None) -> Reporter:
    stream = stream or sys.stderr
    if quiet:
        return NullReporter()
    if stream.isatty():
        return RichReporter(Console(file=stream, stderr=True))
    return PlainReporter(stream)
