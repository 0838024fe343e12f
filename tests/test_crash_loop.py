"""Process faults: SIGKILL at seeded points, SIGINT / SIGTERM mid-send, a ledger that
stops being writable, and two runs on one ledger. Every run is a real `emailsrc backfill`
process sending to an in-process Segment-compatible server.

The promise under test: no acknowledged event is lost (what the ledger marks sent, the
server has; after a re-run the server has everything); nothing is sent twice except the
batches in flight when the process died; the ledger passes PRAGMA integrity_check.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

import cli_process as cp
from fake_segment import FakeSegment, Faults

CONCURRENCY = 4
# ~2.3 KB events: ~200 per batch, so a run is ~8 requests and a kill can land between,
# inside or after any of them.
PAD = 2000


@dataclass(frozen=True)
class KillPoint:
    """Where to kill: `after_seconds` from the start, or once the server has accepted
    `after_events` (whichever the point names)."""

    after_seconds: float | None = None
    after_events: int | None = None

    def __str__(self) -> str:
        if self.after_events is not None:
            return f"after {self.after_events} events accepted"
        return f"after {self.after_seconds:.3f} s"


def kill_points(seed: int, count: int, events: int, first_send: float) -> list[KillPoint]:
    """Half by time up to the first acknowledged batch (startup, ledger creation, reading,
    storing, the first requests), half by how far sending has got (between and inside
    batches). `first_send` is measured on this machine, so the spread does not depend
    on its speed."""
    rng = random.Random(seed)
    points: list[KillPoint] = []
    for index in range(count):
        if index % 2:
            points.append(KillPoint(after_events=rng.randrange(1, events)))
        else:
            points.append(KillPoint(after_seconds=rng.uniform(0.02, first_send)))
    return points


def time_to_first_send(server: FakeSegment, export: Path, ledger: Path, home: Path) -> float:
    """Seconds from start to the first accepted batch, on a fresh ledger, unkilled."""
    started = time.monotonic()
    process = cp.start(backfill_args(server, export, ledger), cp.emailsrc_env(home))
    while not server.accepted_events and process.poll() is None:
        time.sleep(0.001)
    first = time.monotonic() - started
    process.communicate(timeout=60)
    assert process.returncode == 0
    return first


def backfill_args(
    server: FakeSegment, export: Path, ledger: Path, *, machine: bool = True
) -> list[str]:
    """A sending backfill; `machine` adds --quiet --json for runs read by the test, without
    it stderr carries the human summary."""
    args = [
        "backfill",
        str(export),
        "--endpoint",
        server.url,
        "--state",
        str(ledger),
        "--rate",
        "0",
        "--concurrency",
        str(CONCURRENCY),
    ]
    return [*args, "--quiet", "--json"] if machine else args


def kill_at(process: subprocess.Popen[str], server: FakeSegment, point: KillPoint) -> bool:
    """SIGKILL the process at the point; False when it finished first."""
    started = time.monotonic()
    while process.poll() is None:
        if point.after_seconds is not None and time.monotonic() - started >= point.after_seconds:
            break
        if point.after_events is not None and server.accepted_events >= point.after_events:
            break
        if time.monotonic() - started > 60:
            pytest.fail("the run neither finished nor reached its kill point in 60 s")
        time.sleep(0.001)
    finished = process.poll() is not None
    if not finished:
        process.kill()
    process.communicate(timeout=30)
    return not finished


def in_flight_bound(server: FakeSegment) -> int:
    """Events that can be accepted but not yet recorded: every batch in flight."""
    largest = max((r.events for r in server.accepted_requests), default=0)
    return CONCURRENCY * largest


def settle(server: FakeSegment) -> None:
    # A request the dead process had fully written may still be answered: let it land.
    time.sleep(0.1)


def check_after_kill(ledger: Path, server: FakeSegment, point: KillPoint) -> set[str]:
    settle(server)
    sent = cp.ledger_ids(ledger, "sent")
    received = set(server.received)
    assert sent <= received, f"{point}: marked sent but never acknowledged"
    if ledger.exists():
        assert cp.integrity(ledger) == "ok", point
    return sent


def complete(
    server: FakeSegment, export: Path, ledger: Path, tmp_path: Path, expected: set[str]
) -> dict:
    result = cp.run(backfill_args(server, export, ledger), cp.emailsrc_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert cp.no_traceback(result.stderr)
    report = cp.summary(result)
    assert report["balanced"] is True
    assert expected <= set(server.received)
    assert cp.ledger_ids(ledger, "sent") == expected
    assert cp.integrity(ledger) == "ok"
    return report


def crash_and_resume(tmp_path: Path, seed: int, points: int, events: int) -> Counter[str]:
    """Each point on a fresh ledger: run, SIGKILL at the point, check, re-run to the end,
    check. Returns how often each kind of outcome was met, to show the points spread."""
    export = tmp_path / "export.jsonl"
    expected = cp.message_ids(cp.write_export(export, events, pad=PAD))
    outcomes: Counter[str] = Counter()
    with FakeSegment(cp.WRITE_KEY, faults=Faults(latency=0.02)) as server:
        first_send = time_to_first_send(server, export, tmp_path / "calibration.sqlite3", tmp_path)
        for number, point in enumerate(kill_points(seed, points, events, first_send)):
            ledger = tmp_path / f"point-{number}" / "ledger.sqlite3"
            server.reset()
            process = cp.start(backfill_args(server, export, ledger), cp.emailsrc_env(tmp_path))
            killed = kill_at(process, server, point)
            sent = check_after_kill(ledger, server, point)
            at_kill = set(server.received)
            bound = in_flight_bound(server)
            outcomes[
                "finished first" if not killed else "before any send" if not at_kill else "mid-send"
            ] += 1

            report = complete(server, export, ledger, tmp_path, expected)
            counts = server.received
            resent = {mid for mid, count in counts.items() if count > 1}
            assert not resent & sent, f"{point}: an event recorded as sent was sent again"
            assert resent <= at_kill - sent, f"{point}: resent something not in flight"
            assert len(resent) <= bound, f"{point}: {len(resent)} resent, bound {bound}"
            assert report["events"]["already_sent"] == len(sent)
    return outcomes


def test_sigkill_at_twenty_seeded_points_then_resume(tmp_path: Path) -> None:
    outcomes = crash_and_resume(tmp_path, seed=20_24, points=20, events=1500)
    # The seeded points cover deaths before anything was sent and deaths mid-send.
    assert outcomes["before any send"] >= 3 and outcomes["mid-send"] >= 8, outcomes


@pytest.mark.slow
def test_sigkill_loop_resumed_run_after_run(tmp_path: Path) -> None:
    """100 kills in 10 rounds; in each round, run after run is killed and resumed on the
    same ledger, then the last run completes and the next round adds a new export. What
    each killed run recorded must survive every later kill."""
    ledger = tmp_path / "ledger.sqlite3"
    rng = random.Random(7)
    everything: set[str] = set()
    exports: list[Path] = []
    duplicates_allowed = 0
    with FakeSegment(cp.WRITE_KEY, faults=Faults(latency=0.02)) as server:
        for round_number in range(10):
            export = tmp_path / f"export-{round_number}.jsonl"
            everything |= cp.message_ids(
                cp.write_export(export, 1200, start=round_number * 1200, pad=PAD)
            )
            exports.append(export)
            recorded = cp.ledger_ids(ledger, "sent")
            for kill in range(10):
                point = (
                    KillPoint(after_seconds=rng.uniform(0.05, 1.0))
                    if kill % 2 == 0
                    else KillPoint(after_events=server.accepted_events + rng.randrange(1, 600))
                )
                args = backfill_args(server, export, ledger)
                process = cp.start(args, cp.emailsrc_env(tmp_path))
                kill_at(process, server, point)
                sent = check_after_kill(ledger, server, point)
                assert recorded <= sent, f"round {round_number}, {point}: a sent mark vanished"
                recorded = sent
                duplicates_allowed += in_flight_bound(server)
            complete(server, export, ledger, tmp_path, everything)
            # The server keeps what every round sent: ledger marks from earlier rounds
            # stay checked against it.
            duplicates = sum(count - 1 for count in server.received.values())
            assert duplicates <= duplicates_allowed
        # Every event of every export is recorded as acknowledged: nothing left to send.
        server.reset()
        result = cp.run(
            [
                "backfill",
                *map(str, exports),
                "--endpoint",
                server.url,
                "--state",
                str(ledger),
                "--rate",
                "0",
                "--json",
                "--quiet",
            ],
            cp.emailsrc_env(tmp_path),
        )
        assert result.returncode == 0 and not server.received
        assert cp.summary(result)["events"]["already_sent"] == len(everything)


# -- SIGINT and SIGTERM -------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_mid_send_settles_in_flight_and_resumes(
    tmp_path: Path, signum: signal.Signals
) -> None:
    export = tmp_path / "export.jsonl"
    expected = cp.message_ids(cp.write_export(export, 2000, pad=PAD))
    ledger = tmp_path / "ledger.sqlite3"
    with FakeSegment(cp.WRITE_KEY, faults=Faults(latency=0.3)) as server:
        args = backfill_args(server, export, ledger, machine=False)
        process = cp.start(args, cp.emailsrc_env(tmp_path))
        while server.accepted_events < 400 and process.poll() is None:
            time.sleep(0.002)
        # The client refills its in-flight slots within milliseconds; the server holds
        # each request 0.3 s: signalled now, the run has batches in flight.
        time.sleep(0.1)
        requests_at_signal = len(server.requests)
        process.send_signal(signum)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 130, err
        assert cp.no_traceback(err)
        assert "run the same command again" in err
        received = set(server.received)
        # In-flight batches were settled: answered after the signal, and recorded.
        assert len(server.requests) > requests_at_signal
        assert cp.ledger_ids(ledger, "sent") == received
        assert received < expected
        assert cp.integrity(ledger) == "ok"

        report = complete(server, export, ledger, tmp_path, expected)
        assert report["events"]["already_sent"] == len(received)
        # Everything acknowledged was recorded, so nothing at all was sent twice.
        assert max(server.received.values()) == 1


# -- the ledger stops being writable ------------------------------------------------------


def test_ledger_disk_full_mid_run_stops_with_exit_5(tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE) makes the ledger's writes fail part-way through a
    run, as a full disk does: the run stops with exit 5 and one clear line, no traceback;
    nothing is marked sent that the server did not acknowledge; the same command, once
    there is room, finishes the job."""
    ledger = tmp_path / "ledger.sqlite3"
    first = tmp_path / "first.jsonl"
    second = tmp_path / "second.jsonl"
    expected = cp.message_ids(cp.write_export(first, 500, pad=1000))
    expected |= cp.message_ids(cp.write_export(second, 8000, start=500, pad=1000, users=50))
    with FakeSegment(cp.WRITE_KEY, faults=Faults(latency=0.01)) as server:
        env = cp.emailsrc_env(tmp_path)
        args = ["--endpoint", server.url, "--state", str(ledger), "--rate", "0", "--quiet"]
        assert cp.run(["backfill", str(first), *args], env).returncode == 0
        before = cp.ledger_ids(ledger, "sent")
        limit = ledger.stat().st_size + 6_000_000

        def small_disk() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        result = cp.run(["backfill", str(second), *args], env, preexec_fn=small_disk)
        assert result.returncode == 5, result.stderr
        assert cp.no_traceback(result.stdout, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "ledger" in errors[0], result.stderr
        settle(server)
        sent = cp.ledger_ids(ledger, "sent")
        assert sent <= set(server.received)
        assert before < sent < expected  # it failed mid-run, after recording some
        assert cp.integrity(ledger) == "ok"

        report = complete(server, second, ledger, tmp_path, expected)
        assert report["events"]["already_sent"] == len(sent - before)


def test_ledger_in_a_place_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the ledger's directory should be\n")
    export = tmp_path / "export.jsonl"
    cp.write_export(export, 10)
    with FakeSegment(cp.WRITE_KEY) as server:
        result = cp.run(
            [
                "backfill",
                str(export),
                "--endpoint",
                server.url,
                "--quiet",
                "--state",
                str(blocker / "ledger.sqlite3"),
            ],
            cp.emailsrc_env(tmp_path),
        )
        assert result.returncode == 5, result.stderr
        assert cp.no_traceback(result.stderr)
        assert "ledger" in result.stderr and "Not a directory" in result.stderr
        assert not server.requests  # nothing is sent without a ledger to record it


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through file permissions")
@pytest.mark.parametrize("what", ["file", "directory"])
def test_ledger_made_read_only_between_runs(tmp_path: Path, what: str) -> None:
    state = tmp_path / "state"
    ledger = state / "ledger.sqlite3"
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    cp.write_export(first, 20)
    cp.write_export(second, 20, start=20)
    with FakeSegment(cp.WRITE_KEY) as server:
        env = cp.emailsrc_env(tmp_path)
        args = ["--endpoint", server.url, "--state", str(ledger), "--quiet"]
        assert cp.run(["backfill", str(first), *args], env).returncode == 0
        before = cp.ledger_ids(ledger, "sent")
        server.reset()
        target = ledger if what == "file" else state
        target.chmod(0o400 if what == "file" else 0o500)
        try:
            result = cp.run(["backfill", str(second), *args], env)
        finally:
            target.chmod(0o600 if what == "file" else 0o700)
        assert result.returncode == 5, result.stderr
        assert cp.no_traceback(result.stderr)
        assert "ledger" in result.stderr
        assert cp.ledger_ids(ledger, "sent") == before
        assert not server.received


# -- two runs, one ledger -----------------------------------------------------------------


def test_a_second_run_on_the_same_ledger_is_refused(tmp_path: Path) -> None:
    export = tmp_path / "export.jsonl"
    expected = cp.message_ids(cp.write_export(export, 1500, pad=PAD))
    ledger = tmp_path / "ledger.sqlite3"
    with FakeSegment(cp.WRITE_KEY, faults=Faults(latency=0.1)) as server:
        env = cp.emailsrc_env(tmp_path)
        args = [
            "--endpoint",
            server.url,
            "--state",
            str(ledger),
            "--rate",
            "0",
            "--concurrency",
            "1",
            "--quiet",
        ]
        first = cp.start(["backfill", str(export), *args], env)
        while not server.accepted_events and first.poll() is None:
            time.sleep(0.005)
        assert first.poll() is None, "the first run ended before the second could start"

        second = cp.run(["backfill", str(export), *args], env)
        status = cp.run(["status", "--state", str(ledger), "--json"], env)
        _, err = first.communicate(timeout=60)

        assert second.returncode == 5, second.stderr
        assert cp.no_traceback(second.stderr)
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert any(f"another emailsrc run (pid {first.pid})" in line for line in lines), lines
        # Reading the ledger while a run writes it is fine.
        assert status.returncode == 0, status.stderr
        assert first.returncode == 0, err
        assert set(server.received) == expected
        assert max(server.received.values()) == 1
        assert cp.ledger_ids(ledger, "sent") == expected
        assert cp.integrity(ledger) == "ok"
        runs = cp.summary(status)["runs"]
        assert len(runs) == 1  # the refused run left no trace in the ledger
