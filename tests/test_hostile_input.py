"""Hostile input through the real pipeline: `validate` and `backfill --dry-run` on files
built to break readers, formats and encoders.

The promise under test: no traceback, no hang, bounded memory; each bad record is
rejected with its file, line and reason; every good record is still processed; and the
counts add up (the JSON summary says "balanced": true and the rejects file holds one line
per rejected record).
"""

from __future__ import annotations

import gzip
import json
import os
import random
import resource
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cli_process as cp
from emailsrc.app import app

pytestmark = pytest.mark.timeout(120)

SAMPLES = Path(__file__).resolve().parent.parent / "sample_exports"


def _sample_documents() -> list[str]:
    """Every parseable line of the bundled JSONL samples (some are broken on purpose)."""
    lines: list[str] = []
    for path in sorted(SAMPLES.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                json.loads(line)
            except ValueError:
                continue
            lines.append(line)
    return lines


SAMPLE_LINES = _sample_documents()
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def good_record(number: int, **data: Any) -> dict[str, Any]:
    """A Customer.io reporting webhook that yields one Email Delivered event."""
    return {
        "event_id": f"good-{number}",
        "object_type": "email",
        "metric": "delivered",
        "timestamp": 1_748_779_200 + number,
        "data": {
            "delivery_id": f"dlv-{number}",
            "identifiers": {"id": f"user-{number}", "email": f"p{number}@example.com"},
            **data,
        },
    }


def good_line(number: int) -> bytes:
    return orjson.dumps(good_record(number))


def check(args: list[str], path: Path, *, allowed: tuple[int, ...] = (0, 1)) -> dict[str, Any]:
    """Run the command in-process; assert it ended cleanly and accounted for every
    record; return the JSON summary."""
    with tempfile.TemporaryDirectory() as state:
        rejects_path = Path(state) / "rejects.jsonl"
        result = CliRunner().invoke(
            app,
            [
                *args,
                str(path),
                "--json",
                "--state",
                str(Path(state) / "ledger.sqlite3"),
                "--rejects",
                str(rejects_path),
            ],
            env={"SEGMENT_WRITE_KEY": None, "SEGMENT_ENDPOINT": None},
        )
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{type(result.exception).__name__}: {result.exception}")
        assert "Traceback" not in result.output
        assert result.exit_code in allowed, result.output
        summary: dict[str, Any] = json.loads(result.stdout)
        assert summary["balanced"] is True, summary
        records = summary["records"]
        entries = cp.rejects(str(rejects_path)) if rejects_path.exists() else []
        assert len(entries) == records["rejected"] + summary["events"]["failed"]
        for entry in entries:
            assert entry["file"] == str(path)
            assert isinstance(entry["line"], int) and entry["line"] >= 1
            assert entry["reason"] and "\n" not in entry["reason"]
        summary["rejects"] = entries
        return summary


def planned_event_ids(path: Path) -> set[str]:
    """The Track calls a dry run would send, identified by the provider's event id."""
    with tempfile.TemporaryDirectory() as state:
        output = Path(state) / "batches.jsonl"
        result = CliRunner().invoke(
            app,
            [
                "backfill",
                str(path),
                "--dry-run",
                "--quiet",
                "--id-namespace",
                "hostile",
                "--output",
                str(output),
                "--state",
                str(Path(state) / "ledger.sqlite3"),
                "--rejects",
                str(Path(state) / "rejects.jsonl"),
            ],
            env={"SEGMENT_WRITE_KEY": None},
        )
        assert result.exit_code in (0, 1), result.output
        if not output.exists():
            return set()
        return {
            event["properties"]["email_id"]
            for line in output.read_bytes().splitlines()
            for event in orjson.loads(line)["batch"]
        }


# -- property-based ------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "",
            "NaN",
            "Infinity",
            "-1",
            "0",
            "9999-12-31T23:59:59Z",
            "0000-01-01",
            "1e400",
            "\x00",
            "a\x00b@example.com",
            "ünï@exämple.com",
            "\u202e",
        ]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from([".jsonl", ".csv", ".json", ".txt", ".gz"]))
def test_random_bytes(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"export{suffix}"
        path.write_bytes(gzip.compress(data) if suffix == ".gz" else data)
        check(["validate"], path, allowed=(0, 1, 3))


@FUZZ
@given(
    st.lists(st.sampled_from(SAMPLE_LINES), min_size=1, max_size=8),
    st.data(),
)
def test_provider_records_with_hostile_values(lines: list[str], data: st.DataObject) -> None:
    """Real records from every provider's sample, with values swapped for hostile ones
    anywhere in the document: each record ends in events, a skip or a rejection."""
    mutated: list[bytes] = []
    for line in lines:
        document = json.loads(line)
        for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
            document = _replace_somewhere(document, data)
        mutated.append(json.dumps(document, allow_nan=True).encode())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.jsonl"
        path.write_bytes(b"\n".join(mutated) + b"\n")
        check(["validate"], path, allowed=(0, 1, 3))


def _replace_somewhere(document: Any, data: st.DataObject) -> Any:
    if isinstance(document, dict) and document:
        key = data.draw(st.sampled_from(sorted(document)))
        if data.draw(st.booleans()):
            document[key] = _replace_somewhere(document[key], data)
        else:
            document[key] = data.draw(json_values | st.floats())  # NaN, Infinity too
        return document
    if isinstance(document, list) and document:
        index = data.draw(st.integers(min_value=0, max_value=len(document) - 1))
        document[index] = _replace_somewhere(document[index], data)
        return document
    return data.draw(json_values)


@settings(FUZZ, max_examples=25)
@given(st.lists(json_values, min_size=1, max_size=6))
def test_hostile_lines_never_cost_a_good_record(hostile: list[Any]) -> None:
    """Good records interleaved with hostile lines (arbitrary JSON, and fields of a real
    record set to arbitrary values): every good record still becomes its event."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.jsonl"
        lines: list[bytes] = []
        for number, value in enumerate(hostile):
            lines.append(good_line(number))
            record = good_record(1000 + number)
            record["event_id"] = f"hostile-{number}"
            record["data"]["delivery_id"] = f"hostile-{number}"
            field = ("timestamp", "metric", "data", "object_type")[number % 4]
            record[field] = value
            # json, not orjson: it writes integers past 64 bits, as some exports do.
            lines.append(json.dumps(record).encode())
            lines.append(json.dumps(value).encode())
        path.write_bytes(b"\n".join(lines) + b"\n")
        summary = check(["validate"], path)
        goods = {f"dlv-{number}" for number in range(len(hostile))}
        assert goods <= planned_event_ids(path)
        assert summary["records"]["read"] >= 2 * len(hostile)


@FUZZ
@given(
    st.one_of(
        st.integers(min_value=-(2**64), max_value=2**64),
        st.floats(),
        st.text(max_size=30),
        st.sampled_from(
            [
                "0000-01-01T00:00:00Z",
                "0001-01-01",
                "9999-12-31T23:59:59.999Z",
                "-62135596800",
                "253402300800",
                "1e308",
                "NaN",
                "nan",
                "inf",
                "-Infinity",
                "Tue, 31 Dec 9999 23:59:59 +0000",
                "2025-02-30T00:00:00Z",
            ]
        ),
    )
)
def test_absurd_timestamps_are_rejected_with_a_reason(value: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.jsonl"
        record = good_record(1)
        record["timestamp"] = value
        path.write_text(
            json.dumps(record, allow_nan=True) + "\n" + json.dumps(good_record(2)) + "\n"
        )
        summary = check(["validate"], path)
        assert summary["records"]["read"] in (1, 2)  # a NaN literal is malformed JSON
        events = summary["events"]["by_name"].get("Email Delivered", 0)
        assert events in (1, 2)
        if events == 2:  # accepted: then it was a real moment between 1990 and now
            [stamp] = [
                e["timestamp"]
                for e in _dry_run_events(path)
                if e["properties"]["email_id"] == "dlv-1"
            ]
            assert "1990-01-01" <= stamp[:10] <= "2100-01-01"
        else:
            [entry] = summary["rejects"]
            assert entry["line"] == 1


def _dry_run_events(path: Path) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as state:
        output = Path(state) / "batches.jsonl"
        CliRunner().invoke(
            app,
            [
                "backfill",
                str(path),
                "--dry-run",
                "--quiet",
                "--output",
                str(output),
                "--state",
                str(Path(state) / "ledger.sqlite3"),
            ],
            env={"SEGMENT_WRITE_KEY": None},
        )
        return [e for line in output.read_bytes().splitlines() for e in orjson.loads(line)["batch"]]


@FUZZ
@given(st.text(min_size=1, max_size=60))
def test_any_recipient_is_sent_clean_or_rejected(address: str) -> None:
    """Unicode and control characters in an email address: the event carries a clean
    address, or the record is rejected with a reason; never a crash."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.jsonl"
        record = good_record(1)
        record["data"]["identifiers"] = {"email": address}
        path.write_bytes(orjson.dumps(record) + b"\n" + good_line(2) + b"\n")
        summary = check(["backfill", "--dry-run"], path)
        assert summary["records"]["read"] == 2
        for event in _dry_run_events(path):
            email = event["context"]["traits"]["email"]
            assert not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in email)


# -- hand-written cases --------------------------------------------------------------------


def test_truncated_gzip_keeps_what_came_before_the_cut(tmp_path: Path) -> None:
    rng = random.Random(4)
    lines = [orjson.dumps(good_record(n, subject=rng.randbytes(60).hex())) for n in range(400)]
    packed = gzip.compress(b"\n".join(lines) + b"\n")
    path = tmp_path / "export.jsonl.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    summary = check(["validate"], path)
    [entry] = summary["rejects"]
    assert entry["reason"].startswith("file truncated")
    events = summary["events"]["total"]
    assert 100 < events < 400
    assert entry["line"] == events + 1 or entry["line"] == events


def test_invalid_utf8_and_nul_bytes_reject_only_their_records(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_bytes(
        good_line(1)
        + b"\n"
        + b'{"event_id": "bad-\xff\xfe", "metric": "delivered"}\n'
        + good_line(2)
        + b"\n"
        + b"\x00\x00\x00\x00\n"
        + good_line(3).replace(b'"good-3"', b'"good\x00-3"')
        + b"\n"
        + good_line(4)
        + b"\n"
    )
    summary = check(["validate"], path)
    assert summary["events"]["total"] == 3
    assert {(e["line"], e["reason"].split(":")[0]) for e in summary["rejects"]} == {
        (2, "invalid UTF-8"),
        (4, "malformed JSON"),
        (5, "malformed JSON"),
    }


def test_csv_with_nul_bytes_invalid_utf8_and_ragged_rows(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    header = b"Event ID,Metric,Timestamp,Customer ID,Recipient,Delivery ID\n"
    row = b"E%d,delivered,2025-07-02T09:00:%02dZ,u%d,a%d@example.com,D%d\n"
    path.write_bytes(
        header
        + row % (1, 1, 1, 1, 1)
        + b"E2,deli\x00vered,2025-07-02T09:00:04Z,u2,a2@example.com,D2\n"
        + b"E3,delivered,2025-07-02T09:00:04Z,u3,a3\xff@example.com,D3\n"
        + b"short,row\n"
        + b"E5,delivered,2025-07-02T09:00:04Z,u5,a5@example.com,D5,extra,fields\n"
        + row % (6, 6, 6, 6, 6)
        + b"E7,delivered,2025-07-02T09:00:07Z,u7,a7\x00@example.com,D7\n"
        + row % (8, 8, 8, 8, 8)
    )
    summary = check(["validate"], path)
    assert summary["events"]["total"] == 3  # rows 1, 6 and 8
    assert sorted(e["line"] for e in summary["rejects"]) == [3, 4, 5, 6, 8]


def test_deeply_nested_json(tmp_path: Path) -> None:
    deep_object = json.loads('{"a":' * 300 + "1" + "}" * 300)  # orjson reads it, can't write it
    record = good_record(2)
    record["data"]["custom"] = deep_object
    path = tmp_path / "export.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps(good_record(1)),
                json.dumps(record),
                "[" * 100_000 + "]" * 100_000,
                json.dumps([good_record(3), deep_object]),
                json.dumps([good_record(4), [[[[[]]]]]]),
                json.dumps(good_record(5)),
            ]
        )
        + "\n"
    )
    summary = check(["validate"], path)
    assert summary["events"]["total"] == 5
    assert sorted(e["line"] for e in summary["rejects"]) == [3, 4, 5]


def test_deeply_nested_json_document(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(
        "[\n" + json.dumps(good_record(1)) + ",\n" + "[" * 50_000 + "]" * 50_000 + "\n]"
    )
    summary = check(["validate"], path)
    assert summary["events"]["total"] == 1
    assert [e["reason"].split(":")[0] for e in summary["rejects"]] == ["malformed JSON"]


def test_values_that_would_push_an_event_over_32_kb(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    lines = [good_line(1)]
    for number, subject in enumerate(["x" * 40_000, "é" * 16_000, "\u2603" * 11_000], 2):
        lines.append(orjson.dumps(good_record(number, subject=subject)))
    lines.append(orjson.dumps(good_record(9, subject="y" * 30_000)))  # fits: kept
    path.write_bytes(b"\n".join(lines) + b"\n")
    summary = check(["validate"], path)
    assert summary["events"]["total"] == 2
    assert sorted(e["line"] for e in summary["rejects"]) == [2, 3, 4]
    assert {e["reason"].split(":")[0] for e in summary["rejects"]} == {"event over 32 KB"}
    for event in _dry_run_events(path):
        assert len(orjson.dumps(event)) <= 32 * 1024


def test_timestamps_at_the_edges(tmp_path: Path) -> None:
    values: list[Any] = [
        0,
        -1,
        -1e12,
        253402300800,
        "0000-01-01T00:00:00Z",
        "0001-01-01",
        "9999-12-31T23:59:59Z",
        "NaN",
        "Infinity",
        1e308,
        "",
        None,
        True,
        [],
    ]
    path = tmp_path / "export.jsonl"
    lines = [json.dumps(good_record(n, **{}) | {"timestamp": v}) for n, v in enumerate(values)]
    path.write_text("\n".join([*lines, json.dumps(good_record(99))]) + "\n")
    summary = check(["validate"], path)
    assert summary["events"]["total"] == 1
    assert sorted(e["line"] for e in summary["rejects"]) == list(range(1, len(values) + 1))


# -- size: no hang, bounded memory ---------------------------------------------------------


def _peak_rss_mib(args: list[str], tmp_path: Path) -> tuple[int, float, dict[str, Any]]:
    """Run emailsrc in its own process; its exit code, peak RSS and JSON summary."""
    out = tmp_path / "stdout.json"
    with out.open("w") as stdout:
        process = subprocess.Popen(
            cp.command(*args, "--json", "--quiet"),
            env=cp.emailsrc_env(tmp_path, write_key=None),
            stdout=stdout,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        assert process.stderr is not None
        err = process.stderr.read().decode()
        process.stderr.close()
    assert cp.no_traceback(err), err
    return process.returncode, usage.ru_maxrss / 1024, json.loads(out.read_text())


@pytest.mark.timeout(180)
def test_ten_megabyte_lines_do_not_grow_memory(tmp_path: Path) -> None:
    """One 10 MB line or five of them: the same peak, because one record is held at a
    time. Each big record is rejected (over 32 KB once it carries the value) or sent."""
    junk = "z" * (10 * 1024 * 1024)
    peaks: list[float] = []
    for count in (1, 5):
        path = tmp_path / f"big-{count}.jsonl"
        with path.open("w") as out:
            for number in range(count):
                out.write(json.dumps(good_record(number)) + "\n")
                out.write(json.dumps(good_record(100 + number, subject=junk)) + "\n")
        code, peak, summary = _peak_rss_mib(["validate", str(path)], tmp_path)
        assert code == 1 and summary["balanced"] is True
        assert summary["events"]["total"] == count
        assert summary["records"]["rejected_by_reason"] == {"event over 32 KB": count}
        peaks.append(peak)
    assert peaks[1] < peaks[0] + 40, peaks
    assert peaks[1] < 400, peaks


@pytest.mark.timeout(180)
def test_a_million_column_csv_header(tmp_path: Path) -> None:
    """A 1,000,000-column header: read in linear time; rows are processed one at a time
    (2 rows or 8, the same peak); the short row is rejected with its line."""
    columns = ["Event ID", "Metric", "Timestamp", "Customer ID", "Recipient", "Delivery ID"]
    width = 1_000_000
    header = ",".join(columns + [f"extra_{n}" for n in range(width - len(columns))])
    padding = "," * (width - len(columns))
    peaks: list[float] = []
    for rows in (2, 8):
        path = tmp_path / f"wide-{rows}.csv"
        with path.open("w") as out:
            out.write(header + "\n")
            for n in range(rows):
                out.write(f"E{n},delivered,2025-07-02T09:00:04Z,u{n},a{n}@example.com,D{n}")
                out.write(padding + "\n")
            out.write("E99,delivered,2025-07-02T09:00:04Z,u99,a99@example.com,D99\n")
        code, peak, summary = _peak_rss_mib(["validate", str(path)], tmp_path)
        assert code == 1 and summary["balanced"] is True
        assert summary["events"]["total"] == rows
        assert summary["problems"] == [
            f"{path}:{rows + 2}: wrong number of fields: row has 6, header has {width}"
        ]
        peaks.append(peak)
    assert peaks[1] < peaks[0] * 1.3, peaks


def test_a_file_without_newlines_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """A 100 MB file with no newline at all: one record over the 64 MiB record limit,
    rejected, read in bounded memory (the process runs under a 1 GiB address-space cap)."""
    path = tmp_path / "one-line.jsonl"
    with path.open("wb") as out:
        out.write(good_line(1) + b"\n")
        chunk = b"q" * (1024 * 1024)
        for _ in range(100):
            out.write(chunk)
    limit = 1024 * 1024 * 1024

    def capped() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = cp.run(
        ["validate", str(path), "--json", "--quiet"],
        cp.emailsrc_env(tmp_path, write_key=None),
        preexec_fn=capped,
    )
    assert cp.no_traceback(result.stderr), result.stderr
    summary = cp.summary(result)
    assert result.returncode == 1 and summary["balanced"] is True
    assert summary["events"]["total"] == 1
    assert summary["problems"] == [f"{path}:2: record too large: over 64 MiB"]
