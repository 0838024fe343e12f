"""The SQLite ledger: identity, deliveries, replay selection, status, locking, durability."""

from __future__ import annotations

import inspect
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

import pytest

import emailsrc.ledger as ledger_module
from emailsrc.ledger import (
    APPLICATION_ID,
    KEY_HASH_BYTES,
    SCHEMA_VERSION,
    Destination,
    Ledger,
    LedgerBusy,
    LedgerError,
    StoredEvent,
    key_hash,
    lock_path,
)

JUNE = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1000)
JULY = int(datetime(2025, 7, 1, tzinfo=UTC).timestamp() * 1000)
US = Destination("https://api.segment.io", "fp-us", "6f1c1a52-3b7e-4c31-9d52-0c6a2c1d9a10")
EU = Destination("https://events.eu1.segmentapis.com", "fp-eu", US.namespace)


def event(
    key: str, ts: int = JUNE, name: str = "Email Opened", payload: bytes = b""
) -> StoredEvent:
    body = payload or json.dumps({"event": name, "properties": {"email_id": key}}).encode()
    return StoredEvent(key_hash(key), key, name, ts, body)


def hashes(*keys: str) -> list[bytes]:
    return [key_hash(key) for key in keys]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.sqlite3"


@pytest.fixture
def ledger(path: Path) -> Iterator[Ledger]:
    with Ledger.open(path) as opened:
        yield opened


def mode(target: Path) -> int:
    return stat.S_IMODE(target.stat().st_mode)


def run_python(code: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


# -- files, modes, schema ------------------------------------------------------------------


def test_key_hash_is_16_bytes_of_blake2b() -> None:
    assert KEY_HASH_BYTES == 16
    assert key_hash("customerio:abc") == key_hash("customerio:abc")
    assert len(key_hash("customerio:abc")) == 16
    assert key_hash("customerio:abc") != key_hash("customerio:abd")


def test_creates_private_file_lock_and_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "ledger.sqlite3"
    with Ledger.open(path) as opened:
        assert opened.path == path
        assert mode(path) == 0o600
        assert mode(lock_path(path)) == 0o600
        assert lock_path(path).read_text().strip() == str(os.getpid())
        assert mode(path.parent) == 0o700
        assert mode(path.parent.parent) == 0o700
        for suffix in ("-wal", "-shm"):
            side = Path(f"{path}{suffix}")
            if side.exists():
                assert mode(side) == 0o600


def test_missing_file_gets_current_schema_in_wal_mode(ledger: Ledger, path: Path) -> None:
    assert ledger.schema_version == SCHEMA_VERSION
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    assert {"events", "deliveries", "destinations", "runs", "files"} <= tables


def test_empty_file_is_migrated(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.touch()
    with Ledger.open(path) as opened:
        assert opened.schema_version == SCHEMA_VERSION
        run = opened.start_run("backfill", {})
        assert opened.store_events(run, [event("a")]) == ["new"]


def test_reopening_keeps_data_and_version(path: Path) -> None:
    with Ledger.open(path) as first:
        first.store_events(first.start_run("backfill", {}), [event("a")])
    with Ledger.open(path) as second:
        assert second.schema_version == SCHEMA_VERSION
        assert second.count_events(None, None, None) == 1


def make_foreign(path: Path, *, version: int, application: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE things (x)")
        raw.execute(f"PRAGMA user_version = {version}")
        raw.execute(f"PRAGMA application_id = {application}")


@pytest.mark.parametrize("readonly", [False, True])
def test_newer_schema_is_refused_with_one_line(path: Path, readonly: bool) -> None:
    make_foreign(path, version=SCHEMA_VERSION + 1, application=APPLICATION_ID)
    with pytest.raises(LedgerError) as caught:
        Ledger.open(path, readonly=readonly)
    message = str(caught.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert "upgrade emailsrc" in message
    assert "\n" not in message
    # The refusal released the lock: trying again is refused the same way, not as busy.
    with pytest.raises(LedgerError, match="newer than this emailsrc"):
        Ledger.open(path, readonly=readonly)


def test_another_applications_database_is_refused(path: Path) -> None:
    make_foreign(path, version=0, application=0)
    with pytest.raises(LedgerError, match="not an emailsrc ledger"):
        Ledger.open(path)


def test_a_file_that_is_not_sqlite_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("id,email\n" * 1000)
    with pytest.raises(LedgerError, match="not a database") as caught:
        Ledger.open(path)
    assert "\n" not in str(caught.value)


def test_unusable_location_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(LedgerError) as caught:
        Ledger.open(blocker / "ledger.sqlite3")
    assert str(caught.value).startswith(f"ledger {blocker / 'ledger.sqlite3'}: cannot open")
    assert "\n" not in str(caught.value)


def test_readonly_open_of_missing_path_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "ledger.sqlite3"
    with Ledger.open(path, readonly=True) as opened:
        assert opened.count_events(None, None, None) == 0
        assert list(opened.select_events(None, None, None)) == []
        status = opened.status()
    assert status["events"]["total"] == 0
    assert status["destinations"] == [] and status["runs"] == []
    assert not (tmp_path / "nowhere").exists()


def test_readonly_ledger_reads_but_never_writes(path: Path) -> None:
    with Ledger.open(path) as writer:
        writer.store_events(writer.start_run("backfill", {}), [event("a")])
    with Ledger.open(path, readonly=True) as reader:
        assert [e.key for e in reader.select_events(None, None, None)] == ["a"]
        with pytest.raises(LedgerError, match="read-only"):
            reader.start_run("backfill", {})


def test_readonly_open_works_while_a_run_holds_the_lock(path: Path) -> None:
    with Ledger.open(path) as writer:
        run = writer.start_run("backfill", {})
        writer.store_events(run, [event("a")])
        destination = writer.destination_id(US)
        writer.plan_deliveries(run, destination, hashes("a"))
        writer.mark_sent(run, destination, hashes("a"))
        with Ledger.open(path, readonly=True) as reader:
            assert reader.status()["destinations"][0]["sent"] == 1


def test_closed_ledger_refuses_politely(ledger: Ledger) -> None:
    ledger.close()
    ledger.close()
    with pytest.raises(LedgerError, match="closed"):
        ledger.start_run("backfill", {})


# -- store_events --------------------------------------------------------------------------


def test_store_new_and_duplicates_within_one_call(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    states = ledger.store_events(run, [event("a"), event("b"), event("a"), event("c")])
    assert states == ["new", "new", "duplicate", "new"]


def test_duplicates_across_calls_of_one_run(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event("a"), event("b")])
    assert ledger.store_events(run, [event("b"), event("c")]) == ["duplicate", "new"]


def test_known_from_an_earlier_run_then_duplicate(path: Path) -> None:
    with Ledger.open(path) as first:
        run = first.start_run("backfill", {})
        first.store_events(run, [event("a"), event("b")])
        first.finish_run(run, "completed", {})
    with Ledger.open(path) as second:
        run = second.start_run("backfill", {})
        states = second.store_events(run, [event("a"), event("x"), event("a"), event("b")])
        assert states == ["known", "new", "duplicate", "known"]
        assert second.store_events(run, [event("b"), event("x")]) == ["duplicate", "duplicate"]
        later = second.start_run("replay", {})
        assert second.store_events(later, [event("a"), event("x")]) == ["known", "known"]


def test_known_event_keeps_its_first_payload(path: Path) -> None:
    with Ledger.open(path) as first:
        first.store_events(first.start_run("backfill", {}), [event("a", payload=b'{"v":1}')])
    with Ledger.open(path) as second:
        run = second.start_run("backfill", {})
        assert second.store_events(run, [event("a", payload=b'{"v":2}')]) == ["known"]
        assert [e.payload for e in second.select_events(None, None, None)] == [b'{"v":1}']


def test_states_hold_across_internal_chunks(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "CHUNK", 3)
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event("old")])
    later = ledger.start_run("backfill", {})
    keys = ["a", "b", "c", "a", "old", "b", "old", "d"]
    states = ledger.store_events(later, [event(key) for key in keys])
    assert states == ["new", "new", "new", "duplicate", "known", "duplicate", "duplicate", "new"]


def test_event_counts_follow_stored_events(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event("a"), event("b", JULY, "Email Bounced"), event("a")])
    ledger.store_events(run, [event("c", JULY + 5)])
    events = ledger.status()["events"]
    assert events["total"] == 3
    assert events["by_name"] == {"Email Bounced": 1, "Email Opened": 2}
    assert events["by_month"] == {
        "2025-06": {"Email Opened": 1},
        "2025-07": {"Email Bounced": 1, "Email Opened": 1},
    }


def test_a_key_hash_of_the_wrong_size_is_refused(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event("a")])
    destination = ledger.destination_id(US)
    with pytest.raises(ValueError, match="16 bytes"):
        ledger.plan_deliveries(run, destination, [b"short"])


# -- deliveries ----------------------------------------------------------------------------


def delivery_counts(ledger: Ledger, destination: Destination) -> dict[str, int]:
    for entry in ledger.status()["destinations"]:
        if entry["key_fingerprint"] == destination.key_fingerprint:
            return {state: entry[state] for state in ("sent", "pending", "failed")}
    raise AssertionError("destination missing from status")


def test_destination_id_is_stable(ledger: Ledger) -> None:
    first = ledger.destination_id(US)
    assert ledger.destination_id(US) == first
    assert ledger.destination_id(EU) != first
    other_namespace = Destination(US.endpoint, US.key_fingerprint, "another-namespace")
    assert ledger.destination_id(other_namespace) not in (first, ledger.destination_id(EU))


def test_plan_new_events_creates_pending_rows(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event("a"), event("b")])
    destination = ledger.destination_id(US)
    assert ledger.plan_deliveries(run, destination, hashes("a", "b")) == ["send", "send"]
    assert delivery_counts(ledger, US) == {"sent": 0, "pending": 2, "failed": 0}


def test_plan_sent_pending_failed_and_new(path: Path) -> None:
    with Ledger.open(path) as first:
        run = first.start_run("backfill", {})
        first.store_events(run, [event(key) for key in "spf"])
        destination = first.destination_id(US)
        first.plan_deliveries(run, destination, hashes("s", "p", "f"))
        first.mark_sent(run, destination, hashes("s"))
        first.mark_failed(run, destination, [(key_hash("f"), "400 bad request")])
        # "p" stays pending: this run never heard back about it.
    with Ledger.open(path) as second:
        run = second.start_run("backfill", {})
        second.store_events(run, [event("n")])
        destination = second.destination_id(US)
        plans = second.plan_deliveries(run, destination, hashes("s", "p", "f", "n"))
        assert plans == ["sent", "send", "send", "send"]
        assert delivery_counts(second, US) == {"sent": 1, "pending": 3, "failed": 0}


def test_two_destinations_are_independent(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event("a"), event("b")])
    us, eu = ledger.destination_id(US), ledger.destination_id(EU)
    ledger.plan_deliveries(run, us, hashes("a", "b"))
    ledger.mark_sent(run, us, hashes("a", "b"))
    assert ledger.plan_deliveries(run, us, hashes("a", "b")) == ["sent", "sent"]
    assert ledger.plan_deliveries(run, eu, hashes("a", "b")) == ["send", "send"]
    assert delivery_counts(ledger, US) == {"sent": 2, "pending": 0, "failed": 0}
    assert delivery_counts(ledger, EU) == {"sent": 0, "pending": 2, "failed": 0}


def test_transitions_and_an_acknowledgement_is_final(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event(key) for key in "abc"])
    destination = ledger.destination_id(US)
    ledger.plan_deliveries(run, destination, hashes("a", "b", "c"))
    ledger.mark_failed(run, destination, [(key_hash("a"), "timeout"), (key_hash("b"), "400")])
    assert delivery_counts(ledger, US) == {"sent": 0, "pending": 1, "failed": 2}
    ledger.mark_sent(run, destination, hashes("a", "c"))  # a retry that worked
    assert delivery_counts(ledger, US) == {"sent": 2, "pending": 0, "failed": 1}
    ledger.mark_failed(run, destination, [(key_hash("c"), "replay failed")])
    assert delivery_counts(ledger, US) == {"sent": 2, "pending": 0, "failed": 1}
    assert ledger.status()["destinations"][0]["failure_reasons"] == {"400": 1}


def test_mark_sent_without_a_plan_still_records(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event("a")])
    destination = ledger.destination_id(US)
    ledger.mark_sent(run, destination, hashes("a", "a"))
    assert ledger.plan_deliveries(run, destination, hashes("a")) == ["sent"]


def test_long_failure_reasons_are_cut(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event("a")])
    destination = ledger.destination_id(US)
    ledger.mark_failed(run, destination, [(key_hash("a"), "x" * 5000)])
    reasons = ledger.status()["destinations"][0]["failure_reasons"]
    assert list(reasons.values()) == [1]
    assert len(next(iter(reasons))) == ledger_module.MAX_REASON_CHARS


@pytest.mark.parametrize("operation", ["plan", "sent", "failed"])
def test_deliveries_of_unstored_events_are_refused(ledger: Ledger, operation: str) -> None:
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event("a")])
    destination = ledger.destination_id(US)
    with pytest.raises(LedgerError, match="never stored"):
        if operation == "plan":
            ledger.plan_deliveries(run, destination, hashes("a", "ghost"))
        elif operation == "sent":
            ledger.mark_sent(run, destination, hashes("a", "ghost"))
        else:
            ledger.mark_failed(run, destination, [(key_hash("ghost"), "x")])
    assert ledger.status()["destinations"][0]["pending"] == 0
    assert ledger.status()["destinations"][0]["sent"] == 0


def test_failed_mark_sent_rolls_back_entirely(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "CHUNK", 2)
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event(key) for key in "abcd"])
    destination = ledger.destination_id(US)
    ledger.plan_deliveries(run, destination, hashes(*"abcd"))
    # The first chunk (a, b) is written before the second one fails.
    with pytest.raises(LedgerError):
        ledger.mark_sent(run, destination, hashes("a", "b", "c", "ghost"))
    assert delivery_counts(ledger, US) == {"sent": 0, "pending": 4, "failed": 0}
    ledger.mark_sent(run, destination, hashes("a"))
    assert delivery_counts(ledger, US) == {"sent": 1, "pending": 3, "failed": 0}
    assert ledger.integrity_ok()


class Interrupting(Sequence[StoredEvent]):
    """A caller's sequence that is interrupted (Ctrl-C) after its first chunk."""

    def __init__(self, events: list[StoredEvent]) -> None:
        self.events = events
        self.slices = 0

    def __len__(self) -> int:
        return len(self.events)

    @overload
    def __getitem__(self, index: int) -> StoredEvent: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[StoredEvent]: ...
    def __getitem__(self, index: int | slice) -> StoredEvent | Sequence[StoredEvent]:
        if isinstance(index, slice):
            self.slices += 1
            if self.slices > 1:
                raise KeyboardInterrupt
        return self.events[index]


def test_interrupted_store_undoes_only_itself(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "CHUNK", 2)
    with Ledger.open(path) as opened:
        run = opened.start_run("backfill", {})
        opened.store_events(run, [event("kept")])  # not yet committed: grouped
        with pytest.raises(KeyboardInterrupt):
            opened.store_events(run, Interrupting([event(key) for key in "abcd"]))
        opened.finish_run(run, "interrupted", {})
    with Ledger.open(path, readonly=True) as reader:
        assert [e.key for e in reader.select_events(None, None, None)] == ["kept"]
        assert reader.status()["events"]["total"] == 1


def test_disk_full_is_one_line_and_leaves_the_ledger_consistent(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event("a")])
    destination = ledger.destination_id(US)
    ledger.mark_sent(run, destination, hashes("a"))
    conn = ledger._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    big = [event(f"k{i}", payload=b"x" * 2000) for i in range(2000)]
    with pytest.raises(LedgerError, match="full") as caught:
        ledger.store_events(run, big)
        ledger.mark_sent(run, destination, [])  # the commit may be where it fails
    assert "\n" not in str(caught.value)
    conn.execute("PRAGMA max_page_count = 1073741823")
    assert ledger.count_events(None, None, None) == 1
    assert delivery_counts(ledger, US)["sent"] == 1
    assert ledger.integrity_ok()


def test_marks_from_another_thread(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event("a")])
    destination = ledger.destination_id(US)
    worker = threading.Thread(target=ledger.mark_sent, args=(run, destination, hashes("a")))
    worker.start()
    worker.join()
    assert delivery_counts(ledger, US)["sent"] == 1


def test_recently_sent(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    run = ledger.start_run("backfill", {})
    ledger.store_events(run, [event(key) for key in "abc"])
    us, eu = ledger.destination_id(US), ledger.destination_id(EU)
    ledger.mark_sent(run, us, hashes("a", "b"))
    ledger.plan_deliveries(run, us, hashes("c"))
    ledger.mark_sent(run, eu, hashes("c"))
    assert ledger.recently_sent(us, hashes("a", "b", "c", "a")) == 2
    assert ledger.recently_sent(eu, hashes("a", "b", "c")) == 1
    later = ledger_module._now_ms() + 2 * 86_400_000
    monkeypatch.setattr(ledger_module, "_now_ms", lambda: later)
    assert ledger.recently_sent(us, hashes("a", "b")) == 0
    assert ledger.recently_sent(us, hashes("a", "b"), within_seconds=3 * 86400) == 2


# -- select_events -------------------------------------------------------------------------


@pytest.fixture
def timeline(ledger: Ledger) -> Ledger:
    run = ledger.start_run("backfill", {})
    ledger.store_events(
        run,
        [
            event("late", JUNE + 30),
            event("first", JUNE + 10),
            event("tie-1", JUNE + 20),
            event("click", JUNE + 20, "Email Link Clicked"),
            event("tie-2", JUNE + 20),
            event("edge", JUNE + 40),
        ],
    )
    return ledger


def keys_of(events: Iterator[StoredEvent]) -> list[str]:
    return [stored.key for stored in events]


def test_select_orders_by_time_then_insertion(timeline: Ledger) -> None:
    selected = keys_of(timeline.select_events(None, None, None))
    assert selected == ["first", "tie-1", "click", "tie-2", "late", "edge"]


def test_select_window_is_since_inclusive_until_exclusive(timeline: Ledger) -> None:
    assert keys_of(timeline.select_events(JUNE + 20, JUNE + 40, None)) == [
        "tie-1",
        "click",
        "tie-2",
        "late",
    ]
    assert keys_of(timeline.select_events(JUNE + 40, None, None)) == ["edge"]
    assert keys_of(timeline.select_events(None, JUNE + 10, None)) == []
    assert timeline.count_events(JUNE + 20, JUNE + 40, None) == 4


def test_select_by_names(timeline: Ledger) -> None:
    clicked = timeline.select_events(None, None, ["Email Link Clicked"])
    assert keys_of(clicked) == ["click"]
    both = timeline.select_events(JUNE + 20, None, ["Email Link Clicked", "Email Opened"])
    assert keys_of(both) == ["tie-1", "click", "tie-2", "late", "edge"]
    assert timeline.count_events(None, None, ["Email Bounced"]) == 0


def test_select_returns_what_was_stored(ledger: Ledger) -> None:
    stored = event("a", JUNE + 1, "Email Bounced", b'{"reason":"mailbox full"}')
    ledger.store_events(ledger.start_run("backfill", {}), [stored])
    assert list(ledger.select_events(None, None, None)) == [stored]


def test_select_pages_through_one_crowded_millisecond(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "SELECT_CHUNK", 3)
    run = ledger.start_run("backfill", {})
    crowd = [event(f"same-{i}", JUNE + 5) for i in range(8)]
    ledger.store_events(run, [event("before", JUNE), *crowd, event("after", JUNE + 6)])
    expected = ["before", *(f"same-{i}" for i in range(8)), "after"]
    assert keys_of(ledger.select_events(None, None, None)) == expected
    assert keys_of(ledger.select_events(JUNE + 5, JUNE + 6, None)) == expected[1:-1]


def test_select_streams_with_bounded_memory(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    payload = b"p" * 400
    total = 50_000
    for start in range(0, total, 5000):
        batch = [event(f"e{i}", JUNE + i, payload=payload) for i in range(start, start + 5000)]
        ledger.store_events(run, batch)
    selected = ledger.select_events(None, None, None)
    assert inspect.isgenerator(selected)
    tracemalloc.start()
    try:
        count = sum(1 for _ in selected)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == total
    # A list of 50,000 events with 400-byte payloads would be over 25 MB.
    assert peak < 8_000_000


def test_select_tolerates_writes_between_items(ledger: Ledger) -> None:
    run = ledger.start_run("replay", {})
    ledger.store_events(run, [event(f"e{i}", JUNE + i) for i in range(20)])
    destination = ledger.destination_id(US)
    seen = 0
    for stored in ledger.select_events(None, None, None):
        ledger.plan_deliveries(run, destination, [stored.key_hash])
        ledger.mark_sent(run, destination, [stored.key_hash])
        seen += 1
    assert seen == 20
    assert delivery_counts(ledger, US)["sent"] == 20


# -- runs, files, status -------------------------------------------------------------------


def test_status_shape_and_counts(ledger: Ledger, path: Path) -> None:
    run = ledger.start_run("backfill", {"rate": 500})
    ledger.store_events(run, [event("a"), event("b", JULY), event("c", JULY, "Email Bounced")])
    destination = ledger.destination_id(US)
    ledger.plan_deliveries(run, destination, hashes("a", "b", "c"))
    ledger.mark_sent(run, destination, hashes("a"))
    ledger.mark_failed(run, destination, [(key_hash("c"), "400 invalid")])
    ledger.mark_file(run, "exports/june.csv", 1234, 1_750_000_000.5, 3)
    ledger.finish_run(run, "completed_with_failures", {"sent": 1, "failed": 1})
    second = ledger.start_run("status", {})

    status = ledger.status(runs=5)
    assert set(status) == {"path", "schema_version", "events", "destinations", "runs", "files"}
    assert status["path"] == str(path)
    assert status["schema_version"] == SCHEMA_VERSION
    assert status["events"] == {
        "total": 3,
        "by_name": {"Email Bounced": 1, "Email Opened": 2},
        "by_month": {
            "2025-06": {"Email Opened": 1},
            "2025-07": {"Email Bounced": 1, "Email Opened": 1},
        },
    }
    [entry] = status["destinations"]
    assert entry["endpoint"] == US.endpoint and entry["key_fingerprint"] == US.key_fingerprint
    assert (entry["sent"], entry["pending"], entry["failed"]) == (1, 1, 1)
    assert entry["failure_reasons"] == {"400 invalid": 1}
    assert datetime.fromisoformat(entry["last_sent_at"].replace("Z", "+00:00")).tzinfo
    assert [r["id"] for r in status["runs"]] == [second, run]
    latest, finished = status["runs"]
    assert latest["status"] == "running" and latest["ended_at"] is None
    assert finished["command"] == "backfill"
    assert finished["status"] == "completed_with_failures"
    assert finished["summary"] == {"sent": 1, "failed": 1}
    assert finished["started_at"].endswith("Z") and finished["ended_at"].endswith("Z")
    [read] = status["files"]
    assert read["path"] == "exports/june.csv" and read["size"] == 1234
    assert read["records"] == 3 and read["run_id"] == run and read["read_at"].endswith("Z")
    json.dumps(status)  # printable as --json


def test_status_limits_runs(ledger: Ledger) -> None:
    for _ in range(4):
        ledger.finish_run(ledger.start_run("backfill", {}), "completed", {})
    assert len(ledger.status(runs=2)["runs"]) == 2


def test_mark_file_keeps_the_latest_read(ledger: Ledger) -> None:
    first = ledger.start_run("backfill", {})
    ledger.mark_file(first, "-", None, None, 10)
    second = ledger.start_run("backfill", {})
    ledger.mark_file(second, "-", None, None, 12)
    [read] = ledger.status()["files"]
    assert (read["run_id"], read["records"], read["size"]) == (second, 12, None)


def test_finish_run_rejects_unknown_status(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {})
    with pytest.raises(ValueError, match="unknown final run status"):
        ledger.finish_run(run, "done-ish", {})


def test_mark_stale_runs(path: Path) -> None:
    with Ledger.open(path) as first:
        stale = first.start_run("backfill", {})
        done = first.start_run("backfill", {})
        first.finish_run(done, "completed", {})
        # closed without finishing `stale`: what a killed process leaves behind
    with Ledger.open(path) as second:  # marks on open
        own = second.start_run("backfill", {})
        assert second.mark_stale_runs() == 0  # never our own run
        statuses = {r["id"]: r["status"] for r in second.status()["runs"]}
    assert statuses == {stale: "crashed", done: "completed", own: "running"}


def test_options_and_summary_round_trip_as_json(ledger: Ledger) -> None:
    run = ledger.start_run("backfill", {"files": [Path("a.csv")], "rate": 0})
    ledger.finish_run(run, "completed", {"events": {"Email Opened": 2}})
    assert ledger.status()["runs"][0]["summary"] == {"events": {"Email Opened": 2}}


def test_integrity_ok(ledger: Ledger) -> None:
    ledger.store_events(ledger.start_run("backfill", {}), [event("a")])
    assert ledger.integrity_ok()


# -- locking and crashes -------------------------------------------------------------------

HOLD_LOCK = """
    import sys
    from pathlib import Path
    from emailsrc.ledger import Ledger
    with Ledger.open(Path(sys.argv[1])):
        print("ready", flush=True)
        sys.stdin.readline()
"""


def test_a_second_run_is_refused_while_the_first_holds_the_lock(path: Path) -> None:
    holder = run_python(HOLD_LOCK, str(path))
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(LedgerBusy) as caught:
            Ledger.open(path)
        assert str(caught.value) == (
            f"another emailsrc run (pid {holder.pid}) is using {path}; "
            "wait for it or use another --state"
        )
        holder.stdin.write("done\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with Ledger.open(path) as after:
        assert after.schema_version == SCHEMA_VERSION


def test_the_lock_is_per_open_even_in_one_process(ledger: Ledger, path: Path) -> None:
    with pytest.raises(LedgerBusy, match=f"pid {os.getpid()}"):
        Ledger.open(path)


MARK_THEN_DIE = """
    import os, signal, sys
    from pathlib import Path
    from emailsrc.ledger import Destination, Ledger, StoredEvent, key_hash

    ledger = Ledger.open(Path(sys.argv[1]))
    run = ledger.start_run("backfill", {})
    destination = ledger.destination_id(Destination("https://api.segment.io", "fp", "ns"))
    events = [StoredEvent(key_hash(f"k{i}"), f"k{i}", "Email Opened", 1_750_000_000_000 + i, b"{}")
              for i in range(3000)]
    ledger.store_events(run, events)
    ledger.plan_deliveries(run, destination, [e.key_hash for e in events])
    ledger.mark_sent(run, destination, [e.key_hash for e in events[:2000]])
    ledger.store_events(run, [StoredEvent(key_hash("late"), "late", "Email Opened", 1, b"{}")])
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_acknowledged_marks_survive_kill_9(path: Path) -> None:
    dying = run_python(MARK_THEN_DIE, str(path))
    _, errors = dying.communicate(timeout=60)
    assert dying.returncode == -signal.SIGKILL, errors
    with Ledger.open(path) as reopened:
        assert reopened.integrity_ok()
        destination = reopened.destination_id(Destination("https://api.segment.io", "fp", "ns"))
        keys = [f"k{i}" for i in range(3000)]
        plans = reopened.plan_deliveries(
            reopened.start_run("backfill", {}), destination, hashes(*keys)
        )
        assert plans == ["sent"] * 2000 + ["send"] * 1000
        assert [r["status"] for r in reopened.status()["runs"]][-1] == "crashed"
