"""Reading records out of CSV / JSON-lines inputs: positions, damage, and refusals."""

from __future__ import annotations

import bisect
import gzip
import io
import itertools
import os
import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emailsrc import readers
from emailsrc.readers import RAW_CAP, InputError, Record, RecordReader, open_records

BOM = b"\xef\xbb\xbf"


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def read_all(path: str, **options: Any) -> tuple[RecordReader, list[Record]]:
    with open_records(path, **options) as reader:
        return reader, list(reader)


def assert_positions(stream: bytes, records: list[Record]) -> None:
    """Every record's offset points at its text, and its line number matches the offset.

    Items of a JSON-lines array share the array's position and carry their own JSON.
    """
    newlines = [match.start() for match in re.finditer(b"\n", stream)]
    for record in records:
        assert record.line == bisect.bisect_left(newlines, record.offset) + 1, record
        in_array = stream[record.offset : record.offset + 1] == b"["
        plain = "\\x" not in record.raw and not record.raw.endswith("chars]")
        if record.error is None and plain and not in_array:
            encoded = record.raw.encode()
            assert stream[record.offset : record.offset + len(encoded)] == encoded, record


def assert_offsets_by_seeking(path: str, records: list[Record]) -> None:
    with open(path, "rb") as handle:
        for record in records:
            encoded = record.raw.encode()
            handle.seek(record.offset)
            assert handle.read(len(encoded)) == encoded, record


# ---------------------------------------------------------------------------------- CSV

CSV_ROWS = [
    b"id,email,subject",
    b"",
    b'1,a@example.com,"Hello, world"',
    b'2,b@example.com,"two',
    b"line",
    b'subject"',
    b"",
    b"",
    b'3,c@example.com,"say ""hi"""',
    b"4,d@example.com,caf\xc3\xa9 \xe2\x98\x95",
    b"5,e@example.com,last",
]


@pytest.mark.parametrize("bom", [b"", BOM], ids=["no-bom", "bom"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"], ids=["lf", "crlf"])
def test_csv_rows_keep_their_first_line_and_byte_offset(
    tmp_path: Path, bom: bytes, newline: bytes
) -> None:
    data = bom + newline.join(CSV_ROWS) + newline
    path = write(tmp_path, "export.csv", data)

    reader, records = read_all(path)

    assert reader.kind == "csv"
    assert reader.columns == ["id", "email", "subject"]
    assert [r.line for r in records] == [3, 4, 9, 10, 11]
    assert [r.data["subject"] for r in records if r.data] == [
        "Hello, world",
        f"two{newline.decode()}line{newline.decode()}subject",
        'say "hi"',
        "café ☕",
        "last",
    ]
    assert all(r.error is None and r.source == path for r in records)
    assert records[1].raw == newline.decode().join(['2,b@example.com,"two', "line", 'subject"'])
    assert_offsets_by_seeking(path, records)
    assert_positions(data, records)
    assert reader.bytes_read == reader.total_bytes == len(data)


def test_csv_header_names_are_trimmed_and_made_distinct(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", b" id ,Email,,id,id_2,id\n1,2,3,4,5,6\n")
    reader, records = read_all(path)
    assert reader.columns == ["id", "Email", "column_3", "id_2", "id_2_2", "id_3"]
    assert records[0].data == dict(zip(reader.columns, "123456", strict=True))


def test_csv_with_only_a_header_has_no_records(tmp_path: Path) -> None:
    reader, records = read_all(write(tmp_path, "x.csv", b"id,email\r\n\r\n"))
    assert reader.columns == ["id", "email"]
    assert records == []


@pytest.mark.parametrize(
    ("row", "error"),
    [
        (b"1,2,3,4", "wrong number of fields: row has 4, header has 3"),
        (b"1,2", "wrong number of fields: row has 2, header has 3"),
        (b"1", "wrong number of fields: row has 1, header has 3"),
        (b"1,\xff\xfe,3", "invalid UTF-8"),
        (b'1,"a\xc3",3', "invalid UTF-8"),
        (b"1,a\rb,3", "malformed CSV: new-line character seen in unquoted field"),
    ],
)
def test_csv_unreadable_rows_become_error_records(tmp_path: Path, row: bytes, error: str) -> None:
    data = b"a,b,c\n" + row + b"\nx,y,z\n"
    _, records = read_all(write(tmp_path, "x.csv", data))
    bad, good = records
    assert (bad.line, bad.offset, bad.data, bad.error) == (2, 6, None, error)
    orjson.dumps(bad.raw)  # no lone surrogates: the rejects file can hold it
    assert good.data == {"a": "x", "b": "y", "c": "z"}
    assert good.line == 3


def test_csv_field_over_the_limit_is_an_error_and_reading_goes_on(tmp_path: Path) -> None:
    big = b"x" * (readers.CSV_FIELD_LIMIT + 10)
    ok = b"y" * (10 * 1024 * 1024)
    data = b"a,b\n1," + big + b"\n2," + ok + b"\n3,z\n"
    _, records = read_all(write(tmp_path, "x.csv", data))
    assert [r.line for r in records] == [2, 3, 4]
    assert records[0].error is not None
    assert records[0].error.startswith("malformed CSV: field larger than field limit")
    assert records[1].data == {"a": "2", "b": ok.decode()}
    assert records[2].data == {"a": "3", "b": "z"}
    assert_positions(data, records)


@pytest.mark.parametrize(
    "body",
    [
        b"1," + b"x" * 5000 + b"\n",  # one line over the cap
        b'1,"' + b"x\n" * 3000,  # a quoted field that never closes
    ],
    ids=["long-line", "runaway-quote"],
)
def test_csv_record_over_the_cap_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 4096)
    data = b"a,b\n" + body + b"2,z\n"
    _, records = read_all(write(tmp_path, "x.csv", data))
    assert records[0].error == "record too large: over 0.00390625 MiB"
    assert records[0].line == 2
    assert len(records[0].raw) <= RAW_CAP + 40
    assert records[-1].data == {"a": "2", "b": "z"}
    assert_positions(data, records)


def test_csv_nul_bytes_do_not_break_reading(tmp_path: Path) -> None:
    data = b"a,b\n1,x\x00y\n\x00\x00\x00\n2,z\n"
    _, records = read_all(write(tmp_path, "x.csv", data))
    assert records[0].data == {"a": "1", "b": "x\x00y"}
    assert records[1].error == "wrong number of fields: row has 1, header has 2"
    assert records[2].data == {"a": "2", "b": "z"}


def test_csv_semicolon_delimiter_is_recognised_from_the_header(tmp_path: Path) -> None:
    reader, records = read_all(write(tmp_path, "x.csv", b"id;email\n1;a@example.com\n"))
    assert reader.columns == ["id", "email"]
    assert records[0].data == {"id": "1", "email": "a@example.com"}


def test_csv_million_column_header_is_fast(tmp_path: Path) -> None:
    data = b"a," * 1_000_000 + b"a\n1,2\n"
    started = time.monotonic()
    reader, records = read_all(write(tmp_path, "x.csv", data))
    assert time.monotonic() - started < 10
    assert reader.columns is not None
    assert len(set(reader.columns)) == 1_000_001
    assert records[0].error == "wrong number of fields: row has 2, header has 1000001"


def test_raw_text_is_capped(tmp_path: Path) -> None:
    value = "é" * (RAW_CAP + 100)
    data = b"a\n" + value.encode() + b"\n"
    _, [record] = read_all(write(tmp_path, "x.csv", data))
    assert record.data == {"a": value}
    assert record.raw == value[:RAW_CAP] + "...[truncated 100 chars]"


# ---------------------------------------------------------------------------------- JSONL

JSONL_CASES: list[tuple[bytes, list[tuple[Any, str | None]]]] = [
    (b'{"a": 1}', [({"a": 1}, None)]),
    (b'  {"a": 1}  \r', [({"a": 1}, None)]),
    (b"", []),
    (b"   \t", []),
    (b"[]", []),
    (b'[{"a": 1}, {"b": 2}]', [({"a": 1}, None), ({"b": 2}, None)]),
    (
        b'[{"a": 1}, 7, null]',
        [
            ({"a": 1}, None),
            (None, "not a JSON object: array item 2 is a number"),
            (None, "not a JSON object: array item 3 is null"),
        ],
    ),
    (b"[1, 2, 3]", [(None, "not a JSON object: list of numbers")]),
    (b'[1, "x"]', [(None, "not a JSON object: list of mixed values")]),
    (b'"text"', [(None, "not a JSON object: a string")]),
    (b"42", [(None, "not a JSON object: a number")]),
    (b"null", [(None, "not a JSON object: null")]),
    (b'{"a": ', [(None, "malformed JSON: unexpected end of data at column 7")]),
    (b'{"a": 1,}', [(None, "malformed JSON: trailing comma is not allowed at column 8")]),
    (
        b'{"a": 1} {"b": 2}',
        [(None, "malformed JSON: unexpected content after document at column 10")],
    ),
    (b'{"a": "\xff"}', [(None, "invalid UTF-8")]),
    (
        b'{"a": "x\x00"}',
        [(None, "malformed JSON: unexpected control character in string at column 9")],
    ),
    (b"[" * 5000, [(None, "malformed JSON: depth limit exceeded at column 1026")]),
]


@pytest.mark.parametrize(("line", "expected"), JSONL_CASES)
def test_jsonl_line_outcomes(
    tmp_path: Path, line: bytes, expected: list[tuple[Any, str | None]]
) -> None:
    data = b'{"first": true}\n' + line + b'\n{"last": true}\n'
    _, records = read_all(write(tmp_path, "x.jsonl", data))
    first, *middle, last = records
    assert (first.data, first.line, first.offset) == ({"first": True}, 1, 0)
    assert [(r.data, r.error) for r in middle] == expected
    assert all((r.line, r.offset) == (2, 16) for r in middle)
    assert (last.data, last.line) == ({"last": True}, 3)
    for record in records:
        orjson.dumps(record.raw)
    assert_positions(data, records)


def test_jsonl_array_items_carry_their_own_text(tmp_path: Path) -> None:
    data = b'[{"a": 1}, "junk"]\n'
    _, records = read_all(write(tmp_path, "x.jsonl", data))
    assert [r.raw for r in records] == ['{"a":1}', '"junk"']


def test_jsonl_ten_megabyte_line_is_read(tmp_path: Path) -> None:
    body = "x" * (10 * 1024 * 1024)
    data = orjson.dumps({"body": body}) + b"\n" + b'{"a": 2}\n'
    _, records = read_all(write(tmp_path, "x.ndjson", data))
    assert records[0].data == {"body": body}
    assert records[0].raw.endswith(f"...[truncated {len(data) - 10 - RAW_CAP} chars]")
    assert (records[1].data, records[1].offset) == ({"a": 2}, len(data) - 9)


def test_jsonl_line_over_the_cap_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 1000)
    data = b'{"a": 1}\n{"b": "' + b"x" * 5000 + b'"}\n{"c": 3}\n'
    _, records = read_all(write(tmp_path, "x.jsonl", data))
    assert [(r.line, r.error) for r in records] == [
        (1, None),
        (2, "record too large: over 0.000953674 MiB"),
        (3, None),
    ]
    assert_positions(data, records)


# ------------------------------------------------------------------------ JSON documents


def test_pretty_printed_array_document(tmp_path: Path) -> None:
    data = b'[\n  {\n    "a": 1\n  },\n  {"b": "\xc3\xa9"}, {"c": 3},\n  4\n]\n'
    path = write(tmp_path, "page.json", data)
    reader, records = read_all(path)
    assert reader.kind == "jsonl"
    assert [(r.data, r.line, r.error) for r in records] == [
        ({"a": 1}, 2, None),
        ({"b": "é"}, 5, None),
        ({"c": 3}, 5, None),
        (None, 6, "not a JSON object: a number"),
    ]
    assert records[0].raw == '{\n    "a": 1\n  }'
    assert_offsets_by_seeking(path, records)
    assert_positions(data, records)


def test_pretty_printed_objects_one_after_another(tmp_path: Path) -> None:
    data = b'{\n  "data": [1]\n}\n{\n  "data": [2]\n}\n'
    _, records = read_all(write(tmp_path, "x.json", data))
    assert [(r.data, r.line) for r in records] == [({"data": [1]}, 1), ({"data": [2]}, 4)]
    assert_positions(data, records)


def test_lone_bracket_first_line_starts_a_document_whatever_the_name(tmp_path: Path) -> None:
    data = b'[\n{"a": 1},\n{"a": 2}\n]\n'
    _, records = read_all("-", stdin=io.BytesIO(data))
    assert [(r.data, r.line) for r in records] == [({"a": 1}, 2), ({"a": 2}, 3)]


def test_json_file_of_json_lines_is_read_line_by_line(tmp_path: Path) -> None:
    data = b'{"a": 1}\n{"a": 2}\n'
    _, records = read_all(write(tmp_path, "x.json", data))
    assert [(r.data, r.line) for r in records] == [({"a": 1}, 1), ({"a": 2}, 2)]


def test_broken_document_yields_what_it_can_then_an_error(tmp_path: Path) -> None:
    data = b'[\n  {"a": 1},\n  {"a": 2,,},\n  {"a": 3}\n]\n'
    _, records = read_all(write(tmp_path, "x.json", data))
    assert records[0].data == {"a": 1}
    assert (records[1].line, records[1].data) == (3, None)
    assert records[1].error is not None
    assert records[1].error.startswith("malformed JSON: ")
    assert "line 3" in records[1].error
    assert len(records) == 2


def test_document_over_the_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_DOCUMENT_BYTES", 100)
    path = write(tmp_path, "x.json", b"[\n" + b'{"a": 1},\n' * 20 + b"{}\n]\n")
    with pytest.raises(InputError, match=r"convert it to JSON lines"):
        open_records(path)


def test_document_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not valid UTF-8 \(at byte 9\)"):
        open_records(write(tmp_path, "x.json", b'[\n{"a": "\xff"}\n]'))


# ------------------------------------------------------------------------- gzip and stdin

GZIP_SAMPLES = [
    ("x.csv", b"a,b\n1,2\n3,4\n"),
    ("x.jsonl", b'{"a": 1}\n\n[{"a": 2}, {"a": 3}]\n'),
]


@pytest.mark.parametrize(("name", "data"), GZIP_SAMPLES)
def test_gzip_reads_like_the_plain_file(tmp_path: Path, name: str, data: bytes) -> None:
    compressed = gzip.compress(data)
    _, plain = read_all(write(tmp_path, name, data))
    reader, unpacked = read_all(write(tmp_path, name + ".gz", compressed))
    assert [(r.data, r.line, r.offset, r.raw) for r in unpacked] == [
        (r.data, r.line, r.offset, r.raw) for r in plain
    ]
    assert reader.bytes_read == reader.total_bytes == len(compressed)


def test_gzip_is_recognised_by_content_not_name(tmp_path: Path) -> None:
    reader, records = read_all(write(tmp_path, "x.csv", gzip.compress(b"a\n1\n")))
    assert reader.kind == "csv"
    assert records[0].data == {"a": "1"}


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_standard_input(compress: bool) -> None:
    data = b'{"a": 1}\n{"a": 2}\n'
    stdin = io.BytesIO(gzip.compress(data) if compress else data)
    reader, records = read_all("-", stdin=stdin)
    assert (reader.source, reader.kind, reader.total_bytes) == ("-", "jsonl", None)
    assert reader.bytes_read == len(stdin.getvalue())
    assert [(r.source, r.data, r.line) for r in records] == [("-", {"a": 1}, 1), ("-", {"a": 2}, 2)]
    assert not stdin.closed  # standard input is not ours to close


def test_standard_input_sniffs_csv() -> None:
    reader, records = read_all("-", stdin=io.BytesIO(BOM + b"a,b\n1,2\n"))
    assert (reader.kind, reader.columns, records[0].offset) == ("csv", ["a", "b"], 7)


@pytest.mark.parametrize("name", ["x.csv", "x.jsonl"])
def test_truncated_gzip_ends_with_an_error_record(tmp_path: Path, name: str) -> None:
    # Random text, so that half the compressed bytes hold many records.
    values = os.urandom(200_000).hex()
    rows = [values[i : i + 40] for i in range(0, len(values), 40)]
    if name.endswith(".jsonl"):
        plain = b"".join(orjson.dumps({"v": row}) + b"\n" for row in rows)
    else:
        plain = b"v\n" + "\n".join(rows).encode() + b"\n"
    compressed = gzip.compress(plain)
    reader, records = read_all(write(tmp_path, name + ".gz", compressed[: len(compressed) // 2]))
    *good, last = records
    assert len(good) > 100
    assert last.data is None
    assert last.error is not None
    assert last.error.startswith("file truncated: ")
    assert reader.stream_error == last.error
    assert_positions(plain, records)


class FailingStream(io.RawIOBase):
    """Standard input that delivers some bytes, then fails like a broken disk."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._data:
            raise OSError(5, "Input/output error")
        size = min(len(buffer), len(self._data), 4096)
        buffer[:size] = self._data[:size]
        self._data = self._data[size:]
        return size


@pytest.mark.parametrize(
    ("header", "row"), [(b"a,b\n", b"1,2\n"), (b"", b'{"a": 1}\n')], ids=["csv", "jsonl"]
)
def test_read_error_mid_stream_ends_with_an_error_record(header: bytes, row: bytes) -> None:
    data = header + row * 5000
    reader, records = read_all("-", stdin=io.BufferedReader(FailingStream(data)))
    assert len(records) == 5001
    assert records[-1].error == "read error: Input/output error"
    assert records[-1].line == 5001 + len(header.splitlines())
    assert reader.stream_error == records[-1].error


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("x.csv", b"", "file is empty"),
        ("x.jsonl", b"  \n\r\n\t", "file is empty"),
        ("x.csv", BOM, "file is empty"),
        ("x.csv", BOM + b"\n\n", "file is empty"),
        ("x.csv.gz", gzip.compress(b""), "file is empty"),
        ("x.csv.gz", b"\x1f\x8b\x08\x00garbage-garbage", "not a valid gzip file"),
        ("x.csv.gz", b"\x1f\x8b\x09\x00\x00\x00\x00\x00\x00\xff", "not a valid gzip file"),
        ("x.gz", gzip.compress(b"a,b\n" * 1000)[:15], "not a valid gzip file (it ends early"),
        ("x.bin", b"\x00\x01\x02\x03binary", "neither CSV nor JSON lines (binary data"),
        ("x.txt", b"caf\xe9,th\xe9\n", "not UTF-8 text"),
        ("x.xlsx", b"PK\x03\x04\x14\x00", "a ZIP archive"),
        ("x.csv", b"\xff\xfea\x00,\x00b\x00", "UTF-16"),
        ("x.csv", b"caf\xe9,b\n1,2\n", "header row is not valid UTF-8"),
        ("x.csv", b"a\x00,b\x00\n", "header row holds NUL bytes"),
        ("x.csv", b"a,b\r1,2\r", "lines end in CR only"),
    ],
)
def test_unreadable_inputs_are_refused_at_open(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(InputError) as caught:
        open_records(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ")
    assert message in text
    assert "\n" not in text


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "export.csv")
    with pytest.raises(InputError, match=r"export\.csv: no such file$"):
        open_records(path)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r": is a directory"):
        open_records(str(tmp_path))


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "x.csv", b"a\n1\n")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(readers, "open", refuse, raising=False)
    with pytest.raises(InputError, match=r"x\.csv: permission denied"):
        open_records(path)


def test_empty_standard_input() -> None:
    with pytest.raises(InputError, match=r"^standard input: file is empty$"):
        open_records("-", stdin=io.BytesIO(b""))


def test_unknown_kind_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind"):
        open_records(write(tmp_path, "x.csv", b"a\n"), kind="xml")


# ------------------------------------------------------------------------ kind detection


@pytest.mark.parametrize(
    ("name", "data", "kind", "expected"),
    [
        ("x.csv", b'{"a": 1}\n', None, "csv"),
        ("x.jsonl", b"a,b\n", None, "jsonl"),
        ("X.NDJSON.GZ", gzip.compress(b'{"a": 1}\n'), None, "jsonl"),
        ("x.txt", b'\n  {"a": 1}\n', None, "jsonl"),
        ("x.txt", b"[]\n", None, "jsonl"),
        ("x.txt", b"a,b\n", None, "csv"),
        ("x.txt", b"a,b\n", "jsonl", "jsonl"),
        ("x.jsonl", b'{"a": 1}\n', "csv", "csv"),
    ],
)
def test_kind_detection(
    tmp_path: Path, name: str, data: bytes, kind: str | None, expected: str
) -> None:
    with open_records(write(tmp_path, name, data), kind=kind) as reader:
        assert reader.kind == expected
        assert (reader.columns is None) == (expected == "jsonl")


def test_reader_closes_its_file(tmp_path: Path) -> None:
    path = write(tmp_path, "x.jsonl", b'{"a": 1}\n{"a": 2}\n')
    with open_records(path) as reader:
        assert next(reader).data == {"a": 1}
    assert list(reader) == []
    reader.close()  # closing twice is harmless


def test_iteration_can_resume_after_a_partial_read(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", b"a\n1\n2\n3\n")
    with open_records(path) as reader:
        head = [r.data for r in itertools.islice(reader, 2)]
        rest = [r.data for r in reader]
    assert head + rest == [{"a": "1"}, {"a": "2"}, {"a": "3"}]


# ------------------------------------------------------------------------------ property

NAMES = ["x.csv", "x.jsonl", "x.json", "x.bin", "-"]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.lists(
            st.sampled_from(
                [
                    b"a",
                    b",",
                    b'"',
                    b"\n",
                    b"\r",
                    b"{",
                    b"}",
                    b"[",
                    b"]",
                    b":",
                    b"\x00",
                    b"\xff",
                    b"\xef\xbb\xbf",
                    b" ",
                    b'"k"',
                    b"1",
                    b"\xc3\xa9",
                ]
            ),
            max_size=80,
        ).map(b"".join),
    ),
    name=st.sampled_from(NAMES),
    compress=st.booleans(),
    cut=st.integers(min_value=0, max_value=100),
)
def test_any_bytes_give_an_input_error_or_records(
    tmp_path: Path, data: bytes, name: str, compress: bool, cut: int
) -> None:
    stored = data
    if compress:
        stored = gzip.compress(data)
        stored = stored[: max(1, len(stored) * cut // 100)] if cut < 100 else stored
    try:
        if name == "-":
            reader = open_records("-", stdin=io.BytesIO(stored))
        else:
            reader = open_records(write(tmp_path, name, stored))
    except InputError as error:
        assert "\n" not in str(error)
        return
    with reader:
        records = list(reader)
    for record in records:
        orjson.dumps([record.raw, record.data, record.error])
        assert (record.data is None) == (record.error is not None)
    plain = gzip.decompress(stored) if compress and cut == 100 else data
    if not compress or cut == 100:
        assert_positions(plain, records)
    assert [r.offset for r in records] == sorted(r.offset for r in records)
