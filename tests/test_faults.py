"""Server faults, alone and combined, against a real `emailsrc backfill` process.

The promise under test: every expected messageId reaches the server; an event fails only
when its batch's retry budget is really spent, and then it is in the summary, the rejects
file and the ledger as failed; and the summary agrees with what the server recorded
(sent == distinct messageIds accepted, batches == accepted requests, retries == requests
that were not accepted).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import cli_process as cp
from fake_segment import FakeSegment, Faults, Reply

pytestmark = pytest.mark.timeout(120)

# ~4.3 KB events: a 475 KB batch holds ~110 of them, so 1,600 events take ~15 requests
# even at --rate 0 (no client-side pacing, so tests stay fast).
PAD = 4000


def backfill(
    server: FakeSegment,
    tmp_path: Path,
    export: Path,
    *extra: str,
    env: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], str]:
    result = cp.run(
        [
            "backfill",
            str(export),
            "--endpoint",
            server.url,
            "--state",
            str(tmp_path / "ledger.sqlite3"),
            "--json",
            "--quiet",
            *extra,
        ],
        env or cp.emailsrc_env(tmp_path, **cp.FAST_RETRIES),
    )
    assert cp.no_traceback(result.stdout, result.stderr), result.stderr
    return result.returncode, cp.summary(result), result.stderr


def assert_summary_matches_server(report: dict[str, Any], server: FakeSegment) -> None:
    """The run's own account agrees with what the server recorded (no lost responses, no
    400 splits: then every batch is accepted at most once)."""
    assert report["balanced"] is True
    assert report["events"]["sent"] == len(server.received) == server.accepted_events
    assert report["batches"] >= len(server.accepted_requests)
    # Every attempt reached the server and was logged there, whatever its fate.
    assert report["retries"] == len(server.requests) - report["batches"]


@pytest.fixture
def many_batches(tmp_path: Path) -> tuple[Path, set[str]]:
    """1,600 events that take ~15 batch requests."""
    export = tmp_path / "export.jsonl"
    keys = cp.write_export(export, 1600, pad=PAD)
    return export, cp.message_ids(keys)


def test_a_5xx_burst_is_retried_until_every_event_arrives(
    tmp_path: Path, many_batches: tuple[Path, set[str]]
) -> None:
    export, expected = many_batches
    with FakeSegment(cp.WRITE_KEY) as server:
        server.script(*([503] * 6 + [500, 502, 504] * 3))
        code, report, _ = backfill(server, tmp_path, export, "--rate", "0")
        assert code == 0, report
        assert set(server.received) == expected
        assert max(server.received.values()) == 1  # a 5xx stored nothing: no duplicates
        assert report["events"]["failed"] == 0 and report["rejects_path"] is None
        assert report["retries"] == 15
        assert_summary_matches_server(report, server)
    assert cp.ledger_ids(tmp_path / "ledger.sqlite3", "sent") == expected


def test_a_429_storm_waits_out_retry_after(tmp_path: Path) -> None:
    export = tmp_path / "export.jsonl"
    expected = cp.message_ids(cp.write_export(export, 300))
    with FakeSegment(cp.WRITE_KEY, faults=Faults(retry_after="0.3")) as server:
        server.script(*([429] * 5))
        started = time.monotonic()
        code, report, _ = backfill(server, tmp_path, export, "--rate", "0", "--concurrency", "1")
        elapsed = time.monotonic() - started
    assert code == 0, report
    assert set(server.received) == expected
    assert report["retries"] == 5
    # Backoff alone is ~10 ms here: only honouring Retry-After makes five retries this slow.
    assert elapsed >= 5 * 0.3
    assert_summary_matches_server(report, server)


def test_dropped_connections_and_hangs_past_the_timeout(
    tmp_path: Path, many_batches: tuple[Path, set[str]]
) -> None:
    export, expected = many_batches
    env = cp.emailsrc_env(tmp_path, **{**cp.FAST_RETRIES, "EMAILSRC_TIMEOUT": "0.4"})
    faults = Faults(drop_rate=0.15, drop_mid_rate=0.15, hang_rate=0.1, hang_seconds=1.5)
    with FakeSegment(cp.WRITE_KEY, faults=faults, seed=11) as server:
        # A scripted start makes sure each kind happens, then the random ones go on.
        server.script("hang", "drop", "drop-mid", "hang", "drop-mid")
        started = time.monotonic()
        code, report, _ = backfill(server, tmp_path, export, "--rate", "0", env=env)
        elapsed = time.monotonic() - started
        assert code == 0, report
        # A hung request is logged when the server gives up on it, after the client did.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if len(server.requests) >= report["batches"] + report["retries"]:
                break
            time.sleep(0.05)
        results = Counter(r.result for r in server.requests)
        assert results["drop"] and results["drop-mid"] and results["hang"] >= 2, results
        # The client gave up on each hang after its 0.4 s timeout, not the server's 1.5 s.
        assert elapsed < 1.5 * results["hang"]
        assert set(server.received) == expected
        assert max(server.received.values()) == 1
        assert_summary_matches_server(report, server)


def test_lost_responses_resend_only_what_was_lost(
    tmp_path: Path, many_batches: tuple[Path, set[str]]
) -> None:
    """The server stores a batch but the answer never arrives: the batch is sent again
    with the same messageIds (Segment drops the copy), and counted once."""
    export, expected = many_batches
    with FakeSegment(cp.WRITE_KEY, faults=Faults(lost_response_rate=0.2), seed=5) as server:
        code, report, _ = backfill(server, tmp_path, export, "--rate", "0")
        assert code == 0, report
        assert set(server.received) == expected
        assert report["events"]["sent"] == len(expected)
        duplicates = sum(count - 1 for count in server.received.values())
        assert duplicates == server.accepted_events - len(expected)
        assert server.accepted_events > len(expected)  # the fault really happened
        assert len(server.accepted_requests) > report["batches"]


def test_a_server_that_goes_away_and_comes_back(
    tmp_path: Path, many_batches: tuple[Path, set[str]]
) -> None:
    export, expected = many_batches
    env = cp.emailsrc_env(
        tmp_path,
        **{**cp.FAST_RETRIES, "EMAILSRC_BACKOFF_BASE": "0.05", "EMAILSRC_BACKOFF_MAX": "0.2"},
    )
    with FakeSegment(cp.WRITE_KEY, faults=Faults(latency=0.02)) as server:
        process = cp.start(
            [
                "backfill",
                str(export),
                "--endpoint",
                server.url,
                "--rate",
                "0",
                "--state",
                str(tmp_path / "ledger.sqlite3"),
                "--json",
                "--quiet",
            ],
            env,
        )
        deadline = time.monotonic() + 30
        while server.accepted_events < 200 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.go_down(1.5)
        out, err = process.communicate(timeout=60)
        report = cp.summary(out)
        down = sum(1 for r in server.requests if r.result == "down")
        assert process.returncode == 0, err
        assert down > 0
        assert set(server.received) == expected
        assert_summary_matches_server(report, server)


def test_an_outage_longer_than_the_retry_budget_fails_and_lists_the_events(
    tmp_path: Path, many_batches: tuple[Path, set[str]]
) -> None:
    export, expected = many_batches
    ledger = tmp_path / "ledger.sqlite3"
    env = cp.emailsrc_env(tmp_path, **{**cp.FAST_RETRIES, "EMAILSRC_MAX_ATTEMPTS": "3"})
    with FakeSegment(cp.WRITE_KEY, faults=Faults(latency=0.02)) as server:
        process = cp.start(
            [
                "backfill",
                str(export),
                "--endpoint",
                server.url,
                "--rate",
                "0",
                "--state",
                str(ledger),
                "--json",
                "--quiet",
            ],
            env,
        )
        deadline = time.monotonic() + 30
        while server.accepted_events < 300 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.go_down(600)
        out, err = process.communicate(timeout=60)
        report = cp.summary(out)
        received = set(server.received)
        missing = expected - received
        assert process.returncode == 1, err
        assert received and missing  # the outage really cut the run in two
        assert report["events"]["sent"] == len(received)
        assert report["events"]["failed"] == len(missing)
        assert report["events"]["unsent"] == 0
        assert list(report["events"]["failed_by_reason"]) == ["retry budget spent after 3 attempts"]
        # Every failed event is in the rejects file once, with where it came from.
        listed = cp.rejected_message_ids(report["rejects_path"])
        assert set(listed) == missing and max(listed.values()) == 1
        for entry in cp.rejects(report["rejects_path"]):
            assert entry["file"] == str(export) and entry["line"] >= 1
            assert entry["reason"].startswith("retry budget spent after 3 attempts: ")
        assert cp.ledger_ids(ledger, "sent") == received
        assert cp.ledger_ids(ledger, "failed") == missing

        # The server comes back: the same command sends exactly what failed.
        server.go_down(0)
        server.reset()
        code, again, _ = backfill(server, tmp_path, export, "--rate", "0", env=env)
        assert code == 0, again
        assert set(server.received) == missing
        assert again["events"]["already_sent"] == len(received)
        assert cp.ledger_ids(ledger, "sent") == expected


@pytest.mark.parametrize("attempts", [1, 4])
def test_failure_only_when_the_budget_is_really_spent(tmp_path: Path, attempts: int) -> None:
    """attempts - 1 failures in a row still deliver; attempts failures fail the batch."""
    export = tmp_path / "export.jsonl"
    expected = cp.message_ids(cp.write_export(export, 50))
    env = cp.emailsrc_env(tmp_path, **{**cp.FAST_RETRIES, "EMAILSRC_MAX_ATTEMPTS": str(attempts)})
    with FakeSegment(cp.WRITE_KEY) as server:
        server.script(*([503] * (attempts - 1)))
        code, report, _ = backfill(server, tmp_path, export, "--rate", "0", env=env)
        assert code == 0 and set(server.received) == expected
        assert report["retries"] == attempts - 1

    export2 = tmp_path / "export2.jsonl"
    expected2 = cp.message_ids(cp.write_export(export2, 50, start=50))
    with FakeSegment(cp.WRITE_KEY) as server:
        server.script(*([503] * attempts))
        code, report, _ = backfill(server, tmp_path, export2, "--rate", "0", env=env)
        assert code == 1
        assert not server.received
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        assert report["events"]["failed_by_reason"] == {f"retry budget spent after {tries}": 50}
        assert set(cp.rejected_message_ids(report["rejects_path"])) == expected2


def test_a_refused_event_is_isolated_and_the_rest_delivered(
    tmp_path: Path, many_batches: tuple[Path, set[str]]
) -> None:
    """A 400 on a batch splits it until the one bad event is alone; it fails with
    Segment's reason, is listed with its file and line, and every other event arrives,
    through 5xx and 429 faults at the same time."""
    export, expected = many_batches
    poisoned = sorted(expected)[7]
    faults = Faults(fail_rate=0.1, rate_limit_rate=0.1, retry_after="0")
    with FakeSegment(cp.WRITE_KEY, faults=faults, seed=3) as server:
        server.poison(poisoned)
        code, report, _ = backfill(server, tmp_path, export, "--rate", "0")
        assert code == 1
        assert set(server.received) == expected - {poisoned}
        assert report["events"]["sent"] == len(expected) - 1
        assert report["events"]["failed"] == 1
        [entry] = cp.rejects(report["rejects_path"])
        assert entry["event"]["messageId"] == poisoned
        assert entry["reason"].startswith("HTTP 400 rejected by Segment")
        assert entry["file"] == str(export) and entry["line"] >= 1
        assert poisoned in cp.ledger_ids(tmp_path / "ledger.sqlite3", "failed")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ten_percent_5xx_ten_percent_429_five_percent_drops(
    tmp_path: Path, many_batches: tuple[Path, set[str]], seed: int
) -> None:
    """The issue's mix: every expected messageId arrives, exactly once, and the summary is
    exact against the server's own log."""
    export, expected = many_batches
    faults = Faults(fail_rate=0.10, rate_limit_rate=0.10, drop_rate=0.05, retry_after="0")
    with FakeSegment(cp.WRITE_KEY, faults=faults, seed=seed) as server:
        code, report, _ = backfill(server, tmp_path, export, "--rate", "0")
        results = Counter(r.result for r in server.requests)
        assert code == 0, report
        assert (
            results["drop"]
            + results["429"]
            + sum(results[str(status)] for status in (500, 502, 503, 504))
            > 0
        )
        assert set(server.received) == expected
        assert max(server.received.values()) == 1
        events = report["events"]
        assert events["to_send"] == events["sent"] == len(expected)
        assert events["failed"] == 0 and events["unsent"] == 0
        assert report["batches"] == len(server.accepted_requests)
        assert report["retries"] == len(server.requests) - len(server.accepted_requests)
        assert_summary_matches_server(report, server)
    ledger = tmp_path / "ledger.sqlite3"
    assert cp.ledger_ids(ledger, "sent") == expected
    assert cp.ledger_states(ledger) == Counter({"sent": len(expected)})
    assert cp.integrity(ledger) == "ok"


def test_a_write_key_rejected_mid_run_stops_with_exit_4_and_keeps_what_was_sent(
    tmp_path: Path, many_batches: tuple[Path, set[str]]
) -> None:
    export, expected = many_batches
    with FakeSegment(cp.WRITE_KEY) as server:
        server.script("ok", "ok", "ok", Reply(401, body=b'{"message":"invalid write key"}'))
        code, report, err = backfill(server, tmp_path, export, "--rate", "0", "--concurrency", "1")
        assert code == 4
        assert "write key was rejected" in err
        received = set(server.received)
        assert len(received) == report["events"]["sent"] > 0
        assert cp.ledger_ids(tmp_path / "ledger.sqlite3", "sent") == received
        assert received < expected
