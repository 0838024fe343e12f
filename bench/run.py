"""The benchmark: emailsrc against the script a user writes with Segment's SDK.

For each size it generates a Customer.io-style export (bench/generate.py, cached in
bench/data/), starts the local Segment-compatible server (tests/fake_segment.py) as its own
process, and runs each contender as a child process, measuring wall time, CPU seconds
(user + sys of the child, from wait4), peak RSS (the child's ru_maxrss) and events per
second. Every sending run is checked against the server's record of accepted messageIds:
the exact set of distinct events the export holds must have arrived (emailsrc: each one
exactly once), or the run does not count.

    python bench/run.py                                  # 100K and 1M events
    python bench/run.py --sizes 100000 --rss-sizes 5000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DATA = BENCH / "data"
PYTHON = sys.executable
EMAILSRC = [PYTHON, "-c", "from emailsrc.app import main; main()"]
SERVER = ROOT / "tests" / "fake_segment.py"
WRITE_KEY = "bench-write-key"
RATE_TARGET = 1000.0
RATE_TOLERANCE = 0.05
CONTENDERS = ("sdk", "backfill", "validate", "dry-run", "jsonl")

sys.path.insert(0, str(BENCH))
from generate import generate  # noqa: E402


@dataclass(slots=True)
class Result:
    size: int
    contender: str
    wall_seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    events: int  # what the rate is counted in: events sent, or records read
    unit: str
    exit_code: int
    verified: bool | None = None  # None: nothing to verify (no network)
    note: str = ""
    server_cpu_seconds: float | None = None
    ratio: float | None = None  # events/s over the baseline's, same size

    @property
    def per_second(self) -> float:
        return self.events / self.wall_seconds if self.wall_seconds else 0.0


@dataclass(slots=True)
class RateCheck:
    events: int
    target: float
    achieved: float
    max_in_one_second: int
    refused_requests: int  # answered anything but 2xx (429s included); -1: unknown
    rate_limited: int  # answered 429 for going over the rate
    verified: bool
    within: bool = field(default=False)


# -- inputs --------------------------------------------------------------------------------


def dataset(size: int, shape: str, seed: int) -> tuple[Path, dict[str, Any]]:
    """The export of `size` records, generated once per size, shape and seed."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"customerio_{size}_s{seed}.{shape}"
    meta_path = path.with_name(path.name + ".meta.json")
    if meta_path.exists() and path.exists():
        meta: dict[str, Any] = json.loads(meta_path.read_text())
        if meta.get("records") == size and meta.get("bytes") == path.stat().st_size:
            return path, meta
    say(f"generating {size:,} records of {shape} ...")
    return path, generate(path, size, seed, shape)


def expected_ids(path: Path, *, emailsrc: bool) -> set[str]:
    """The messageIds a correct run delivers: Customer.io's event ids for the SDK script,
    their UUIDv5 in the write key's namespace for emailsrc (see DESIGN.md, event key)."""
    ids = path.with_name(path.name + ".ids").read_text().split()
    if not emailsrc:
        return set(ids)
    from emailsrc.secrets import WriteKey
    from emailsrc.segment import message_namespace

    namespace = message_namespace(WriteKey(WRITE_KEY), None)
    return {str(uuid.uuid5(namespace, "customerio:" + value)) for value in ids}


# -- processes -----------------------------------------------------------------------------


class Server:
    """tests/fake_segment.py in its own process, recording accepted messageIds."""

    def __init__(self, record: Path, extra: Sequence[str] = ()) -> None:
        self.record = record
        record.write_text("")
        self.process = subprocess.Popen(
            [
                PYTHON,
                str(SERVER),
                "--port",
                "0",
                "--write-key",
                WRITE_KEY,
                "--record",
                str(record),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"the fake server did not start: {line!r}")
        self.url = match.group(1)
        self.summary = ""
        self.cpu_seconds = 0.0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        assert self.process.stderr is not None
        self.summary = self.process.stderr.read().strip()


def check_delivery(record: Path, export: Path, *, emailsrc: bool) -> tuple[bool, int, int]:
    """(exact set delivered, ids received, distinct ids), computed in a child process.

    The sets of a million ids would grow this process by hundreds of MiB, and a child
    started afterwards reports the parent's peak as its own ru_maxrss (fork and exec fold
    the old memory's high-water mark into the child's), so this process stays small.
    """
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import run; from pathlib import Path;"
        "print(json.dumps(run.delivered(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == '1')))"
    )
    output = subprocess.run(
        [PYTHON, "-c", code, str(BENCH), str(record), str(export), "1" if emailsrc else "0"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    exact, received, distinct = json.loads(output)
    return bool(exact), int(received), int(distinct)


def delivered(record: Path, export: Path, emailsrc: bool) -> tuple[bool, int, int]:
    received = record.read_text().split()
    distinct = set(received)
    return distinct == expected_ids(export, emailsrc=emailsrc), len(received), len(distinct)


def measure(command: Sequence[str], *, cwd: Path = ROOT) -> tuple[float, float, float, int, str]:
    """Run a child to its end: wall s, CPU s (user + sys), peak RSS MiB, exit code, stderr."""
    with tempfile.TemporaryFile("w+") as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        tail = errors.read()[-2000:]
    rss_mib = usage.ru_maxrss / 1024  # kilobytes on Linux
    return wall, usage.ru_utime + usage.ru_stime, rss_mib, process.returncode, tail


# -- contenders ----------------------------------------------------------------------------


def run_sender(
    name: str,
    size: int,
    csv_path: Path,
    meta: dict[str, Any],
    work: Path,
    *,
    emailsrc: bool,
    verify: bool,
) -> Result:
    server = Server(work / f"received-{name}.txt")
    try:
        if emailsrc:
            state = work / f"ledger-{size}.sqlite3"
            for stale in work.glob(f"ledger-{size}.sqlite3*"):
                stale.unlink()
            command = [
                *EMAILSRC,
                "backfill",
                str(csv_path),
                "--write-key",
                WRITE_KEY,
                "--endpoint",
                server.url,
                "--rate",
                "0",
                "--quiet",
                "--state",
                str(state),
                "--rejects",
                str(work / "rejects.jsonl"),
            ]
        else:
            command = [
                PYTHON,
                str(BENCH / "baseline.py"),
                str(csv_path),
                "--write-key",
                WRITE_KEY,
                "--host",
                server.url,
            ]
        wall, cpu, rss, code, tail = measure(command)
    finally:
        server.stop()
    result = Result(
        size,
        name,
        wall,
        cpu,
        rss,
        meta["distinct_events"],
        "events",
        code,
        server_cpu_seconds=server.cpu_seconds,
    )
    if code != 0:
        result.note = f"exit {code}: {tail.strip().splitlines()[-1:]}"
    if verify:
        exact, received, distinct = check_delivery(server.record, csv_path, emailsrc=emailsrc)
        # emailsrc dedupes: each event once; the SDK script sends exact repeats again
        # (same messageId, which Segment drops), so only its distinct set must match.
        once = received == distinct if emailsrc else True
        result.verified = exact and once and code == 0
        result.note = (result.note + f" received {received:,} ids, {distinct:,} distinct").strip()
    else:
        lines = sum(1 for _ in server.record.open())
        result.note = (result.note + f" received {lines:,} ids (not verified)").strip()
    return result


def run_local(
    name: str, size: int, path: Path, meta: dict[str, Any], work: Path, args: Sequence[str]
) -> Result:
    command = [
        *EMAILSRC,
        *args,
        str(path),
        "--quiet",
        "--json",
        "--rejects",
        str(work / "rejects.jsonl"),
    ]
    wall, cpu, rss, code, tail = measure(command)
    result = Result(size, name, wall, cpu, rss, meta["records"], "records", code)
    if code != 0:
        result.note = f"exit {code}: {tail.strip().splitlines()[-1:]}"
    return result


def rate_check(work: Path, seed: int, records: int) -> RateCheck:
    """--rate 1000 against the server: the achieved rate, seen from the server's side."""
    path, meta = dataset(records, "csv", seed)
    # The server enforces the same rate (a bucket of one second of events): a 429 means
    # emailsrc went over it.
    server = Server(work / "received-rate.txt", ["--max-rate", str(RATE_TARGET)])
    state = work / "ledger-rate.sqlite3"
    for stale in work.glob("ledger-rate.sqlite3*"):
        stale.unlink()
    command = [
        *EMAILSRC,
        "backfill",
        str(path),
        "--write-key",
        WRITE_KEY,
        "--endpoint",
        server.url,
        "--rate",
        str(int(RATE_TARGET)),
        "--quiet",
        "--state",
        str(state),
        "--rejects",
        str(work / "rejects.jsonl"),
    ]
    arrivals: list[tuple[float, int]] = []
    try:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        with server.record.open("rb") as record:
            seen = 0
            while True:
                done = process.poll() is not None
                chunk = record.read()
                if chunk:
                    seen += chunk.count(b"\n")
                    arrivals.append((time.perf_counter(), seen))
                if done:
                    break
                time.sleep(0.01)
    finally:
        server.stop()
    # "accepted E events in A requests (S requests seen, R over --max-rate)".
    counts = re.search(r"in (\d+) requests \((\d+) requests seen, (\d+) over", server.summary)
    refused = int(counts.group(2)) - int(counts.group(1)) if counts else -1
    rate_limited = int(counts.group(3)) if counts else -1
    exact, received, distinct = check_delivery(server.record, path, emailsrc=True)
    verified = exact and received == distinct and process.returncode == 0
    # The steady rate: from one second after the first arrival (the bucket starts full, so
    # the first second may carry a second's worth on top) to the last. The busiest
    # one-second window shows bursts.
    first_time = arrivals[0][0]
    steady = [(t, n) for t, n in arrivals if t >= first_time + 1.0] or arrivals
    (start_time, start_count), (last_time, last_count) = steady[0], steady[-1]
    span = last_time - start_time
    achieved = (last_count - start_count) / span if span > 0 else 0.0
    busiest, start = 0, 0
    for end in range(len(arrivals)):
        while arrivals[end][0] - arrivals[start][0] > 1.0:
            start += 1
        before = arrivals[start - 1][1] if start else 0
        busiest = max(busiest, arrivals[end][1] - before)
    check = RateCheck(
        meta["distinct_events"], RATE_TARGET, achieved, busiest, refused, rate_limited, verified
    )
    check.within = abs(achieved - RATE_TARGET) <= RATE_TOLERANCE * RATE_TARGET
    return check


# -- the report ----------------------------------------------------------------------------


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def print_table(results: list[Result], rate: RateCheck | None, machine: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"emailsrc benchmark ({machine})")
    for column in (
        "records",
        "contender",
        "wall s",
        "rate",
        "× SDK",
        "CPU s",
        "peak RSS",
        "server CPU s",
        "ok",
    ):
        table.add_column(column, justify="left" if column in ("contender", "ok") else "right")
    for r in results:
        ok = "" if r.verified is None else ("✓" if r.verified else "✗")
        if r.exit_code != 0:
            ok += f" exit {r.exit_code}"
        table.add_row(
            f"{r.size:,}",
            r.contender,
            f"{r.wall_seconds:.2f}",
            f"{r.per_second:,.0f} {r.unit}/s",
            f"{r.ratio:.1f}×" if r.ratio else "",
            f"{r.cpu_seconds:.2f}",
            f"{r.peak_rss_mib:,.0f} MiB",
            f"{r.server_cpu_seconds:.2f}" if r.server_cpu_seconds is not None else "",
            ok,
        )
    console = Console(width=max(Console().width, 130))
    console.print(table)
    for r in results:
        if r.exit_code != 0 or r.verified is False:
            console.print(f"{r.size:,} {r.contender}: {r.note}", markup=False)
    if rate is not None:
        ok = rate.within and rate.verified and not rate.refused_requests
        console.print(
            f"--rate {rate.target:,.0f}: {rate.events:,} events, steady rate "
            f"{rate.achieved:,.1f} events/s ({rate.achieved / rate.target - 1:+.1%}), busiest "
            f"second {rate.max_in_one_second:,} events, {rate.rate_limited} answered 429 "
            f"by a server enforcing {rate.target:,.0f}/s, {rate.refused_requests} refused in "
            f"all, delivered {'✓' if rate.verified else '✗'} {'✓' if ok else '✗'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="100000,1000000", help="export sizes (records) to run every contender on"
    )
    parser.add_argument(
        "--rss-sizes",
        default="",
        help="larger sizes to run only emailsrc backfill on (e.g. 5000000)",
    )
    parser.add_argument(
        "--rate-records",
        type=int,
        default=50_000,
        help="records for the --rate 1000 run (0 to skip)",
    )
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help=f"which to run, of: {', '.join(CONTENDERS)}",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-verify", action="store_true", help="skip the messageId checks")
    parser.add_argument("--results", type=Path, default=BENCH / "results.json")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rss_sizes = [int(s) for s in args.rss_sizes.split(",") if s]
    chosen = set(args.contenders.split(","))
    if chosen - set(CONTENDERS):
        parser.error(f"unknown contenders: {', '.join(sorted(chosen - set(CONTENDERS)))}")
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"

    results: list[Result] = []
    rate: RateCheck | None = None
    with tempfile.TemporaryDirectory(prefix="emailsrc-bench-") as tmp:
        work = Path(tmp)
        for size in sizes:
            csv_path, meta = dataset(size, "csv", args.seed)
            verify = not args.no_verify
            baseline: Result | None = None
            if "sdk" in chosen:
                say(f"{size:,}: SDK script ...")
                baseline = run_sender(
                    "SDK script (baseline)",
                    size,
                    csv_path,
                    meta,
                    work,
                    emailsrc=False,
                    verify=verify,
                )
                results.append(baseline)
            if "backfill" in chosen:
                say(f"{size:,}: emailsrc backfill ...")
                ours = run_sender(
                    "emailsrc backfill", size, csv_path, meta, work, emailsrc=True, verify=verify
                )
                if baseline is not None and baseline.per_second:
                    ours.ratio = ours.per_second / baseline.per_second
                results.append(ours)
            if "validate" in chosen:
                say(f"{size:,}: validate ...")
                results.append(
                    run_local("emailsrc validate (CSV)", size, csv_path, meta, work, ["validate"])
                )
            if "dry-run" in chosen:
                say(f"{size:,}: dry run ...")
                results.append(
                    run_local(
                        "emailsrc backfill --dry-run (CSV)",
                        size,
                        csv_path,
                        meta,
                        work,
                        ["backfill", "--dry-run"],
                    )
                )
            if "jsonl" in chosen:
                jsonl_path, jsonl_meta = dataset(size, "jsonl", args.seed)
                say(f"{size:,}: validate JSONL ...")
                results.append(
                    run_local(
                        "emailsrc validate (JSONL)",
                        size,
                        jsonl_path,
                        jsonl_meta,
                        work,
                        ["validate"],
                    )
                )
        for size in rss_sizes:
            csv_path, meta = dataset(size, "csv", args.seed)
            say(f"{size:,}: emailsrc backfill ...")
            results.append(
                run_sender(
                    "emailsrc backfill",
                    size,
                    csv_path,
                    meta,
                    work,
                    emailsrc=True,
                    verify=not args.no_verify,
                )
            )
        if args.rate_records:
            say(f"--rate {RATE_TARGET:,.0f} on {args.rate_records:,} records ...")
            rate = rate_check(work, args.seed, args.rate_records)

    print_table(results, rate, machine)
    document = {
        "machine": machine,
        "results": [{**asdict(r), "per_second": round(r.per_second, 1)} for r in results],
        "rate": asdict(rate) if rate else None,
    }
    args.results.write_text(json.dumps(document, indent=2) + "\n")
    say(f"wrote {args.results}")
    failed = any(r.verified is False or r.exit_code not in (0,) for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
