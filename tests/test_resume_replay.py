"""The ledger as a user meets it: resume after a crash or Ctrl-C, dedupe across runs,
replay a time window, concurrent runs, and a ledger that starts as an empty file.

Everything goes to the local Segment-compatible server (tests/fake_segment.py). The crash
and signal tests run `python -m emailsrc` as a real process and kill it while it sends.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

import emailsrc.ledger as ledger_module
from emailsrc.app import app
from emailsrc.ledger import Destination, Ledger
from emailsrc.secrets import WriteKey
from emailsrc.segment import message_id, message_namespace
from fake_segment import FakeSegment

SAMPLES = Path(__file__).resolve().parent.parent / "sample_exports"
CUSTOMERIO = sorted(str(p) for p in SAMPLES.glob("customerio_*"))
JAN_1_2025 = 1735689600  # unix seconds
# Crash runs: 1,600 events at 800/s are 8 batches of 200 (a batch holds a quarter second
# at the rate), about two seconds of sending with 4 batches in flight.
CRASH_EVENTS = 1600
CRASH_RATE = 800
CRASH_BATCH = 200
CONCURRENCY = 4
LATENCY = 0.15
CLEAN_ENV = ("SEGMENT_WRITE_KEY", "SEGMENT_ENDPOINT", "EMAILSRC_STATE", "EMAILSRC_RATE")


# -- inputs ---------------------------------------------------------------------------------


def webhook(number: int, metric: str, timestamp: int, *, prefix: str = "ev") -> dict[str, Any]:
    """One Customer.io reporting-webhook record with a unique event_id."""
    user = f"user-{number % 97}"
    data: dict[str, Any] = {
        "identifiers": {"id": user, "email": f"{user}@example.com"},
        "delivery_id": f"dlv-{number}",
        "recipient": f"{user}@example.com",
        "campaign_id": 7,
        "subject": "Hello",
    }
    if metric == "clicked":
        data |= {"href": "https://example.com/pricing", "link_id": 1}
    return {
        "event_id": f"{prefix}-{number:06d}-{metric}",
        "object_type": "email",
        "metric": metric,
        "timestamp": timestamp,
        "data": data,
    }


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def deliveries(numbers: Iterable[int]) -> list[dict[str, Any]]:
    return [webhook(n, "delivered", JAN_1_2025 + n) for n in numbers]


# -- running the command --------------------------------------------------------------------


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(app, list(args))


def run_json(runner: CliRunner, *args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, [*args, "--json", "--quiet"])
    assert result.stdout.strip(), result.output
    return result.exit_code, json.loads(result.stdout)


def sending(server: FakeSegment, state: Path, *, key: str | None = None) -> list[str]:
    return ["--write-key", key or server.write_key, "--endpoint", server.url, "--state", str(state)]


def subprocess_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    return env


# `python -m emailsrc ARGS`, with Ctrl-C handled as in a terminal even when the tests run
# as a background job (which starts every child with SIGINT ignored).
LAUNCH = """
import runpy, signal
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
runpy.run_module("emailsrc", run_name="__main__", alter_sys=True)
"""


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def planned_ids(runner: CliRunner, tmp_path: Path, key: str, *files: Path) -> list[str]:
    """The messageIds a backfill to this write key sends, from a dry run on a fresh ledger."""
    output = tmp_path / f"plan-{len(list(tmp_path.iterdir()))}.jsonl"
    fresh = tmp_path / "never-created.sqlite3"
    result = invoke(
        runner,
        "backfill",
        *map(str, files),
        "--dry-run",
        "--write-key",
        key,
        "--state",
        str(fresh),
        "--output",
        str(output),
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert not fresh.exists()
    return [
        event["messageId"]
        for line in output.read_bytes().splitlines()
        for event in orjson.loads(line)["batch"]
    ]


def acknowledged(state: Path, key: str, endpoint: str) -> set[str]:
    """The messageIds the ledger records as acknowledged by this destination (read-only,
    after checking the file is intact)."""
    write_key = WriteKey(key)
    namespace = message_namespace(write_key, None)
    with Ledger.open(state, readonly=True) as ledger:
        assert ledger.integrity_ok()
        destination = ledger.find_destination(
            Destination(endpoint, write_key.fingerprint, str(namespace))
        )
        if destination is None:
            return set()
        stored = list(ledger.select_events(None, None, None))
        sent = ledger.sent_among(destination, [event.key_hash for event in stored])
    return {message_id(namespace, event.key) for event in stored if event.key_hash in sent}


def status(runner: CliRunner, state: Path) -> dict[str, Any]:
    result = invoke(runner, "status", "--json", "--state", str(state))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def fingerprint(paths: Iterable[Path]) -> dict[str, str | None]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None
        for path in paths
    }


# -- crash and resume -----------------------------------------------------------------------


@pytest.mark.parametrize("acks_before_kill", [0, 1, 3, 6])
def test_kill_9_then_the_same_backfill_sends_only_what_was_not_acknowledged(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment, acks_before_kill: int
) -> None:
    server = segment_server
    server.set_faults(latency=LATENCY)
    export = write_jsonl(tmp_path / "export.jsonl", deliveries(range(CRASH_EVENTS)))
    expected = planned_ids(runner, tmp_path, server.write_key, export)
    assert len(set(expected)) == CRASH_EVENTS
    state = tmp_path / "state" / "ledger.sqlite3"
    args = [
        "backfill",
        str(export),
        *sending(server, state),
        "--rate",
        str(CRASH_RATE),
        "--concurrency",
        str(CONCURRENCY),
        "--quiet",
    ]

    crashing = start(*args)
    if acks_before_kill:
        wait_for(
            lambda: (
                len(server.accepted_requests) >= acks_before_kill or crashing.poll() is not None
            ),
            f"{acks_before_kill} acknowledged requests",
        )
    else:  # as soon as the ledger is in WAL mode: reading and planning, nothing sent yet
        # (a kill while the file is being created: test_killed_while_creating_the_ledger)
        wal = state.with_name(state.name + "-wal")
        wait_for(lambda: wal.exists() or crashing.poll() is not None, "the ledger to open")
    crashing.kill()
    crashing.communicate(timeout=10)
    assert crashing.returncode == -signal.SIGKILL, "the run ended before the kill"
    time.sleep(LATENCY + 0.3)  # requests the server was still answering are settled
    received_at_kill = server.received
    recorded = acknowledged(state, server.write_key, server.url)

    # Nothing is marked sent without a 2xx, and what the ledger missed is at most the
    # batches that were in flight when the process died.
    assert recorded <= set(received_at_kill)
    in_flight = set(received_at_kill) - recorded
    assert len(in_flight) <= CONCURRENCY * CRASH_BATCH
    if acks_before_kill:
        runs = status(runner, state)["runs"]
        assert runs[0]["status"] == "crashed"

    resumed = start(*args, "--json")
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    summary = json.loads(out)
    assert summary["events"]["already_sent"] == len(recorded)
    assert summary["events"]["sent"] == CRASH_EVENTS - len(recorded)

    received = server.received
    assert set(received) == set(expected)
    twice = {mid for mid, count in received.items() if count > 1}
    assert twice == in_flight  # only the batches in flight at the kill were sent again
    assert max(received.values()) <= 2
    assert acknowledged(state, server.write_key, server.url) == set(expected)
    (destination,) = status(runner, state)["destinations"]
    assert (destination["sent"], destination["pending"], destination["failed"]) == (
        CRASH_EVENTS,
        0,
        0,
    )


def test_a_finished_backfill_run_again_sends_nothing_and_says_so(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    state = tmp_path / "ledger.sqlite3"
    code, first = run_json(
        runner, "backfill", *CUSTOMERIO, *sending(segment_server, state), "--rate", "0"
    )
    assert code == 0 and first["events"]["sent"] > 0
    received = segment_server.received
    code, again = run_json(
        runner, "backfill", *CUSTOMERIO, *sending(segment_server, state), "--rate", "0"
    )
    assert code == 0
    total = first["events"]["sent"]
    assert again["events"]["sent"] == 0 and again["events"]["already_sent"] == total
    assert f"all {total:,} events already sent to this destination" in again["notes"]
    assert again["balanced"] and again["batches"] == 0
    assert segment_server.received == received
    human = invoke(runner, "backfill", *CUSTOMERIO, *sending(segment_server, state))
    assert human.exit_code == 0 and f"all {total:,} events already sent" in human.output


@pytest.mark.parametrize(
    ("signum", "as_json"),
    [(signal.SIGTERM, True), (signal.SIGINT, False)],
    ids=["SIGTERM", "SIGINT"],
)
def test_ctrl_c_and_sigterm_settle_the_batches_in_flight_and_exit_130(
    runner: CliRunner,
    tmp_path: Path,
    segment_server: FakeSegment,
    signum: int,
    as_json: bool,
) -> None:
    server = segment_server
    server.set_faults(latency=LATENCY)
    export = write_jsonl(tmp_path / "export.jsonl", deliveries(range(CRASH_EVENTS)))
    expected = planned_ids(runner, tmp_path, server.write_key, export)
    state = tmp_path / "ledger.sqlite3"
    args = [
        "backfill",
        str(export),
        *sending(server, state),
        "--rate",
        str(CRASH_RATE),
        "--concurrency",
        str(CONCURRENCY),
    ]
    stopping = start(*args, *(["--json"] if as_json else []))
    wait_for(
        lambda: len(server.accepted_requests) >= 2 or stopping.poll() is not None,
        "two acknowledged requests",
    )
    stopping.send_signal(signum)
    out, err = stopping.communicate(timeout=30)
    assert stopping.returncode == 130, err

    recorded = acknowledged(state, server.write_key, server.url)
    # The batches in flight were finished and recorded: the ledger has every event the
    # server acknowledged, so running again sends none of them twice.
    assert recorded == set(server.received)
    assert 0 < len(recorded) < CRASH_EVENTS
    note = f"interrupted after {len(recorded):,} events were acknowledged and recorded"
    if as_json:
        summary = json.loads(out)
        assert summary["interrupted"] and summary["exit_code"] == 130
        assert summary["events"]["sent"] == len(recorded)
        assert any(
            n.startswith(note) and "run the same command again" in n for n in summary["notes"]
        )
    else:
        assert note in err and "run the same command again to send the rest" in err
    assert status(runner, state)["runs"][0]["status"] == "interrupted"

    resumed = start(*args, "--quiet")
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert server.received == Counter({mid: 1 for mid in expected})


def test_a_second_run_on_a_busy_ledger_refuses_with_one_line(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    server = segment_server
    server.set_faults(latency=LATENCY)
    export = write_jsonl(tmp_path / "export.jsonl", deliveries(range(CRASH_EVENTS)))
    state = tmp_path / "ledger.sqlite3"
    first = start(
        "backfill", str(export), *sending(server, state), "--rate", str(CRASH_RATE), "--quiet"
    )
    try:
        wait_for(lambda: len(server.accepted_requests) >= 1, "the first run to send")
        for command in (["backfill", str(export)], ["replay", "--since", "2024-01-01"]):
            second = invoke(runner, *command, *sending(server, state))
            assert second.exit_code == 5, second.output
            assert f"another emailsrc run (pid {first.pid}) is using {state}" in second.output
            assert second.output.count("\n") == 1, second.output  # one line, no table
        # Reading needs no lock: status and dry runs work while the run goes on.
        assert status(runner, state)["runs"][0]["status"] == "running"
        code, plan = run_json(runner, "backfill", str(export), "--dry-run", *sending(server, state))
        assert code == 0 and plan["events"]["total"] == CRASH_EVENTS
    finally:
        _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert len(server.received) == CRASH_EVENTS
    assert max(server.received.values()) == 1


# -- dedupe across runs ---------------------------------------------------------------------


def test_overlapping_exports_send_each_event_once(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    # Two exports of overlapping date ranges (events 0-599 and 300-899) in one run, then
    # a third (600-1199) in a later run.
    first = write_jsonl(tmp_path / "jan-01-10.jsonl", deliveries(range(0, 600)))
    second = write_jsonl(tmp_path / "jan-05-15.jsonl", deliveries(range(300, 900)))
    third = write_jsonl(tmp_path / "jan-10-20.jsonl", deliveries(range(600, 1200)))
    state = tmp_path / "ledger.sqlite3"
    code, one = run_json(
        runner, "backfill", str(first), str(second), *sending(segment_server, state), "--rate", "0"
    )
    assert code == 0
    assert (one["events"]["sent"], one["events"]["duplicates"]) == (900, 300)
    code, two = run_json(
        runner, "backfill", str(third), *sending(segment_server, state), "--rate", "0"
    )
    assert code == 0
    assert (two["events"]["sent"], two["events"]["already_sent"]) == (600 - 300, 300)
    expected = planned_ids(runner, tmp_path, segment_server.write_key, first, second, third)
    assert segment_server.received == Counter({mid: 1 for mid in expected})
    assert len(expected) == 1200


def test_late_metrics_in_a_newer_export_send_only_the_new_events(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    # The webhook log exported on Jan 2 has the deliveries; the one exported a week later
    # has them again plus the opens and clicks that came in since.
    numbers = range(200)
    early = write_jsonl(tmp_path / "webhooks-0102.jsonl", deliveries(numbers))
    late_metrics = [webhook(n, "opened", JAN_1_2025 + 86400 + n) for n in numbers[::2]]
    late_metrics += [webhook(n, "clicked", JAN_1_2025 + 90000 + n) for n in numbers[::5]]
    later = write_jsonl(tmp_path / "webhooks-0109.jsonl", deliveries(numbers) + late_metrics)
    state = tmp_path / "ledger.sqlite3"
    assert run_json(runner, "backfill", str(early), *sending(segment_server, state))[0] == 0
    code, summary = run_json(runner, "backfill", str(later), *sending(segment_server, state))
    assert code == 0
    assert summary["events"]["already_sent"] == 200
    assert summary["events"]["sent"] == len(late_metrics) == 100 + 40
    names = Counter(event["event"] for event in segment_server.events)
    assert names == {"Email Delivered": 200, "Email Opened": 100, "Email Link Clicked": 40}
    assert max(segment_server.received.values()) == 1


def write_deliveries_csv(path: Path, rows: int, *, with_engagement: bool) -> Path:
    header = [
        "delivery_id",
        "customer_id",
        "recipient",
        "type",
        "subject",
        "campaign_id",
        "campaign_name",
        "sent_at",
        "delivered_at",
        "opened_at",
        "clicked_at",
    ]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for n in range(rows):
            day = f"2025-02-{1 + n % 28:02d}"
            opened = f"{day}T10:{n % 60:02d}:00Z" if with_engagement and n % 2 == 0 else ""
            clicked = f"{day}T11:{n % 60:02d}:00Z" if with_engagement and n % 4 == 0 else ""
            writer.writerow(
                [
                    f"dlv-{n}",
                    f"user-{n}",
                    f"user-{n}@example.com",
                    "email",
                    "Hello",
                    "12",
                    "Welcome",
                    f"{day}T09:00:00Z",
                    f"{day}T09:00:0{n % 10}Z",
                    opened,
                    clicked,
                ]
            )
    return path


def test_a_newer_deliveries_export_with_opens_and_clicks_sends_only_those(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    older = write_deliveries_csv(tmp_path / "deliveries-old.csv", 120, with_engagement=False)
    newer = write_deliveries_csv(tmp_path / "deliveries-new.csv", 120, with_engagement=True)
    state = tmp_path / "ledger.sqlite3"
    code, first = run_json(runner, "backfill", str(older), *sending(segment_server, state))
    assert code == 0 and first["events"]["sent"] == 120
    code, second = run_json(runner, "backfill", str(newer), *sending(segment_server, state))
    assert code == 0
    assert second["events"]["by_name"] == {
        "Email Delivered": 120,
        "Email Opened": 60,
        "Email Link Clicked": 30,
    }
    assert (second["events"]["already_sent"], second["events"]["sent"]) == (120, 90)
    assert max(segment_server.received.values()) == 1
    assert len(segment_server.received) == 210


# -- replay -----------------------------------------------------------------------------------


MARCH_1 = int(datetime(2025, 3, 1, tzinfo=UTC).timestamp())
METRICS = ("delivered", "opened", "clicked", "bounced")


@pytest.fixture
def hourly(runner: CliRunner, tmp_path: Path, segment_server: FakeSegment) -> Path:
    """48 events an hour apart from 2025-03-01T00:00Z, shuffled in the file, backfilled.
    Returns the ledger; the server has been reset."""
    records = [webhook(i, METRICS[i % 4], MARCH_1 + i * 3600) for i in range(48)]
    random.Random(4).shuffle(records)
    export = write_jsonl(tmp_path / "hourly.jsonl", records)
    state = tmp_path / "ledger.sqlite3"
    code, summary = run_json(
        runner, "backfill", str(export), *sending(segment_server, state), "--rate", "0"
    )
    assert code == 0 and summary["events"]["sent"] == 48
    return state


def hours(events: Iterable[dict[str, Any]]) -> list[int]:
    """Each event's hour since 2025-03-01T00:00Z, in the order given."""
    start = datetime(2025, 3, 1, tzinfo=UTC)
    return [
        int(
            (datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) - start)
            / timedelta(hours=1)
        )
        for e in events
    ]


def test_replay_sends_a_window_in_time_order_with_the_backfill_message_ids(
    runner: CliRunner, segment_server: FakeSegment, hourly: Path
) -> None:
    backfilled = {e["timestamp"]: e["messageId"] for e in segment_server.events}
    segment_server.reset()
    # Since inclusive (naive = UTC), until exclusive (the same instant written at +02:00).
    code, summary = run_json(
        runner,
        "replay",
        "--since",
        "2025-03-01T06:00:00",
        "--until",
        "2025-03-01T20:00:00+02:00",
        *sending(segment_server, hourly),
        "--rate",
        "40",
        "--concurrency",
        "1",
    )
    assert code == 0, summary
    events = segment_server.events
    assert hours(events) == list(range(6, 18))  # in time order, not file order
    assert all(backfilled[e["timestamp"]] == e["messageId"] for e in events)
    assert summary["events"]["sent"] == 12 and summary["batches"] > 1
    # Replayed even though the destination had them: Segment will drop them, so say so.
    assert summary["recently_sent"] == 12
    assert any(
        "less than 24 hours ago" in note and "drop them as duplicates" in note
        for note in summary["notes"]
    )
    code, day_two = run_json(
        runner, "replay", "--since", "2025-03-02", "--dry-run", "--state", str(hourly)
    )
    assert code == 0 and day_two["events"]["total"] == 24


def test_replay_batches_follow_event_time(runner: CliRunner, tmp_path: Path, hourly: Path) -> None:
    output = tmp_path / "replay.jsonl"
    code, summary = run_json(
        runner,
        "replay",
        "--since",
        "2025-03-01",
        "--dry-run",
        "--rate",
        "20",
        "--state",
        str(hourly),
        "--output",
        str(output),
    )
    assert code == 0 and summary["batches"] == 10
    sent = [e for line in output.read_bytes().splitlines() for e in orjson.loads(line)["batch"]]
    assert hours(sent) == list(range(48))


@pytest.mark.parametrize(
    ("spelled", "names"),
    [
        (["opened", "email_link_clicked"], {"Email Opened", "Email Link Clicked"}),
        (["Email Delivered"], {"Email Delivered"}),
        (["Bounced,click"], {"Email Bounced", "Email Link Clicked"}),
    ],
)
def test_replay_only_some_event_names_spelled_loosely(
    runner: CliRunner,
    segment_server: FakeSegment,
    hourly: Path,
    spelled: list[str],
    names: set[str],
) -> None:
    segment_server.reset()
    flags = [part for name in spelled for part in ("--event", name)]
    code, summary = run_json(
        runner,
        "replay",
        "--since",
        "2025-03-01",
        *flags,
        *sending(segment_server, hourly),
        "--rate",
        "0",
    )
    assert code == 0
    assert {e["event"] for e in segment_server.events} == names
    assert len(segment_server.events) == 12 * len(names)
    assert set(summary["events"]["by_name"]) == names


def test_replay_refuses_unknown_names_and_empty_windows(runner: CliRunner, hourly: Path) -> None:
    result = invoke(
        runner,
        "replay",
        "--since",
        "2025-03-01",
        "--event",
        "clickety",
        "--dry-run",
        "--state",
        str(hourly),
    )
    assert result.exit_code == 2 and "unknown event name 'clickety'" in result.output
    result = invoke(
        runner,
        "replay",
        "--since",
        "2025-03-02",
        "--until",
        "2025-03-01",
        "--dry-run",
        "--state",
        str(hourly),
    )
    assert result.exit_code == 2 and "--until" in result.output
    result = invoke(
        runner,
        "replay",
        "--since",
        "7d",
        "--dry-run",
        "--state",
        str(hourly.with_name("missing.sqlite3")),
    )
    assert result.exit_code == 5 and "run a backfill first" in result.output


def test_replay_since_a_relative_span(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    now = int(time.time())
    records = [
        webhook(1, "delivered", now - 2 * 3600),
        webhook(2, "opened", now - 30 * 3600),
        webhook(3, "clicked", now - 10 * 86400),
    ]
    export = write_jsonl(tmp_path / "recent.jsonl", records)
    state = tmp_path / "ledger.sqlite3"
    assert run_json(runner, "backfill", str(export), *sending(segment_server, state))[0] == 0
    for since, until, expected in [
        ("12h", None, {"Email Delivered"}),
        ("1d", None, {"Email Delivered"}),
        ("3d", "1d", {"Email Opened"}),
        ("11d", "3h", {"Email Opened", "Email Link Clicked"}),
        ("90m", None, set()),
    ]:
        window = ["--since", since, *(["--until", until] if until else [])]
        code, summary = run_json(runner, "replay", *window, "--dry-run", "--state", str(state))
        assert code == 0
        assert set(summary["events"]["by_name"]) == expected, (since, until)
        if not expected:
            assert "the ledger holds no events in this window" in summary["notes"]


def test_replay_to_another_source_and_only_one_destination(
    runner: CliRunner, segment_server: FakeSegment, hourly: Path
) -> None:
    with FakeSegment("another-source-key") as other:
        code, summary = run_json(
            runner,
            "replay",
            "--since",
            "2025-03-01",
            "--until",
            "2025-03-02",
            *sending(other, hourly),
            "--only-destination",
            "Amplitude",
            "--rate",
            "0",
        )
        assert code == 0 and summary["events"]["sent"] == 24
        assert summary["recently_sent"] == 0  # a new destination: nothing to warn about
        events = other.events
        assert len(events) == 24
        for event in events:
            assert event["integrations"]["All"] is False
            assert event["integrations"]["Amplitude"] is True
        # Another source gets other messageIds: Segment's duplicate filter spans sources.
        original = planned_ids(
            runner, hourly.parent, segment_server.write_key, hourly.parent / "hourly.jsonl"
        )
        assert not set(other.received) & set(original)
        # The same replay again re-sends them, with the same ids, and warns.
        code, again = run_json(
            runner,
            "replay",
            "--since",
            "2025-03-01",
            "--until",
            "2025-03-02",
            *sending(other, hourly),
            "--rate",
            "0",
        )
        assert code == 0 and again["recently_sent"] == 24
        assert set(other.received.values()) == {2}
    destinations = status(runner, hourly)["destinations"]
    assert [(d["sent"], d["pending"], d["failed"]) for d in destinations] == [
        (48, 0, 0),
        (24, 0, 0),
    ]


def test_no_warning_when_the_destination_got_them_more_than_a_day_ago(
    runner: CliRunner,
    tmp_path: Path,
    segment_server: FakeSegment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    export = write_jsonl(tmp_path / "export.jsonl", deliveries(range(20)))
    state = tmp_path / "ledger.sqlite3"
    real_now = ledger_module._now_ms
    with monkeypatch.context() as patch:  # the backfill happened 25 hours ago
        patch.setattr(ledger_module, "_now_ms", lambda: real_now() - 25 * 3600 * 1000)
        assert run_json(runner, "backfill", str(export), *sending(segment_server, state))[0] == 0
    code, summary = run_json(
        runner, "replay", "--since", "2024-12-01", *sending(segment_server, state)
    )
    assert code == 0 and summary["events"]["sent"] == 20
    assert summary["recently_sent"] == 0
    assert not any("24 hours" in note for note in summary["notes"])


# -- dry runs read the ledger without writing or locking it ------------------------------------


def test_dry_runs_read_the_ledger_without_writing_or_locking_it(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    sent_before = write_jsonl(tmp_path / "a.jsonl", deliveries(range(30)))
    new = write_jsonl(tmp_path / "b.jsonl", deliveries(range(30, 50)))
    state = tmp_path / "ledger.sqlite3"
    assert run_json(runner, "backfill", str(sent_before), *sending(segment_server, state))[0] == 0
    new_ids = planned_ids(runner, tmp_path, segment_server.write_key, new)
    files = [state, state.with_name(state.name + "-wal")]
    # Another run holds the ledger (its lock, a writable connection) the whole time.
    with Ledger.open(state):
        before, snapshot = fingerprint(files), status(runner, state)
        output = tmp_path / "plan.jsonl"
        code, plan = run_json(
            runner,
            "backfill",
            str(sent_before),
            str(new),
            "--dry-run",
            *sending(segment_server, state),
            "--output",
            str(output),
        )
        assert code == 0, plan
        assert (plan["events"]["already_sent"], plan["events"]["to_send"]) == (30, 20)
        planned = [
            e["messageId"]
            for line in output.read_bytes().splitlines()
            for e in orjson.loads(line)["batch"]
        ]
        assert planned == new_ids  # exactly what a real run would send
        code, plan = run_json(
            runner, "backfill", str(sent_before), "--dry-run", *sending(segment_server, state)
        )
        assert code == 0 and "all 30 events already sent to this destination" in plan["notes"]
        code, replay = run_json(
            runner, "replay", "--since", "2024-01-01", "--dry-run", *sending(segment_server, state)
        )
        assert code == 0 and replay["recently_sent"] == 30
        code, replay = run_json(
            runner,
            "replay",
            "--since",
            "2024-01-01",
            "--dry-run",
            *sending(segment_server, state, key="a-source-never-seen"),
        )
        assert code == 0 and replay["recently_sent"] == 0
        assert fingerprint(files) == before
        assert status(runner, state) == snapshot  # no destination, run or event added
    assert segment_server.accepted_events == 30


# -- backfill --since / --until -----------------------------------------------------------------


def test_backfill_since_until_keep_only_that_event_time(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    # One event per hour over two days; the window is the 24 hours of Jan 1 from 06:00.
    records = [webhook(i, "delivered", JAN_1_2025 + i * 3600) for i in range(48)]
    export = write_jsonl(tmp_path / "export.jsonl", records)
    state = tmp_path / "ledger.sqlite3"
    code, summary = run_json(
        runner,
        "backfill",
        str(export),
        *sending(segment_server, state),
        "--since",
        "2025-01-01T06:00:00Z",
        "--until",
        "2025-01-02T06:00Z",
    )
    assert code == 0 and summary["balanced"]
    assert summary["events"]["sent"] == 24
    assert summary["events"]["excluded_by_reason"] == {
        "before --since": 6,
        "at or after --until": 18,
    }
    stamps = sorted(e["timestamp"] for e in segment_server.events)
    assert stamps[0] == "2025-01-01T06:00:00.000Z" and stamps[-1] == "2025-01-02T05:00:00.000Z"
    assert status(runner, state)["events"]["total"] == 24
    result = invoke(
        runner,
        "backfill",
        str(export),
        "--dry-run",
        "--since",
        "2025-02-01",
        "--until",
        "2025-01-01",
    )
    assert result.exit_code == 2 and "must be after --since" in result.output


# -- the file itself ------------------------------------------------------------------------------


def test_a_ledger_that_starts_as_an_empty_file_is_migrated_and_used(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    state = tmp_path / "ledger.sqlite3"
    os.close(os.open(state, os.O_CREAT | os.O_WRONLY, 0o600))
    assert status(runner, state)["events"]["total"] == 0  # read as empty, left alone
    assert state.stat().st_size == 0
    code, summary = run_json(runner, "backfill", CUSTOMERIO[0], *sending(segment_server, state))
    assert code == 0 and summary["events"]["sent"] > 0
    data = status(runner, state)
    assert data["schema_version"] >= 1
    assert data["events"]["total"] == summary["events"]["sent"]
    assert (state.stat().st_mode & 0o777) == 0o600
    with Ledger.open(state, readonly=True) as ledger:
        assert ledger.integrity_ok()


def test_a_new_ledger_and_its_directory_are_private(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    state = tmp_path / "new" / "dir" / "ledger.sqlite3"
    assert run_json(runner, "backfill", CUSTOMERIO[0], *sending(segment_server, state))[0] == 0
    assert (state.stat().st_mode & 0o777) == 0o600
    assert (state.parent.stat().st_mode & 0o777) == 0o700


# What a writer killed while it turns a new file into a ledger leaves: the switch to WAL
# writes page 1 through a rollback journal, so the file has a hot journal beside it.
KILLED_WHILE_CREATING = """
import os, signal, sqlite3, sys
path = sys.argv[1]
os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
conn = sqlite3.connect(path, isolation_level=None)
conn.execute("PRAGMA page_size = 16384")
conn.execute("PRAGMA cache_size = 1")  # pages reach the file before the commit, as a big one's
conn.execute("BEGIN IMMEDIATE")
conn.execute("CREATE TABLE t (x)")
conn.execute("INSERT INTO t VALUES (randomblob(200000))")
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_while_creating(state: Path) -> None:
    subprocess.run([sys.executable, "-c", KILLED_WHILE_CREATING, str(state)], check=False)
    assert state.with_name(state.name + "-journal").exists() and state.stat().st_size > 0


def test_killed_while_creating_the_ledger_the_next_run_repairs_it(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    state = tmp_path / "ledger.sqlite3"
    killed_while_creating(state)
    code, summary = run_json(runner, "backfill", CUSTOMERIO[0], *sending(segment_server, state))
    assert code == 0 and summary["events"]["sent"] > 0
    assert status(runner, state)["events"]["total"] == summary["events"]["sent"]


def test_killed_while_creating_the_ledger_status_and_dry_runs_see_it_empty(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    state = tmp_path / "ledger.sqlite3"
    killed_while_creating(state)
    assert status(runner, state)["events"]["total"] == 0
    code, plan = run_json(
        runner, "backfill", CUSTOMERIO[0], "--dry-run", *sending(segment_server, state)
    )
    assert code == 0 and plan["events"]["already_sent"] == 0


def test_an_existing_world_readable_file_is_made_private(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    state = tmp_path / "ledger.sqlite3"
    os.close(os.open(state, os.O_CREAT | os.O_WRONLY, 0o644))
    os.chmod(state, 0o644)
    assert run_json(runner, "backfill", CUSTOMERIO[0], *sending(segment_server, state))[0] == 0
    assert (state.stat().st_mode & 0o777) == 0o600


def test_replay_retries_and_exit_codes_are_those_of_backfill(
    runner: CliRunner, segment_server: FakeSegment, hourly: Path
) -> None:
    segment_server.reset()
    segment_server.set_faults(retry_after="0")
    segment_server.script(503, 429)  # two refusals, then accepted
    code, summary = run_json(
        runner,
        "replay",
        "--since",
        "2025-03-01",
        *sending(segment_server, hourly),
        "--rate",
        "0",
    )
    assert code == 0 and summary["retries"] == 2 and summary["events"]["sent"] == 48
    code, summary = run_json(
        runner,
        "replay",
        "--since",
        "2025-03-01",
        *sending(segment_server, hourly, key="wrong"),
        "--rate",
        "0",
    )
    assert code == 4 and summary["events"]["sent"] == 0
    assert "write key was rejected" in summary["error"]
