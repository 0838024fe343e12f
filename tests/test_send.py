"""Sending through the CLI to a local Segment-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from emailsrc.app import app
from emailsrc.segment import CUSTOMERIO_DESTINATIONS
from fake_segment import FakeSegment

SAMPLES = Path(__file__).resolve().parent.parent / "sample_exports"
CUSTOMERIO = sorted(str(p) for p in SAMPLES.glob("customerio_*"))
KEY = "test-write-key"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, segment_server: FakeSegment) -> Path:
    monkeypatch.setenv("EMAILSRC_STATE", str(tmp_path / "ledger.sqlite3"))
    monkeypatch.setenv("SEGMENT_WRITE_KEY", KEY)
    monkeypatch.setenv("SEGMENT_ENDPOINT", segment_server.url)
    monkeypatch.setenv("EMAILSRC_RATE", "0")
    return tmp_path


def backfill(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["backfill", *args, "--json"])
    assert result.stdout.strip(), result.output
    return result.exit_code, json.loads(result.stdout)


def planned_ids(tmp_path: Path, *files: str) -> list[str]:
    """The messageIds a dry run with the same key plans: what must arrive."""
    output = tmp_path / "plan.jsonl"
    code, _ = backfill(*files, "--dry-run", "--output", str(output))
    assert code == 0
    return [
        e["messageId"]
        for line in output.read_bytes().splitlines()
        for e in orjson.loads(line)["batch"]
    ]


@pytest.mark.parametrize("transport", ["http", "sdk"])
def test_backfill_delivers_every_event_exactly_once(
    env: Path, segment_server: FakeSegment, transport: str
) -> None:
    expected = planned_ids(env, *CUSTOMERIO)
    code, summary = backfill(*CUSTOMERIO, "--transport", transport)
    assert code == 0, summary
    received = segment_server.received
    assert set(received) == set(expected)
    assert all(count == 1 for count in received.values())
    events = summary["events"]
    assert events["sent"] == events["to_send"] == len(expected)
    assert events["failed"] == 0 and summary["balanced"]


def test_events_carry_what_segment_needs(env: Path, segment_server: FakeSegment) -> None:
    backfill(*CUSTOMERIO)
    requests = segment_server.accepted_requests
    assert requests
    for request in requests:
        assert request.sent_at  # set at each attempt, wall clock
    for event in segment_server.events:
        assert event["type"] == "track"
        assert event["timestamp"].endswith("Z") and len(event["timestamp"]) == 24
        assert event["properties"]["provider"] == "customerio"
        assert event["context"]["traits"]["email"]
        assert all(event["integrations"][name] is False for name in CUSTOMERIO_DESTINATIONS)


def test_only_destination_and_keep_customerio(env: Path, segment_server: FakeSegment) -> None:
    backfill(CUSTOMERIO[0], "--only-destination", "Amplitude", "--keep-customerio")
    integrations = segment_server.events[0]["integrations"]
    assert integrations == {"All": False, "Amplitude": True}


def test_a_second_run_sends_nothing(env: Path, segment_server: FakeSegment) -> None:
    _, first = backfill(*CUSTOMERIO)
    code, second = backfill(*CUSTOMERIO)
    assert code == 0
    assert second["events"]["sent"] == 0
    assert second["events"]["already_sent"] == first["events"]["sent"]
    assert any("already sent" in note for note in second["notes"])
    assert sum(segment_server.received.values()) == first["events"]["sent"]


def test_wrong_write_key_stops_with_exit_4_and_nothing_marked_sent(
    env: Path, segment_server: FakeSegment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "not-the-right-key-123")
    code, summary = backfill(*CUSTOMERIO)
    assert code == 4
    assert "write key was rejected" in summary["error"]
    assert "not-the-right-key-123" not in json.dumps(summary)
    assert summary["events"]["sent"] == 0
    monkeypatch.setenv("SEGMENT_WRITE_KEY", KEY)
    code, again = backfill(*CUSTOMERIO)
    assert code == 0 and again["events"]["already_sent"] == 0
    assert again["events"]["sent"] == again["events"]["to_send"] > 0


def test_a_400_isolates_the_bad_events_and_sends_the_rest(
    env: Path, segment_server: FakeSegment
) -> None:
    expected = planned_ids(env, *CUSTOMERIO)
    poisoned = expected[::17]
    segment_server.poison(*poisoned)
    code, summary = backfill(*CUSTOMERIO)
    assert code == 1  # some events failed
    assert summary["events"]["failed"] == len(poisoned)
    assert summary["events"]["sent"] == len(expected) - len(poisoned)
    assert set(segment_server.received) == set(expected) - set(poisoned)
    rejects = [json.loads(line) for line in Path(summary["rejects_path"]).read_text().splitlines()]
    failed_ids = {entry["event"]["messageId"] for entry in rejects if "event" in entry}
    assert failed_ids == set(poisoned)
    assert all(entry["file"] and entry["line"] for entry in rejects if "event" in entry)


def test_output_file_holds_what_was_posted(env: Path, segment_server: FakeSegment) -> None:
    output = env / "sent.jsonl"
    backfill(*CUSTOMERIO, "--output", str(output))
    written = [
        e["messageId"]
        for line in output.read_bytes().splitlines()
        for e in orjson.loads(line)["batch"]
    ]
    assert sorted(written) == sorted(segment_server.received)
