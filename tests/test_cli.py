"""The commands as a user runs them, through Typer's CliRunner."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from emailsrc.app import app
from emailsrc.segment import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES

SAMPLES = Path(__file__).resolve().parent.parent / "sample_exports"
CUSTOMERIO = sorted(str(p) for p in SAMPLES.glob("customerio_*"))
ALL_SAMPLES = sorted(
    str(p) for p in SAMPLES.iterdir() if p.suffix in (".jsonl", ".csv") and "generic" not in p.name
)


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("EMAILSRC_STATE", str(tmp_path / "state" / "ledger.sqlite3"))
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
    monkeypatch.delenv("SEGMENT_ENDPOINT", raising=False)
    return CliRunner()


def run_json(runner: CliRunner, *args: str) -> tuple[int, dict]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.stdout.strip(), result.output
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("sample", ALL_SAMPLES, ids=lambda p: Path(p).name)
def test_every_sample_dry_runs_with_counts_that_add_up(runner: CliRunner, sample: str) -> None:
    code, summary = run_json(runner, "backfill", sample, "--dry-run")
    assert code == 0
    records, events = summary["records"], summary["events"]
    assert summary["balanced"] is True
    assert records["read"] == records["with_events"] + records["skipped"] + records["rejected"]
    assert events["total"] == events["excluded"] + events["duplicates"] + events["to_send"]
    assert events["to_send"] > 0
    assert summary["files"][0]["format"] != "?"


def test_dry_run_plan_for_the_customerio_samples(runner: CliRunner, tmp_path: Path) -> None:
    output = tmp_path / "batches.jsonl"
    code, summary = run_json(runner, "backfill", *CUSTOMERIO, "--dry-run", "--output", str(output))
    assert code == 0
    events = summary["events"]
    assert set(events["by_name"]) <= {
        "Email Delivered",
        "Email Opened",
        "Email Link Clicked",
        "Email Unsubscribed",
        "Email Bounced",
        "Email Marked as Spam",
    }
    assert events["duplicates"] >= 1
    assert summary["records"]["skipped_by_reason"]
    assert summary["records"]["rejected_by_reason"]
    assert summary["distinct_user_ids"] > 0
    assert summary["batches"] >= 1
    assert summary["estimated_seconds"] == pytest.approx(events["to_send"] / 500, abs=0.1)
    assert Path(summary["rejects_path"]).exists()
    # the output holds exactly the events that would be sent, within Segment's limits
    lines = output.read_bytes().splitlines()
    assert len(lines) == summary["batches"]
    sent = []
    for line in lines:
        assert len(line) <= MAX_BATCH_BYTES
        batch = orjson.loads(line)["batch"]
        assert len(batch) <= MAX_BATCH_EVENTS
        for event in batch:
            assert len(orjson.dumps(event)) <= MAX_EVENT_BYTES
            assert event["type"] == "track" and event["messageId"]
            assert ("userId" in event) != ("anonymousId" in event)
            assert event["timestamp"].endswith("Z")
        sent.extend(event["messageId"] for event in batch)
    assert len(sent) == len(set(sent)) == events["to_send"]
    assert (output.stat().st_mode & 0o777) == 0o600


def test_same_input_gives_the_same_message_ids(runner: CliRunner, tmp_path: Path) -> None:
    ids = []
    for name in ("a", "b"):
        output = tmp_path / f"{name}.jsonl"
        runner.invoke(
            app,
            [
                "backfill",
                CUSTOMERIO[0],
                "--dry-run",
                "--id-namespace",
                "x",
                "--output",
                str(output),
                "--quiet",
            ],
        )
        ids.append(
            [
                e["messageId"]
                for line in output.read_bytes().splitlines()
                for e in orjson.loads(line)["batch"]
            ]
        )
    assert ids[0] == ids[1] and ids[0]


def test_rejects_file_lists_file_line_reason_and_record(runner: CliRunner) -> None:
    _, summary = run_json(runner, "backfill", *CUSTOMERIO, "--dry-run")
    rejects = [json.loads(line) for line in Path(summary["rejects_path"]).read_text().splitlines()]
    assert len(rejects) == summary["records"]["rejected"]
    for entry in rejects:
        assert entry["file"] and entry["line"] >= 1 and entry["reason"]
        assert "raw" in entry or "record" in entry
    assert (Path(summary["rejects_path"]).stat().st_mode & 0o777) == 0o600


def test_validate_fails_with_file_line_reasons(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", *CUSTOMERIO])
    assert result.exit_code == 1
    assert "customerio_" in result.output and ": " in result.output


def test_validate_passes_under_max_rejects(runner: CliRunner) -> None:
    code, summary = run_json(runner, "validate", *CUSTOMERIO, "--max-rejects", "1000")
    assert code == 0 and summary["records"]["rejected"] > 0
    code, summary = run_json(runner, "validate", *CUSTOMERIO)
    assert code == 1 and summary["problems"]


def test_validate_clean_file_exits_zero(runner: CliRunner, tmp_path: Path) -> None:
    clean = tmp_path / "clean.jsonl"
    clean.write_text(
        json.dumps(
            {
                "event_id": "e1",
                "object_type": "email",
                "metric": "delivered",
                "timestamp": 1748779200,
                "data": {
                    "delivery_id": "d1",
                    "identifiers": {"id": "u1", "email": "a@example.com"},
                },
            }
        )
        + "\n"
    )
    code, summary = run_json(runner, "validate", str(clean))
    assert code == 0, summary
    assert summary["events"]["by_name"] == {"Email Delivered": 1}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"hello,world\n1,2\n", "not a format emailsrc knows"),
    ],
)
def test_unusable_input_stops_with_one_line_and_exit_3(
    runner: CliRunner, tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "export.csv"
    if content is not None:
        path.write_bytes(content)
    result = runner.invoke(app, ["backfill", str(path), "--dry-run"])
    assert result.exit_code == 3, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_gzip_and_stdin(runner: CliRunner, tmp_path: Path) -> None:
    source = Path(CUSTOMERIO[-1])
    packed = tmp_path / (source.name + ".gz")
    packed.write_bytes(gzip.compress(source.read_bytes()))
    _, plain = run_json(runner, "backfill", str(source), "--dry-run")
    _, zipped = run_json(runner, "backfill", str(packed), "--dry-run")
    result = runner.invoke(app, ["backfill", "-", "--dry-run", "--json"], input=source.read_bytes())
    piped = json.loads(result.stdout)
    assert plain["events"] == zipped["events"] == piped["events"]


def test_exclude_machine_opens(runner: CliRunner) -> None:
    _, normal = run_json(runner, "backfill", *CUSTOMERIO, "--dry-run")
    _, without = run_json(runner, "backfill", *CUSTOMERIO, "--dry-run", "--exclude-machine-opens")
    excluded = without["events"]["excluded_by_reason"]
    assert excluded.get("machine open (--exclude-machine-opens)", 0) > 0
    assert without["events"]["to_send"] < normal["events"]["to_send"]


def test_since_until_window(runner: CliRunner) -> None:
    _, summary = run_json(
        runner,
        "backfill",
        *CUSTOMERIO,
        "--dry-run",
        "--since",
        "2025-06-01",
        "--until",
        "2025-06-02",
    )
    assert summary["balanced"]
    assert summary["events"]["excluded"] > 0


def test_forced_format_and_unknown_format(runner: CliRunner) -> None:
    code, _ = run_json(runner, "backfill", CUSTOMERIO[0], "--dry-run", "--format", "customerio")
    assert code == 0
    result = runner.invoke(app, ["backfill", CUSTOMERIO[0], "--dry-run", "--format", "nope"])
    assert result.exit_code == 2 and "unknown format" in result.output


def test_sending_needs_a_write_key(runner: CliRunner) -> None:
    result = runner.invoke(app, ["backfill", CUSTOMERIO[0]])
    assert result.exit_code == 2
    assert "SEGMENT_WRITE_KEY" in result.output


def test_plain_http_refused_for_remote_hosts(runner: CliRunner) -> None:
    result = runner.invoke(
        app,
        ["backfill", CUSTOMERIO[0], "--write-key", "k" * 20, "--endpoint", "http://api.segment.io"],
    )
    assert result.exit_code == 2
    assert "k" * 20 not in result.output


def test_formats_lists_every_provider(runner: CliRunner) -> None:
    result = runner.invoke(app, ["formats", "--json"])
    assert result.exit_code == 0
    names = {entry["name"] for entry in json.loads(result.stdout)}
    assert {
        "customerio",
        "sendgrid",
        "mailgun",
        "postmark",
        "ses",
        "mandrill",
        "sparkpost",
        "mailjet",
        "brevo",
        "resend",
        "mapped-csv",
    } <= names
    human = runner.invoke(app, ["formats"])
    assert "customerio" in human.output and "Email Opened" in human.output


def test_status_of_a_missing_ledger_is_empty(runner: CliRunner) -> None:
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["events"]["total"] == 0


def test_bad_since_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["replay", "--since", "last tuesday", "--dry-run"])
    assert result.exit_code == 2 and "7d" in result.output


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and "emailsrc" in result.stdout


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.5])
def test_ctrl_c_at_start_up_is_one_line_not_a_traceback(delay: float) -> None:
    import signal
    import subprocess
    import sys
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "emailsrc", "formats"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert "Traceback" not in err.decode()
    assert process.returncode in (0, 130)
