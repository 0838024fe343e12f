"""The ledger's read-only lookups for dry runs: find_destination and sent_among."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emailsrc.ledger import Destination, Ledger, StoredEvent, key_hash

JUNE = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1000)
US = Destination("https://api.segment.io", "fp-us", "6f1c1a52-3b7e-4c31-9d52-0c6a2c1d9a10")
EU = Destination("https://events.eu1.segmentapis.com", "fp-eu", US.namespace)


def event(key: str) -> StoredEvent:
    body = json.dumps({"event": "Email Opened", "properties": {"email_id": key}}).encode()
    return StoredEvent(key_hash(key), key, "Email Opened", JUNE, body)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A ledger where US has a sent, b pending, c failed; EU has nothing; d is stored."""
    where = tmp_path / "ledger.sqlite3"
    with Ledger.open(where) as ledger:
        run = ledger.start_run("backfill", {})
        ledger.store_events(run, [event(k) for k in "abcd"])
        us = ledger.destination_id(US)
        ledger.destination_id(EU)
        ledger.plan_deliveries(run, us, [key_hash(k) for k in "abc"])
        ledger.mark_sent(run, us, [key_hash("a")])
        ledger.mark_failed(run, us, [(key_hash("c"), "400: refused")])
        ledger.finish_run(run, "completed_with_failures", {})
    return where


@pytest.fixture
def readonly(path: Path) -> Iterator[Ledger]:
    with Ledger.open(path, readonly=True) as ledger:
        yield ledger


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_find_destination_knows_registered_ones_and_never_registers(
    path: Path, readonly: Ledger
) -> None:
    with Ledger.open(path, readonly=True) as other:
        assert readonly.find_destination(US) == other.find_destination(US) is not None
    assert readonly.find_destination(EU) not in (None, readonly.find_destination(US))
    unknown = Destination(US.endpoint, "fp-never-seen", US.namespace)
    before = readonly.status()["destinations"]
    assert readonly.find_destination(unknown) is None
    assert readonly.find_destination(Destination(US.endpoint, US.key_fingerprint, "x")) is None
    assert readonly.status()["destinations"] == before


def test_sent_among_is_only_what_was_acknowledged(readonly: Ledger) -> None:
    us = readonly.find_destination(US)
    eu = readonly.find_destination(EU)
    assert us is not None and eu is not None
    asked = [key_hash(k) for k in ("a", "b", "c", "d", "never-stored", "a")]
    assert readonly.sent_among(us, asked) == {key_hash("a")}  # not pending, failed, unknown
    assert readonly.sent_among(eu, asked) == set()
    assert readonly.sent_among(us, []) == set()


def test_sent_among_across_chunks(tmp_path: Path) -> None:
    where = tmp_path / "ledger.sqlite3"
    keys = [f"event-{n}" for n in range(12_000)]  # more than two internal chunks
    with Ledger.open(where) as ledger:
        run = ledger.start_run("backfill", {})
        ledger.store_events(run, [event(k) for k in keys])
        us = ledger.destination_id(US)
        ledger.mark_sent(run, us, [key_hash(k) for k in keys[::3]])
    with Ledger.open(where, readonly=True) as ledger:
        found = ledger.sent_among(us, [key_hash(k) for k in keys])
    assert found == {key_hash(k) for k in keys[::3]}


def test_lookups_work_while_a_run_holds_the_lock_and_write_nothing(path: Path) -> None:
    with Ledger.open(path) as writer:  # holds the run lock
        before = digest(path)
        with Ledger.open(path, readonly=True) as reader:
            us = reader.find_destination(US)
            assert us is not None
            assert reader.sent_among(us, [key_hash("a")]) == {key_hash("a")}
        assert digest(path) == before
        assert writer.find_destination(US) == us  # the writable ledger answers too


def test_lookups_on_a_missing_ledger_find_nothing(tmp_path: Path) -> None:
    where = tmp_path / "nothing-here.sqlite3"
    with Ledger.open(where, readonly=True) as ledger:
        assert ledger.find_destination(US) is None
        assert ledger.sent_among(1, [key_hash("a")]) == set()
    assert not where.exists()


def test_a_wrong_size_hash_is_refused(readonly: Ledger) -> None:
    us = readonly.find_destination(US)
    assert us is not None
    with pytest.raises(ValueError, match="16 bytes"):
        readonly.sent_among(us, [b"short"])
