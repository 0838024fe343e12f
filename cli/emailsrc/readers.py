"""Stream records out of CSV and JSON-lines exports, with bounded memory.

`open_records` opens one input (a path, or '-' for standard input), checks eagerly that it
can be read at all (raising `InputError` with a one-line message when it can't), and returns
a `RecordReader` that yields one `Record` per CSV row or JSON object. A record the reader
cannot read still comes out, with `data=None` and `error` saying why, so that every input
record ends up in the run summary.

Inputs:

- gzip is recognised from its magic bytes, not from the name, so standard input can be
  gzipped too. Positions (`offset`) are byte offsets in the decompressed stream.
- CSV: a header row is required. UTF-8 with or without a BOM, LF or CRLF, quoted fields
  holding delimiters and newlines. The delimiter is a comma unless the header line holds
  more semicolons or tabs than commas (Excel in many locales saves "CSV" with semicolons).
  Header names are trimmed; an empty name becomes ``column_<position>`` (1-based) and a
  repeated name gets a suffix (``id``, ``id_2``, ``id_3``), so every column stays
  addressable and the first occurrence keeps the plain name that formats look up.
- JSON lines: one JSON value per line. An object is a record; an array of objects (a batch
  of webhook bodies) gives one record per object, all with the line's position; an empty
  array gives none. Anything else is an error record.
- A pretty-printed JSON document (an array or an object spread over many lines, or several
  such documents one after another as `jq` prints them) is read whole, up to
  `MAX_DOCUMENT_BYTES`, when the input is a ``.json`` file whose first line does not parse
  on its own, or when the first line is a lone ``[`` or ``{`` (which no JSON-lines file can
  start with). Each top-level item carries the line where it starts.

Memory stays bounded: lines are read one at a time, and no record (a line, or a CSV row
spanning lines) may exceed `MAX_RECORD_BYTES`; a bigger one becomes an error record and
reading goes on after it.

Error reasons read ``<stable category>[: <detail>]``, the category free of per-record
values so that summaries can count by it: ``invalid UTF-8``, ``malformed CSV: ...``,
``malformed JSON: ...``, ``not a JSON object: ...``, ``wrong number of fields: ...``,
``record too large: ...``. When the stream itself fails part-way, iteration yields one last
record with ``file truncated: ...`` (the compressed stream ends early), ``file corrupt: ...``
(bad compressed data) or ``read error: ...``, and stops; `RecordReader.stream_error` then
holds that reason, so a caller can tell a file read to its end from one cut short.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import stat
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO, Final, Protocol

import orjson

__all__ = [
    "CSV_FIELD_LIMIT",
    "MAX_DOCUMENT_BYTES",
    "MAX_RECORD_BYTES",
    "RAW_CAP",
    "InputError",
    "Record",
    "RecordReader",
    "open_records",
]

RAW_CAP: Final = 65_536
# A record is held in memory whole; 64 MiB leaves room for exports that carry an HTML
# body per row while stopping a file with no newlines from being slurped.
MAX_RECORD_BYTES = 64 * 1024 * 1024
# csv's default (128 KiB) rejects rows carrying a rendered email body. Nothing over 32 KB
# can reach Segment anyway, but such a column is usually one the format ignores, so the
# row must still parse. 16 Mi characters bounds the memory one field can take.
CSV_FIELD_LIMIT: Final = 16 * 1024 * 1024
# A pretty-printed JSON document is parsed whole; past this, convert it to JSON lines.
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024

_BUFFER_BYTES: Final = 1024 * 1024
_CHUNK_BYTES: Final = 64 * 1024
_SNIFF_BYTES: Final = 4096
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_GZIP_MAGIC: Final = b"\x1f\x8b"
_STDIN_NAME: Final = "standard input"
# What a failing stream raises: EOFError for a gzip that ends early, BadGzipFile (an
# OSError) or zlib.error for bad compressed data, OSError for the disk or the pipe.
_READ_ERRORS: Final = (EOFError, OSError, zlib.error)

# Files people pass by mistake, recognised by their first bytes (after gzip).
_FOREIGN_MAGIC: Final = (
    (b"PK\x03\x04", "a ZIP archive (or an Excel .xlsx workbook); unzip it or export as CSV"),
    (b"\xd0\xcf\x11\xe0", "an Excel .xls workbook; export the sheet as CSV UTF-8"),
    (b"BZh", "a bzip2 file; decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "an xz file; decompress it first (unxz)"),
    (b"\x28\xb5\x2f\xfd", "a zstd file; decompress it first (unzstd)"),
    (b"\xff\xfe", "UTF-16 text; save it as UTF-8 (in Excel: CSV UTF-8)"),
    (b"\xfe\xff", "UTF-16 text; save it as UTF-8 (in Excel: CSV UTF-8)"),
)

_JSON_EXTENSIONS: Final = (".jsonl", ".ndjson", ".json")
_WHITESPACE = re.compile(r"[ \t\n\r]*")


@dataclass(slots=True)
class Record:
    """One record as read, with where it starts; `data` is None when it can't be read."""

    source: str  # the file name as the user gave it ('-' for standard input)
    line: int  # 1-based physical line number where the record starts
    offset: int  # byte offset of the record's start in the decompressed stream
    data: dict[str, Any] | None  # CSV: header -> str; JSON: the object
    raw: str  # the record's text, capped at RAW_CAP characters
    error: str | None = None  # "<stable category>[: <detail>]"


class InputError(Exception):
    """A whole input that can't be read; the message is one line: what, and what to do."""


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _TooLarge(Exception):
    """A CSV record outgrew MAX_RECORD_BYTES; raised through csv.reader to abandon it."""


class _Source(io.RawIOBase):
    """A raw stream that replays bytes looked at in advance, then reads on underneath.

    Sniffing (gzip magic, BOM, leading blank lines, the first bytes) needs to look ahead
    on pipes that can't seek; this keeps those bytes and serves them first. It also counts
    the bytes pulled from underneath, which is how progress is measured, and can hold a
    read error met while looking ahead so that it surfaces only once the bytes read before
    it have been served.
    """

    def __init__(self, inner: _Readable) -> None:
        super().__init__()
        # read1 where there is one: GzipFile.read raises on a truncated stream and drops
        # what it had decompressed, while read1 hands that over first.
        self._read = getattr(inner, "read1", inner.read)
        self._prefix = b""
        self.count = 0
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            size = min(len(view), len(self._prefix))
            view[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        if self.error is not None:
            raise self.error
        data = self._read(len(view))
        size = len(data) if data else 0
        view[:size] = data or b""
        self.count += size
        return size

    def lookahead(self, size: int) -> bytes:
        """At least `size` bytes ahead (fewer only at the end), without consuming them."""
        while len(self._prefix) < size and self.error is None:
            data = self._read(max(size - len(self._prefix), _CHUNK_BYTES))
            if not data:
                break
            self.count += len(data)
            self._prefix += data
        return self._prefix

    def drop(self, size: int) -> None:
        self._prefix = self._prefix[size:]


class RecordReader:
    """An iterator of `Record`s over one input, and a context manager that closes it."""

    def __init__(
        self,
        source: str,
        kind: str,
        columns: list[str] | None,
        disk: _Source,
        total_bytes: int | None,
        closers: list[Any],
    ) -> None:
        self.source = source
        self.kind = kind
        self.columns = columns
        self.total_bytes = total_bytes
        # Why reading stopped before the end of the input (the reason of the last record).
        self.stream_error: str | None = None
        self._records: Iterator[Record] = iter(())
        self._disk = disk
        self._closers = closers
        self._closed = False

    @property
    def bytes_read(self) -> int:
        """Bytes consumed from the file on disk (compressed bytes for gzip)."""
        return self._disk.count

    def __iter__(self) -> Iterator[Record]:
        # The generator itself, so that a for loop skips a Python-level __next__ per record.
        return self._records

    def __next__(self) -> Record:
        return next(self._records)

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the input; iterating afterwards yields nothing more."""
        close_records = getattr(self._records, "close", None)
        if close_records is not None:
            close_records()
        self._close_files()

    def _start(self, records: Iterator[Record]) -> None:
        self._records = self._until_done(records)

    def _until_done(self, records: Iterator[Record]) -> Iterator[Record]:
        # Close the input as soon as its records run out, not only when the caller does.
        try:
            yield from records
        finally:
            self._close_files()

    def _close_files(self) -> None:
        if self._closed:
            return
        self._closed = True
        for closer in self._closers:
            closer.close()

    def _note_failure(self, reason: str) -> None:
        self.stream_error = reason


def open_records(path: str, kind: str | None = None, stdin: BinaryIO | None = None) -> RecordReader:
    """Open `path` ('-' for `stdin`, by default the process's standard input) for reading.

    `kind` is "csv" or "jsonl" to force it; None detects it from the extension (.csv;
    .jsonl, .ndjson, .json; after .gz) or else from the first non-blank byte.
    Raises InputError when the input can't be read at all.
    """
    if kind not in (None, "csv", "jsonl"):
        raise ValueError(f"kind must be 'csv' or 'jsonl', not {kind!r}")
    if path == "-":
        handle: Any = stdin if stdin is not None else sys.stdin.buffer
        total_bytes = None
        closers: list[Any] = []  # standard input isn't ours to close
    else:
        handle, total_bytes = _open_file(path)
        closers = [handle]
    try:
        return _open_stream(path, kind, handle, total_bytes, closers)
    except BaseException:
        for closer in closers:
            closer.close()
        raise


def _open_file(path: str) -> tuple[BinaryIO, int | None]:
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{path}: is a directory; pass the export files inside it")
        handle = open(path, "rb", buffering=0)  # noqa: SIM115 - the RecordReader closes it
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied; check the file's permissions") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory; pass the export files inside it") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror or exc})") from None
    except ValueError:  # a NUL in the path
        raise InputError(f"{path!r}: not a valid file name") from None
    return handle, info.st_size if stat.S_ISREG(info.st_mode) else None


def _open_stream(
    path: str, kind: str | None, handle: Any, total_bytes: int | None, closers: list[Any]
) -> RecordReader:
    name = _STDIN_NAME if path == "-" else path
    disk = _Source(handle)
    try:
        gzipped = disk.lookahead(2)[:2] == _GZIP_MAGIC
    except _READ_ERRORS as exc:
        raise InputError(_open_failure(name, exc, gzipped=False)) from None
    text = disk
    if gzipped:
        archive = gzip.GzipFile(fileobj=disk, mode="rb")
        closers.insert(0, archive)
        text = _Source(archive)
    offset, line = _skip_blank_start(text, name, gzipped)
    sample = _sample(text)
    stream = io.BufferedReader(text, buffer_size=_BUFFER_BYTES)
    closers.insert(0, stream)
    kind = kind or _detect_kind(path, sample, name)
    if kind == "csv":
        csv_source = _CsvSource(stream, path, name, offset, line, _delimiter(sample))
        columns = csv_source.read_header()
        reader = RecordReader(path, "csv", columns, disk, total_bytes, closers)
        reader._start(csv_source.records(reader))
        return reader
    reader = RecordReader(path, "jsonl", None, disk, total_bytes, closers)
    reader._start(_open_json(stream, path, name, offset, line, reader))
    return reader


def _skip_blank_start(text: _Source, name: str, gzipped: bool) -> tuple[int, int]:
    """Drop a UTF-8 BOM and leading whitespace; return the offset and line left at.

    Raises InputError for an input that is empty, unreadable, or not text at all.
    """
    offset, newlines = 0, 0
    try:
        head = text.lookahead(16)
        for magic, what in _FOREIGN_MAGIC:
            if head.startswith(magic) and (magic != b"BZh" or head[4:10] == b"1AY&SY"):
                raise InputError(f"{name}: {what}")
        if head.startswith(_UTF8_BOM):
            text.drop(3)
            offset = 3
        while head := text.lookahead(1):
            kept = head.lstrip()
            gone = len(head) - len(kept)
            newlines += head.count(b"\n", 0, gone)
            offset += gone
            text.drop(gone)
            if kept:
                return offset, 1 + newlines
    except _READ_ERRORS as exc:
        raise InputError(_open_failure(name, exc, gzipped)) from None
    raise InputError(f"{name}: file is empty")


def _sample(text: _Source) -> bytes:
    """The first bytes of content; a read error met here waits until they are consumed."""
    try:
        return text.lookahead(_SNIFF_BYTES)
    except _READ_ERRORS as exc:
        text.error = exc
        return text.lookahead(0)


def _open_failure(name: str, exc: BaseException, gzipped: bool) -> str:
    """The InputError message for a read that failed before any record could be read."""
    if gzipped and isinstance(exc, EOFError | gzip.BadGzipFile | zlib.error):
        detail = "it ends early" if isinstance(exc, EOFError) else str(exc)
        return f"{name}: not a valid gzip file ({detail}); re-download or re-export it"
    if isinstance(exc, EOFError):
        return f"{name}: file truncated ({_describe(exc)}); re-download or re-export it"
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return f"{name}: file corrupt ({_describe(exc)}); re-download or re-export it"
    return f"{name}: cannot read ({_describe(exc)})"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _detect_kind(path: str, sample: bytes, name: str) -> str:
    stem = path.lower().removesuffix(".gz")
    if stem.endswith(".csv"):
        return "csv"
    if stem.endswith(_JSON_EXTENSIONS):
        return "jsonl"
    start = sample[:8].hex(" ")
    if b"\x00" in sample:
        raise InputError(
            f"{name}: neither CSV nor JSON lines (binary data; first bytes {start}); "
            "export the activity as CSV or JSON lines"
        )
    if not _is_utf8(sample):
        raise InputError(
            f"{name}: not UTF-8 text (first bytes {start}); save it as UTF-8 CSV or JSON lines"
        )
    return "jsonl" if sample[:1] in (b"{", b"[") else "csv"


def _is_utf8(sample: bytes) -> bool:
    try:
        sample.decode()
    except UnicodeDecodeError as exc:
        # The sample may end inside a multi-byte character.
        return exc.reason == "unexpected end of data" and exc.end == len(sample)
    return True


def _delimiter(sample: bytes) -> str:
    header = sample.split(b"\n", 1)[0]
    counts = {",": header.count(b","), ";": header.count(b";"), "\t": header.count(b"\t")}
    best = max(counts, key=lambda mark: counts[mark])
    return best if counts[best] > counts[","] else ","


# ---------------------------------------------------------------------------------- CSV


class _CsvSource:
    """Feeds csv.reader one decoded line at a time, tracking where each row starts.

    csv.reader pulls lines only as it needs them, so a line read while no line is pending
    starts a row; its position is published for the row loop. Lines are decoded with
    surrogateescape so that one bad line can't stop the reader; its row is then flagged.
    """

    def __init__(
        self,
        stream: io.BufferedReader,
        source: str,
        name: str,
        offset: int,
        line: int,
        delimiter: str,
    ) -> None:
        self._stream = stream
        self._source = source
        self._name = name
        self._delimiter = delimiter
        self.offset = offset  # of the next unread line, kept when a line feed stops
        self.line = line
        self.row_offset = offset  # where the row being read starts
        self.row_line = line
        self.pending: list[str] = []  # the lines the current row has taken so far
        self.bad_utf8 = False
        self.columns: list[str] = []
        if csv.field_size_limit() < CSV_FIELD_LIMIT:
            csv.field_size_limit(CSV_FIELD_LIMIT)
        self._reader = self._new_reader()

    def _new_reader(self) -> Iterator[list[str]]:
        return csv.reader(self._lines(), delimiter=self._delimiter)

    def _lines(self) -> Iterator[str]:
        # Positions live in locals (this runs once per line) and are published once per row.
        readline = self._stream.readline
        pending = self.pending
        offset, line = self.offset, self.line
        row_start = offset
        try:
            while True:
                if not pending:
                    row_start = self.row_offset = offset
                    self.row_line = line
                budget = MAX_RECORD_BYTES - (offset - row_start)
                if budget <= 0:
                    raise _TooLarge
                data = readline(budget)
                if not data:
                    return
                size = len(data)
                offset += size
                line += 1
                try:
                    text = data.decode()
                except UnicodeDecodeError:
                    text = data.decode("utf-8", "surrogateescape")
                    self.bad_utf8 = True
                pending.append(text)
                if size == budget and data[-1] != 10:
                    offset += _drain_line(self._stream)
                    raise _TooLarge
                yield text
        finally:
            self.offset, self.line = offset, line

    def read_header(self) -> list[str]:
        name = self._name
        try:
            row = next(self._reader, None)
        except csv.Error as exc:
            if "new-line character" in str(exc):
                raise InputError(
                    f"{name}: lines end in CR only (old Mac style); convert them to LF or CRLF"
                ) from None
            raise InputError(f"{name}: cannot read the CSV header row ({exc})") from None
        except _TooLarge:
            raise InputError(
                f"{name}: the header row is over {_mib(MAX_RECORD_BYTES)}; is this a CSV export?"
            ) from None
        except _READ_ERRORS as exc:
            raise InputError(_open_failure(name, exc, gzipped=False)) from None
        if row is None:  # only a BOM and blank lines; already refused, but stay safe
            raise InputError(f"{name}: file is empty")
        if self.bad_utf8:
            raise InputError(f"{name}: the header row is not valid UTF-8; save the file as UTF-8")
        if any("\x00" in cell for cell in row):
            raise InputError(
                f"{name}: the header row holds NUL bytes (UTF-16 or binary?); save it as UTF-8 CSV"
            )
        self._take_pending()
        self.columns = _column_names(row)
        return self.columns

    def records(self, owner: RecordReader) -> Iterator[Record]:
        columns = self.columns
        width = len(columns)
        source = self._source
        pending = self.pending
        reader = self._reader
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield self._reject(f"malformed CSV: {_csv_problem(exc)}")
                continue
            except _TooLarge:
                yield self._reject(f"record too large: over {_mib(MAX_RECORD_BYTES)}")
                reader = self._reader = self._new_reader()
                continue
            except _READ_ERRORS as exc:
                failure = _stream_failure(source, self.row_line, self.row_offset, exc)
                owner._note_failure(failure.error or "")
                yield failure
                return
            if self.bad_utf8:
                yield self._reject("invalid UTF-8")
                continue
            text = pending[0] if len(pending) == 1 else "".join(pending)
            pending.clear()
            if len(row) == width and (width != 1 or row[0].strip()):
                raw = text.rstrip("\r\n")
                if len(raw) > RAW_CAP:
                    raw = _cap(raw)
                # Lengths were just compared, so zip needs no strict check.
                data = dict(zip(columns, row, strict=False))
                yield Record(source, self.row_line, self.row_offset, data, raw)
            elif not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            else:
                error = f"wrong number of fields: row has {len(row)}, header has {width}"
                raw = _cap(text.rstrip("\r\n"))
                yield Record(source, self.row_line, self.row_offset, None, raw, error)

    def _take_pending(self) -> str:
        """The current row's text, safe to serialize; resets the row state."""
        text = "".join(self.pending)
        self.pending.clear()
        if self.bad_utf8:
            self.bad_utf8 = False
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return _cap(text.rstrip("\r\n"))

    def _reject(self, error: str) -> Record:
        line, offset = self.row_line, self.row_offset
        return Record(self._source, line, offset, None, self._take_pending(), error)


def _csv_problem(exc: csv.Error) -> str:
    # csv's advice on this one ("open the file with newline=''") speaks to programmers.
    return str(exc).split(" - do you need", 1)[0]


def _column_names(row: list[str]) -> list[str]:
    """Trimmed header names, with empty and repeated ones made distinct (linear time)."""
    used: set[str] = set()
    next_suffix: dict[str, int] = {}
    names: list[str] = []
    for position, cell in enumerate(row, 1):
        name = cell.strip() or f"column_{position}"
        if name in used:
            suffix = next_suffix.get(name, 2)
            while f"{name}_{suffix}" in used:
                suffix += 1
            next_suffix[name] = suffix + 1
            name = f"{name}_{suffix}"
        used.add(name)
        names.append(name)
    return names


def _drain_line(stream: io.BufferedReader) -> int:
    """Skip the rest of an over-long line; return how many bytes that was."""
    skipped = 0
    while True:
        data = stream.readline(_BUFFER_BYTES)
        skipped += len(data)
        if not data or data[-1] == 10:
            return skipped


# ---------------------------------------------------------------------------------- JSON


def _open_json(
    stream: io.BufferedReader,
    source: str,
    name: str,
    offset: int,
    line: int,
    owner: RecordReader,
) -> Iterator[Record]:
    """Records from JSON lines, or from one pretty-printed document when it is one."""
    try:
        first = stream.readline(MAX_RECORD_BYTES)
    except _READ_ERRORS as exc:
        raise InputError(_open_failure(name, exc, gzipped=False)) from None
    if _starts_document(first, source):
        text = _read_document(stream, first, name, offset)
        return _document_records(text, source, offset, line)
    return _jsonl_records(stream, first, source, offset, line, owner)


def _starts_document(first: bytes, source: str) -> bool:
    stripped = first.strip()
    if stripped in (b"[", b"{"):
        return True
    if not source.lower().removesuffix(".gz").endswith(".json"):
        return False
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:
        return True
    return False


def _read_document(stream: io.BufferedReader, first: bytes, name: str, offset: int) -> str:
    chunks = [first]
    size = len(first)
    try:
        while size <= MAX_DOCUMENT_BYTES and (chunk := stream.read(_BUFFER_BYTES)):
            chunks.append(chunk)
            size += len(chunk)
    except _READ_ERRORS as exc:
        raise InputError(_open_failure(name, exc, gzipped=False)) from None
    if size > MAX_DOCUMENT_BYTES:
        raise InputError(
            f"{name}: a JSON document over {_mib(MAX_DOCUMENT_BYTES)}; convert it to JSON lines "
            "first (for an array: jq -c '.[]')"
        )
    data = b"".join(chunks)
    del chunks
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: not valid UTF-8 (at byte {offset + exc.start}); save it as UTF-8"
        ) from None


def _jsonl_records(
    stream: io.BufferedReader,
    first: bytes,
    source: str,
    offset: int,
    line: int,
    owner: RecordReader,
) -> Iterator[Record]:
    readline = stream.readline
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    limit = MAX_RECORD_BYTES
    data = first
    while data:
        start, number = offset, line
        offset += len(data)
        line += 1
        try:
            if len(data) == limit and data[-1] != 10:
                offset += _drain_line(stream)
                yield Record(
                    source,
                    number,
                    start,
                    None,
                    _line_text(data),
                    f"record too large: over {_mib(limit)}",
                )
            else:
                try:
                    value = loads(data)
                except decode_error as exc:
                    if not data.isspace():
                        yield _json_error(source, number, start, data, exc)
                else:
                    if type(value) is dict:
                        yield Record(source, number, start, value, _line_text(data))
                    else:
                        yield from _non_object(source, number, start, data, value)
            data = readline(limit)
        except _READ_ERRORS as exc:
            failure = _stream_failure(source, line, offset, exc)
            owner._note_failure(failure.error or "")
            yield failure
            return


def _line_text(data: bytes) -> str:
    return _cap(data.decode("utf-8", "backslashreplace").rstrip("\r\n"))


def _json_error(
    source: str, line: int, offset: int, data: bytes, exc: orjson.JSONDecodeError
) -> Record:
    try:
        data.decode()
    except UnicodeDecodeError:
        error = "invalid UTF-8"
    else:
        # Counted from the position, not orjson's column: a parser that runs off the end
        # of the line reports a column on the next line.
        column = min(exc.pos, len(data.rstrip(b"\r\n"))) + 1
        error = f"malformed JSON: {exc.msg} at column {column}"
    return Record(source, line, offset, None, _line_text(data), error)


_KINDS: Final = {
    type(None): ("null", "nulls"),
    bool: ("a boolean", "booleans"),
    int: ("a number", "numbers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
    list: ("an array", "arrays"),
    dict: ("an object", "objects"),
}


def _kind(value: object) -> str:
    return _KINDS.get(type(value), ("a value", "values"))[0]


def _non_object(
    source: str, line: int, offset: int, data: bytes, value: object
) -> Iterator[Record]:
    """Records for a JSON line that is not an object: a batch array, or an error."""
    if type(value) is not list:
        yield Record(
            source, line, offset, None, _line_text(data), f"not a JSON object: {_kind(value)}"
        )
        return
    if not any(type(item) is dict for item in value):
        if value:
            kinds = {_KINDS.get(type(item), ("", "values"))[1] for item in value}
            what = kinds.pop() if len(kinds) == 1 else "mixed values"
            yield Record(
                source, line, offset, None, _line_text(data), f"not a JSON object: list of {what}"
            )
        return
    for position, item in enumerate(value, 1):
        # An item's own JSON keeps a rejected item's raw text from repeating the whole batch.
        try:
            raw = _cap(orjson.dumps(item).decode())
        except orjson.JSONEncodeError:  # nested deeper than orjson writes (it reads deeper)
            raw = _line_text(data)
        if type(item) is dict:
            yield Record(source, line, offset, item, raw)
        else:
            error = f"not a JSON object: array item {position} is {_kind(item)}"
            yield Record(source, line, offset, None, raw, error)


class _Positions:
    """Line and byte offset of positions in a document, asked for in increasing order."""

    def __init__(self, text: str, offset: int, line: int) -> None:
        self._text = text
        self._ascii = text.isascii()
        self._pos = 0
        self._offset = offset
        self._line = line

    def at(self, pos: int) -> tuple[int, int]:
        text, last = self._text, self._pos
        self._line += text.count("\n", last, pos)
        self._offset += pos - last if self._ascii else len(text[last:pos].encode())
        self._pos = pos
        return self._line, self._offset


def _document_records(text: str, source: str, offset: int, line: int) -> Iterator[Record]:
    """Records from a whole JSON document: each item of a top-level array, or the value.

    The stdlib decoder finds where each item ends (orjson can't say); orjson then parses
    the item so both reading paths accept exactly the same JSON.
    """
    positions = _Positions(text, offset, line)
    skip = _WHITESPACE.match
    scan = json.JSONDecoder().raw_decode
    pos = skip(text, 0).end()
    while pos < len(text):
        in_array = text[pos] == "["
        if in_array:
            pos = skip(text, pos + 1).end()
            if text.startswith("]", pos):
                pos = skip(text, pos + 1).end()
                continue
        while True:
            where = positions.at(pos)
            try:
                _, end = scan(text, pos)
            except (ValueError, RecursionError) as exc:
                yield _document_error(source, where, text, pos, exc, line)
                return
            yield _document_item(source, where, text[pos:end])
            pos = skip(text, end).end()
            if not in_array:
                break
            if text.startswith(",", pos):
                pos = skip(text, pos + 1).end()
                continue
            if text.startswith("]", pos):
                pos = skip(text, pos + 1).end()
                break
            yield _document_error(source, positions.at(pos), text, pos, None, line)
            return


def _document_item(source: str, where: tuple[int, int], item: str) -> Record:
    line, offset = where
    try:
        value = orjson.loads(item)
    except orjson.JSONDecodeError as exc:
        return Record(source, line, offset, None, _cap(item), f"malformed JSON: {exc.msg}")
    if type(value) is dict:
        return Record(source, line, offset, value, _cap(item))
    return Record(source, line, offset, None, _cap(item), f"not a JSON object: {_kind(value)}")


def _document_error(
    source: str,
    where: tuple[int, int],
    text: str,
    pos: int,
    exc: BaseException | None,
    first_line: int,
) -> Record:
    line, offset = where
    if isinstance(exc, RecursionError):
        reason = "nested too deeply"
    elif isinstance(exc, json.JSONDecodeError):
        reason = f"{exc.msg} at line {first_line + exc.lineno - 1} column {exc.colno}"
    else:
        reason = f"expected ',' or ']' at line {line}"
    rest = len(text) - pos
    raw = text[pos : pos + RAW_CAP]
    if rest > RAW_CAP:
        raw = f"{raw}...[truncated {rest - RAW_CAP} chars]"
    return Record(source, line, offset, None, raw, f"malformed JSON: {reason}")


# ------------------------------------------------------------------------------- shared


def _stream_failure(source: str, line: int, offset: int, exc: BaseException) -> Record:
    if isinstance(exc, EOFError):
        reason = f"file truncated: {exc or 'the compressed stream ends early'}"
    elif isinstance(exc, gzip.BadGzipFile | zlib.error):
        reason = f"file corrupt: {exc}"
    else:
        reason = f"read error: {_describe(exc)}"
    return Record(source, line, offset, None, "", reason)


def _cap(text: str) -> str:
    if len(text) <= RAW_CAP:
        return text
    return f"{text[:RAW_CAP]}...[truncated {len(text) - RAW_CAP} chars]"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"
