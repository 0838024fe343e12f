"""`emailsrc status`: what the ledger holds, per destination, and how the last runs ended."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from emailsrc.app import app
from fake_segment import FakeSegment

JAN_1_2025 = 1735689600
CLEAN_ENV = ("SEGMENT_WRITE_KEY", "SEGMENT_ENDPOINT", "EMAILSRC_STATE", "EMAILSRC_RATE")


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def export(path: Path) -> Path:
    """Deliveries and opens over two months: 20 in January, 10 in February."""
    lines = []
    for n in range(30):
        metric = "delivered" if n % 3 else "opened"
        when = JAN_1_2025 + (n if n < 20 else 31 * 86400 + n)
        user = f"user-{n}"
        lines.append(
            json.dumps(
                {
                    "event_id": f"ev-{n}",
                    "object_type": "email",
                    "metric": metric,
                    "timestamp": when,
                    "data": {
                        "identifiers": {"id": user, "email": f"{user}@example.com"},
                        "delivery_id": f"dlv-{n}",
                        "recipient": f"{user}@example.com",
                    },
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def backfill(runner: CliRunner, server: FakeSegment, state: Path, source: Path) -> int:
    result = runner.invoke(
        app,
        [
            "backfill",
            str(source),
            "--write-key",
            server.write_key,
            "--endpoint",
            server.url,
            "--state",
            str(state),
            "--rate",
            "0",
            "--quiet",
            "--json",
        ],
    )
    return result.exit_code


def status(runner: CliRunner, state: Path) -> dict[str, Any]:
    result = runner.invoke(app, ["status", "--json", "--state", str(state)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_status_counts_events_by_name_and_month_and_deliveries_by_state(
    runner: CliRunner, tmp_path: Path, segment_server: FakeSegment
) -> None:
    state = tmp_path / "ledger.sqlite3"
    source = export(tmp_path / "webhooks.jsonl")
    # One event is refused by the server (a 400 isolates it): it fails, the rest is sent.
    segment_server.reject_if(lambda event: event["properties"].get("email_id") == "dlv-4")
    assert backfill(runner, segment_server, state, source) == 1
    data = status(runner, state)
    assert data["events"]["total"] == 30
    assert data["events"]["by_name"] == {"Email Delivered": 20, "Email Opened": 10}
    assert data["events"]["by_month"] == {
        "2025-01": {"Email Delivered": 13, "Email Opened": 7},
        "2025-02": {"Email Delivered": 7, "Email Opened": 3},
    }
    (destination,) = data["destinations"]
    assert (destination["sent"], destination["pending"], destination["failed"]) == (29, 0, 1)
    assert sum(destination["failure_reasons"].values()) == 1
    assert "test-write-key" not in json.dumps(data)  # a fingerprint, never the key
    (run,) = data["runs"]
    assert run["command"] == "backfill" and run["status"] == "completed_with_failures"
    assert run["summary"]["events"]["sent"] == 29

    human = runner.invoke(app, ["status", "--state", str(state)])
    assert human.exit_code == 0
    for text in (
        "events stored: 30",
        "by month",
        "2025-02",
        "delivered",
        "opened",
        "destinations",
        "last runs",
        "completed_with_failures",
    ):
        assert text in human.output, text

    # The next run retries what failed, and only that.
    segment_server.reject_if(None)
    segment_server.reset()
    assert backfill(runner, segment_server, state, source) == 0
    assert len(segment_server.received) == 1
    (destination,) = status(runner, state)["destinations"]
    assert (destination["sent"], destination["pending"], destination["failed"]) == (30, 0, 0)
    assert [run["status"] for run in status(runner, state)["runs"]] == [
        "completed",
        "completed_with_failures",
    ]


def test_status_of_something_that_is_not_a_ledger_is_one_line_and_exit_5(
    runner: CliRunner, tmp_path: Path
) -> None:
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    result = runner.invoke(app, ["status", "--state", str(other)])
    assert result.exit_code == 5
    assert "not an emailsrc ledger" in result.output
    assert "Traceback" not in result.output
