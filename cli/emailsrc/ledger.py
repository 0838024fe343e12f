"""The SQLite ledger: which events exist, which destination has which, runs, files read.

Schema (version 1):

- ``events``: each normalized event once. ``id`` is the insertion order (the tie-break of
  replay order), ``key_hash`` (16 bytes, unique index) its identity, plus the key text, the
  name, the event time in ms (indexed: replay windows), the payload and the first run.
- ``event_counts``: events per (month, name), kept in step with ``events`` in the same
  transaction so ``status`` never scans millions of rows.
- ``destinations``: endpoint + write-key fingerprint + messageId namespace (never the key).
- ``deliveries``: (destination, event id) -> pending / sent / failed, when, by which run,
  why. Keyed by the event's insertion id, not its hash: a run plans and marks events it
  just stored, whose ids are neighbours, so each commit touches a few pages at the end of
  the tree instead of thousands of pages scattered by a random hash.
- ``runs`` and ``files``: what each command did and which inputs were read to the end.

Everything works in chunks through SQL: no call holds more than one chunk of keys in Python,
whatever the size of the ledger.

Commits are grouped. Each call is atomic (a savepoint), but store_events and plan_deliveries
leave their transaction open until the next call that must be durable (mark_sent,
mark_failed, the run's bookkeeping, close) or until the group is large or old. Inserting
random 16-byte hashes into a big index dirties about one page per key; committing 5,000
keys at a time rewrites thousands of pages per commit, grouping amortizes that. Losing an
uncommitted group to a crash only loses work the next run redoes: nothing in it was
acknowledged, because an acknowledgement commits everything before it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

KEY_HASH_BYTES = 16
SCHEMA_VERSION = 1
# Written to the file header so another application's database is never taken for ours.
APPLICATION_ID = 0x456D5372
RUN_STATUSES = frozenset(
    {"running", "completed", "completed_with_failures", "interrupted", "failed", "crashed"}
)
SELECT_CHUNK = 5000
BUSY_TIMEOUT_MS = 5000
# Per connection. Measured on a 1M-record backfill: 64 MiB gave 345 MB peak RSS and
# 16 MiB 148 MB at the same speed (41 s); past 16 MiB the cache buys nothing.
CACHE_KIB = 16384
GROUP_COMMIT_ROWS = 100_000
GROUP_COMMIT_SECONDS = 2.0
# 16 KiB pages: an event row is ~0.5 KiB, and bigger pages mean fewer splits and less
# per-page work on the insert path (measured: ~1.4x the store rate of 4 KiB pages).
PAGE_SIZE = 16384
# Checkpoint when the WAL reaches 64 MiB, not SQLite's 1000 pages: a grouped commit can be
# bigger than that alone, and a checkpoint (an fsync) after every commit would dominate.
WAL_CHECKPOINT_BYTES = 64 * 1024 * 1024
MAX_REASON_CHARS = 500
STATUS_REASONS = 20

CHUNK = 5000
_MIN_MS = -(2**63)
_MAX_MS = 2**63 - 1
_T = TypeVar("_T")

_SCHEMA_V1 = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        command TEXT NOT NULL,
        options TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        status TEXT NOT NULL,
        summary TEXT
    )
    """,
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        key_hash BLOB NOT NULL,
        key TEXT NOT NULL,
        name TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        payload BLOB NOT NULL,
        first_run_id INTEGER NOT NULL REFERENCES runs (id)
    )
    """,
    "CREATE UNIQUE INDEX events_by_key ON events (key_hash)",
    # (ts_ms) alone: its entries are (ts_ms, rowid), exactly the replay order, so windows
    # stream in order straight from the index with no sort.
    "CREATE INDEX events_by_time ON events (ts_ms)",
    """
    CREATE TABLE event_counts (
        month TEXT NOT NULL,
        name TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (month, name)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE destinations (
        id INTEGER PRIMARY KEY,
        endpoint TEXT NOT NULL,
        key_fingerprint TEXT NOT NULL,
        namespace TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (endpoint, key_fingerprint, namespace)
    )
    """,
    """
    CREATE TABLE deliveries (
        destination_id INTEGER NOT NULL REFERENCES destinations (id),
        event_id INTEGER NOT NULL REFERENCES events (id),
        state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
        run_id INTEGER NOT NULL REFERENCES runs (id),
        changed_at INTEGER NOT NULL,
        reason TEXT,
        PRIMARY KEY (destination_id, event_id)
    ) WITHOUT ROWID
    """,
    # Partial: only failed rows are in it, so it costs nothing on the pending/sent hot path
    # and makes the failure breakdown in status cheap.
    """
    CREATE INDEX deliveries_failed ON deliveries (destination_id, reason)
    WHERE state = 'failed'
    """,
    """
    CREATE TABLE files (
        path TEXT PRIMARY KEY,
        size INTEGER,
        mtime REAL,
        records INTEGER NOT NULL,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        read_at INTEGER NOT NULL
    )
    """,
)
MIGRATIONS: dict[int, tuple[str, ...]] = {1: _SCHEMA_V1}

# Skipping conflicts: a fresh backfill learns "all new" from the row count alone, without
# a lookup before the insert (the unique index makes that probe anyway).
_INSERT_EVENT = """
    INSERT INTO events (key_hash, key, name, ts_ms, payload, first_run_id)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT DO NOTHING
"""
_COUNT_NEW_EVENTS = """
    INSERT INTO event_counts (month, name, n)
    SELECT strftime('%Y-%m', ts_ms / 1000.0, 'unixepoch'), name, count(*)
    FROM events WHERE id > ? GROUP BY 1, 2
    ON CONFLICT (month, name) DO UPDATE SET n = n + excluded.n
"""
# Key hashes travel as one blob of 16-byte slices that SQL cuts apart: one fixed statement,
# prepared once, instead of an "IN (?, ?, ...)" list whose length changes with every call
# and costs more to prepare and bind than the lookups themselves. CROSS JOIN keeps the
# slots as the outer loop, so each slot is one probe of the unique index.
_SLOTS = """
    WITH RECURSIVE slot (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM slot WHERE i + 1 < :n)
"""
_EVENT_OF_SLOT = "events AS e ON e.key_hash = substr(:hashes, slot.i * 16 + 1, 16)"
_LOOKUP_EVENTS = f"""{_SLOTS}
    SELECT e.key_hash, e.id, e.first_run_id FROM slot CROSS JOIN {_EVENT_OF_SLOT}
"""
_LOOKUP_MET_AGAIN = f"""{_SLOTS}
    SELECT r.key_hash FROM slot CROSS JOIN run_seen AS r
    ON r.run_id = :run AND r.key_hash = substr(:hashes, slot.i * 16 + 1, 16)
"""
_DELIVERY_STATES = f"""{_SLOTS}
    SELECT e.key_hash, e.id, d.state FROM slot CROSS JOIN {_EVENT_OF_SLOT}
    LEFT JOIN deliveries AS d ON d.destination_id = :destination AND d.event_id = e.id
"""
_COUNT_RECENTLY_SENT = f"""{_SLOTS}
    SELECT count(*) FROM slot CROSS JOIN {_EVENT_OF_SLOT}
    JOIN deliveries AS d ON d.destination_id = :destination AND d.event_id = e.id
    WHERE d.state = 'sent' AND d.changed_at > :cutoff
"""
_SENT_AMONG = f"""{_SLOTS}
    SELECT e.key_hash FROM slot CROSS JOIN {_EVENT_OF_SLOT}
    JOIN deliveries AS d ON d.destination_id = :destination AND d.event_id = e.id
    WHERE d.state = 'sent'
"""
# An acknowledgement is a fact about the destination: nothing but a new acknowledgement
# changes a sent row (a later failed re-send of a replay does not undo it).
_SET_PENDING = """
    INSERT INTO deliveries (destination_id, event_id, state, run_id, changed_at)
    SELECT :destination, value, 'pending', :run, :now FROM json_each(:ids) WHERE true
    ON CONFLICT (destination_id, event_id) DO UPDATE SET
        state = 'pending', run_id = excluded.run_id, changed_at = excluded.changed_at,
        reason = NULL
    WHERE state != 'sent'
"""
_SET_SENT = f"""{_SLOTS}
    INSERT INTO deliveries (destination_id, event_id, state, run_id, changed_at)
    SELECT :destination, e.id, 'sent', :run, :now FROM slot CROSS JOIN {_EVENT_OF_SLOT}
    WHERE true
    ON CONFLICT (destination_id, event_id) DO UPDATE SET
        state = 'sent', run_id = excluded.run_id, changed_at = excluded.changed_at,
        reason = NULL
"""
_SET_FAILED = """
    INSERT INTO deliveries (destination_id, event_id, state, run_id, changed_at, reason)
    VALUES (?, ?, 'failed', ?, ?, ?)
    ON CONFLICT (destination_id, event_id) DO UPDATE SET
        state = 'failed', run_id = excluded.run_id, changed_at = excluded.changed_at,
        reason = excluded.reason
    WHERE state != 'sent'
"""
# Keyset paging in two steps: the rest of the current millisecond, then what follows it.
# Each is a seek on the (ts_ms, rowid) index; a row value "(ts_ms, id) > (?, ?)" is not
# (SQLite seeks on ts_ms alone and rescans every event of that millisecond per page).
_SELECT_SAME_MS = """
    SELECT id, key_hash, key, name, ts_ms, payload FROM events
    WHERE ts_ms = :ts AND id > :id AND ts_ms < :until {names}
    ORDER BY id LIMIT :limit
"""
_SELECT_LATER = """
    SELECT id, key_hash, key, name, ts_ms, payload FROM events
    WHERE ts_ms > :ts AND ts_ms < :until {names}
    ORDER BY ts_ms, id LIMIT :limit
"""

# Events that are known from an earlier run and were met again in this one. A temporary
# table lives in SQLite's temp file, not in Python, and vanishes with the connection.
_RUN_SEEN = """
    CREATE TEMP TABLE IF NOT EXISTS run_seen (
        run_id INTEGER NOT NULL,
        key_hash BLOB NOT NULL,
        PRIMARY KEY (run_id, key_hash)
    ) WITHOUT ROWID
"""

_HINTS = {
    "disk is full": "free some disk space or use another --state",
    "readonly database": "check the permissions of the file and its directory",
    "file is not a database": "it is not an emailsrc ledger; use another --state",
    "unable to open database file": "check that its directory exists and is writable",
    "malformed": "the file is damaged; move it aside or use another --state",
    "disk I/O error": "the disk may be full or failing, or the file over a size limit; "
    "free some space or use another --state",
}


def key_hash(key: str) -> bytes:
    """The 16-byte identity of an event key, as stored in the ledger."""
    return hashlib.blake2b(key.encode(), digest_size=KEY_HASH_BYTES).digest()


@dataclass(slots=True, frozen=True)
class Destination:
    endpoint: str
    key_fingerprint: str  # computed elsewhere from the write key; never the key
    namespace: str  # the messageId namespace (a UUID string)


@dataclass(slots=True)
class StoredEvent:
    key_hash: bytes
    key: str
    name: str
    timestamp_ms: int
    payload: bytes  # the Track payload without messageId / sentAt / integrations


class LedgerBusy(Exception):
    """Another run holds the ledger."""


class LedgerError(Exception):
    """The ledger can't be read or written; the message is one line for the user."""


class _NotStored(Exception):
    """A delivery for an event the ledger never stored."""


class Ledger:
    """One open ledger. Writable ledgers hold the run lock until ``close``."""

    def __init__(
        self,
        path: Path,
        connection: sqlite3.Connection,
        *,
        readonly: bool,
        lock_fd: int | None,
        schema_version: int,
    ) -> None:
        self.path = path
        self.readonly = readonly
        self.schema_version = schema_version
        self._conn: sqlite3.Connection | None = connection
        self._lock_fd = lock_fd
        # The sender may report outcomes from worker threads; one connection, one at a time.
        self._mutex = threading.RLock()
        self._own_runs: set[int] = set()
        self._group_rows = 0
        self._group_started = 0.0

    # -- opening and closing ---------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> Ledger:
        """Open (and create and migrate, unless ``readonly``) the ledger at ``path``."""
        path = Path(path)
        if readonly:
            return cls._open_readonly(path)
        return cls._open_writable(path)

    @classmethod
    def _open_writable(cls, path: Path) -> Ledger:
        with _errors(path, "open"):
            _make_private_dirs(path.parent)
        lock_fd = _take_lock(path)
        try:
            with _errors(path, "open"):
                _create_private_file(path)
                connection = _connect(path, readonly=False)
        except BaseException:
            _release_lock(lock_fd)
            raise
        ledger = cls(path, connection, readonly=False, lock_fd=lock_fd, schema_version=0)
        try:
            ledger._prepare_writable()
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _prepare_writable(self) -> None:
        conn = self._connection("open")
        with _errors(self.path, "open"):
            _configure(conn)
            # WAL with synchronous=NORMAL: a commit is in the WAL file (the kernel's page
            # cache) when COMMIT returns; only checkpoints are fsynced. kill -9 of this
            # process can't take back what the kernel already has, so an acknowledged event
            # stays marked sent. Power loss may roll back the last commits (never corrupt
            # the file): those events are re-sent with the same messageId, which Segment
            # drops as duplicates. FULL would fsync every commit for no gain against crashes.
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # new files only
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            pages = WAL_CHECKPOINT_BYTES // int(conn.execute("PRAGMA page_size").fetchone()[0])
            conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_CHECKPOINT_BYTES}")
            self.schema_version = _migrate(conn, self.path)
            conn.execute(_RUN_SEEN)
        _tighten_side_files(self.path)
        self.mark_stale_runs()

    @classmethod
    def _open_readonly(cls, path: Path) -> Ledger:
        with _errors(path, "open"):
            if not path.exists():
                return cls._empty(path)
            connection = _connect(path, readonly=True)
        try:
            with _errors(path, "open"):
                _configure(connection)
                connection.execute("PRAGMA query_only = ON")
                version = _check_identity(connection, path)
        except LedgerError:
            connection.close()
            if _hot_journal(path):
                return cls._empty(path)
            raise
        except BaseException:
            connection.close()
            raise
        if version == 0:
            connection.close()
            return cls._empty(path)
        return cls(path, connection, readonly=True, lock_fd=None, schema_version=version)

    @classmethod
    def _empty(cls, path: Path) -> Ledger:
        """A missing or blank ledger read by status or a dry run: empty, and not created."""
        connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        for statement in _SCHEMA_V1:
            connection.execute(statement)
        connection.execute("PRAGMA query_only = ON")
        return cls(path, connection, readonly=True, lock_fd=None, schema_version=0)

    def close(self) -> None:
        """Commit what is pending, close the database, release the run lock. Idempotent."""
        with self._mutex:
            conn, self._conn = self._conn, None
            try:
                if conn is not None and conn.in_transaction:
                    with _errors(self.path, "save the last changes"):
                        self._commit(conn)
            finally:
                if conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        conn.close()
                if self._lock_fd is not None:
                    _release_lock(self._lock_fd)
                    self._lock_fd = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- runs and destinations -------------------------------------------------------------

    def start_run(self, command: str, options: dict[str, Any]) -> int:
        """Record a new run as running; ``options`` must already be free of secrets."""
        with self._write("start a run", durable=True) as conn:
            cursor = conn.execute(
                "INSERT INTO runs (command, options, pid, started_at, status)"
                " VALUES (?, ?, ?, ?, 'running')",
                (command, _to_json(options), os.getpid(), _now_ms()),
            )
        run_id = int(cursor.lastrowid or 0)
        self._own_runs.add(run_id)
        return run_id

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"unknown final run status {status!r}")
        with self._write("finish the run", durable=True) as conn:
            conn.execute(
                "UPDATE runs SET status = ?, ended_at = ?, summary = ? WHERE id = ?",
                (status, _now_ms(), _to_json(summary), run_id),
            )

    def mark_stale_runs(self) -> int:
        """Mark runs left "running" by a process that is gone as "crashed".

        Every writer holds the run lock for its whole life and we hold it now, so a
        "running" run that is not ours has no live process: no pid check (pids are reused).
        """
        own = sorted(self._own_runs)
        marks = ",".join("?" * len(own))
        spared = f" AND id NOT IN ({marks})" if own else ""
        with self._write("mark crashed runs", durable=True) as conn:
            cursor = conn.execute(
                f"UPDATE runs SET status = 'crashed' WHERE status = 'running'{spared}", own
            )
        return cursor.rowcount

    def destination_id(self, destination: Destination) -> int:
        """The id of a destination, registering it the first time."""
        identity = (destination.endpoint, destination.key_fingerprint, destination.namespace)
        with self._write("register the destination", durable=True) as conn:
            conn.execute(
                "INSERT INTO destinations (endpoint, key_fingerprint, namespace, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (*identity, _now_ms()),
            )
            row = conn.execute(
                "SELECT id FROM destinations"
                " WHERE endpoint = ? AND key_fingerprint = ? AND namespace = ?",
                identity,
            ).fetchone()
        return int(row[0])

    def find_destination(self, destination: Destination) -> int | None:
        """The id of a destination this ledger knows, or None. Never registers it, so it
        works on a read-only ledger: a dry run asks without writing or locking."""
        identity = (destination.endpoint, destination.key_fingerprint, destination.namespace)
        with self._read("look up the destination") as conn:
            row = conn.execute(
                "SELECT id FROM destinations"
                " WHERE endpoint = ? AND key_fingerprint = ? AND namespace = ?",
                identity,
            ).fetchone()
        return None if row is None else int(row[0])

    # -- events ----------------------------------------------------------------------------

    def store_events(self, run_id: int, events: Sequence[StoredEvent]) -> list[str]:
        """Store events; for each, in order: "new", "duplicate" (this run) or "known".

        Atomic; committed with the next durable call or group (see the module docstring).
        A "known" event keeps the payload it was first stored with: that is what an
        earlier run may already have delivered under this key's messageId, so a replay
        must re-send it and not whatever a later export of the same event parses to. It
        also spares a write per event when a whole backfill is run again.
        """
        states: list[str] = []
        with self._write("store events", rows=len(events)) as conn:
            for chunk in _chunks(events, CHUNK):
                states.extend(_store_chunk(conn, run_id, chunk))
        return states

    def select_events(
        self, since_ms: int | None, until_ms: int | None, names: Sequence[str] | None
    ) -> Iterator[StoredEvent]:
        """Stored events with since <= time < until (and one of ``names``), in time order
        then insertion order, fetched a chunk at a time.

        Each chunk is its own short query resuming after the last row (keyset paging on
        the time index), so the caller may write to the ledger between items.
        """
        self._connection("select events")
        return self._stream_events(since_ms, until_ms, list(names) if names else None)

    def _stream_events(
        self, since_ms: int | None, until_ms: int | None, names: list[str] | None
    ) -> Iterator[StoredEvent]:
        name_params = {f"name{i}": name for i, name in enumerate(names or ())}
        name_filter = f"AND name IN ({','.join(':' + key for key in name_params)})" if names else ""
        same_ms = _SELECT_SAME_MS.format(names=name_filter)
        later = _SELECT_LATER.format(names=name_filter)
        # id 0 is never used, so (since, 0) admits every event at exactly `since`.
        ts, last_id = (_MIN_MS if since_ms is None else since_ms), 0
        until = _MAX_MS if until_ms is None else until_ms
        while True:
            params = {"ts": ts, "id": last_id, "until": until, "limit": SELECT_CHUNK}
            with self._read("select events") as conn:
                rows = conn.execute(same_ms, params | name_params).fetchall()
                if len(rows) < SELECT_CHUNK:
                    params["limit"] = SELECT_CHUNK - len(rows)
                    rows += conn.execute(later, params | name_params).fetchall()
            for row in rows:
                yield StoredEvent(row[1], row[2], row[3], row[4], row[5])
            if len(rows) < SELECT_CHUNK:
                return
            last_id, ts = rows[-1][0], rows[-1][4]

    def count_events(
        self, since_ms: int | None, until_ms: int | None, names: Sequence[str] | None
    ) -> int:
        """How many events ``select_events`` would yield."""
        name_filter = f" AND name IN ({','.join('?' * len(names))})" if names else ""
        since = _MIN_MS if since_ms is None else since_ms
        until = _MAX_MS if until_ms is None else until_ms
        with self._read("count events") as conn:
            row = conn.execute(
                f"SELECT count(*) FROM events WHERE ts_ms >= ? AND ts_ms < ?{name_filter}",
                (since, until, *(names or ())),
            ).fetchone()
        return int(row[0])

    # -- deliveries ------------------------------------------------------------------------

    def plan_deliveries(
        self, run_id: int, destination_id: int, key_hashes: Sequence[bytes]
    ) -> list[str]:
        """For each stored event: "sent" (acknowledged earlier, don't send) or "send".

        Every "send" gets a pending row owned by ``run_id``, so a run that dies before the
        acknowledgement leaves a trace of what it was sending.
        """
        plans: list[str] = []
        with self._write("plan deliveries", rows=len(key_hashes)) as conn:
            for chunk in _chunks(key_hashes, CHUNK):
                plans.extend(_plan_chunk(conn, run_id, destination_id, chunk))
        return plans

    def mark_sent(self, run_id: int, destination_id: int, key_hashes: Sequence[bytes]) -> None:
        """Record acknowledged events; committed (with all before it) when this returns."""
        now = _now_ms()
        with self._write("mark events sent", durable=True) as conn:
            for chunk in _chunks(list(dict.fromkeys(key_hashes)), CHUNK):
                params = {"destination": destination_id, "run": run_id, "now": now}
                # rowcount is -1 for a statement that starts with WITH; total_changes is not.
                # No WHERE on the upsert: every stored event in the chunk changes one row.
                before = conn.total_changes
                conn.execute(_SET_SENT, _slots(chunk) | params)
                _require_stored(len(chunk) - (conn.total_changes - before))

    def mark_failed(
        self, run_id: int, destination_id: int, failures: Sequence[tuple[bytes, str]]
    ) -> None:
        """Record events that could not be delivered, with the reason why."""
        now = _now_ms()
        with self._write("mark events failed", durable=True) as conn:
            for chunk in _chunks(failures, CHUNK):
                ids = _event_ids(conn, list(dict.fromkeys(value for value, _ in chunk)))
                _require_stored(len({value for value, _ in chunk} - ids.keys()))
                conn.executemany(
                    _SET_FAILED,
                    [
                        (destination_id, ids[value], run_id, now, reason[:MAX_REASON_CHARS])
                        for value, reason in chunk
                    ],
                )

    def recently_sent(
        self, destination_id: int, key_hashes: Sequence[bytes], within_seconds: float = 86400
    ) -> int:
        """How many of these events were sent to this destination less than that long ago."""
        cutoff = _now_ms() - int(within_seconds * 1000)
        total = 0
        with self._read("check recent sends") as conn:
            for chunk in _chunks(list(dict.fromkeys(key_hashes)), CHUNK):
                params = _slots(chunk) | {"destination": destination_id, "cutoff": cutoff}
                total += int(conn.execute(_COUNT_RECENTLY_SENT, params).fetchone()[0])
        return total

    def sent_among(self, destination_id: int, key_hashes: Sequence[bytes]) -> set[bytes]:
        """Which of these events the destination has acknowledged. Read-only (a dry run
        leaves them out of its plan); holds one chunk of keys at a time besides the result.
        """
        found: set[bytes] = set()
        with self._read("look up sent events") as conn:
            for chunk in _chunks(list(dict.fromkeys(key_hashes)), CHUNK):
                params = _slots(chunk) | {"destination": destination_id}
                found.update(row[0] for row in conn.execute(_SENT_AMONG, params))
        return found

    # -- files, status, health -------------------------------------------------------------

    def mark_file(
        self, run_id: int, path: str, size: int | None, mtime: float | None, records: int
    ) -> None:
        """Record that ``path`` was read to the end by ``run_id``."""
        with self._write("record the input file", durable=True) as conn:
            conn.execute(
                "INSERT INTO files (path, size, mtime, records, run_id, read_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET"
                " size = excluded.size, mtime = excluded.mtime, records = excluded.records,"
                " run_id = excluded.run_id, read_at = excluded.read_at",
                (path, size, mtime, records, run_id, _now_ms()),
            )

    def status(self, *, runs: int = 10, files: int = 20) -> dict[str, Any]:
        """Counts by event, destination and state, the last runs and the last files read."""
        with self._read("read the status") as conn, _snapshot(conn):
            return {
                "path": str(self.path),
                "schema_version": self.schema_version,
                "events": _event_totals(conn),
                "destinations": _destination_totals(conn),
                "runs": _last_runs(conn, runs),
                "files": _last_files(conn, files),
            }

    def integrity_ok(self) -> bool:
        """PRAGMA integrity_check; a file too damaged to check is not ok either."""
        conn = self._connection("check integrity")
        with self._mutex:
            try:
                rows = conn.execute("PRAGMA integrity_check").fetchall()
            except sqlite3.DatabaseError:
                return False
        return rows == [("ok",)]

    # -- plumbing --------------------------------------------------------------------------

    def _connection(self, action: str) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError(f"ledger {self.path} is closed; cannot {action}")
        return self._conn

    @contextlib.contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        conn = self._connection(action)
        with self._mutex, _errors(self.path, action):
            yield conn

    @contextlib.contextmanager
    def _write(
        self, action: str, *, durable: bool = False, rows: int = 0
    ) -> Iterator[sqlite3.Connection]:
        """One atomic call: undone on any error or interrupt, committed when ``durable``
        or when the open group is big or old enough."""
        conn = self._connection(action)
        if self.readonly:
            raise LedgerError(f"ledger {self.path} is open read-only; cannot {action}")
        with self._mutex, _errors(self.path, action):
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
                self._group_rows, self._group_started = 0, time.monotonic()
            conn.execute("SAVEPOINT call")
            try:
                yield conn
                conn.execute("RELEASE call")
            except BaseException:
                _undo_call(conn)
                raise
            self._group_rows += rows
            if durable or self._group_is_due():
                self._commit(conn)

    def _group_is_due(self) -> bool:
        return (
            self._group_rows >= GROUP_COMMIT_ROWS
            or time.monotonic() - self._group_started >= GROUP_COMMIT_SECONDS
        )

    def _commit(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        finally:
            self._group_rows = 0


# -- the chunked work ----------------------------------------------------------------------


def _store_chunk(conn: sqlite3.Connection, run_id: int, chunk: Sequence[StoredEvent]) -> list[str]:
    firsts: dict[bytes, StoredEvent] = {}
    for event in chunk:
        firsts.setdefault(event.key_hash, event)
    _check_sizes(firsts)
    last_id = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
    rows = [(h, e.key, e.name, e.timestamp_ms, e.payload, run_id) for h, e in firsts.items()]
    inserted = conn.executemany(_INSERT_EVENT, rows).rowcount
    earlier: dict[bytes, int] = {}  # stored before this call -> its first run
    if inserted < len(firsts):
        found = conn.execute(_LOOKUP_EVENTS, _slots(list(firsts))).fetchall()
        earlier = {value: first for value, event_id, first in found if event_id <= last_id}
    if inserted:
        conn.execute(_COUNT_NEW_EVENTS, (last_id,))
    if not earlier and len(firsts) == len(chunk):
        return ["new"] * len(chunk)  # the common case of a fresh backfill
    met_again = _met_again(conn, run_id, [v for v, first in earlier.items() if first != run_id])
    states, known = _classify(run_id, chunk, earlier, met_again)
    if known:
        conn.executemany("INSERT INTO run_seen (run_id, key_hash) VALUES (?, ?)", known)
    return states


def _met_again(conn: sqlite3.Connection, run_id: int, values: list[bytes]) -> set[bytes]:
    """Which of these events from earlier runs this run has already met."""
    if not values:
        return set()
    rows = conn.execute(_LOOKUP_MET_AGAIN, _slots(values) | {"run": run_id})
    return {row[0] for row in rows}


def _classify(
    run_id: int,
    chunk: Sequence[StoredEvent],
    earlier: dict[bytes, int],
    met_again: set[bytes],
) -> tuple[list[str], list[tuple[int, bytes]]]:
    """States for a chunk, plus the run_seen rows for events known from earlier runs."""
    states: list[str] = []
    known: list[tuple[int, bytes]] = []
    taken: set[bytes] = set()
    for event in chunk:
        value = event.key_hash
        first = earlier.get(value)
        if value in taken or first == run_id or value in met_again:
            states.append("duplicate")
            continue
        taken.add(value)
        if first is None:
            states.append("new")
        else:
            known.append((run_id, value))
            states.append("known")
    return states, known


def _plan_chunk(
    conn: sqlite3.Connection, run_id: int, destination_id: int, chunk: Sequence[bytes]
) -> list[str]:
    unique = list(dict.fromkeys(chunk))
    rows = conn.execute(_DELIVERY_STATES, _slots(unique) | {"destination": destination_id})
    sent: set[bytes] = set()
    due: list[int] = []
    for value, event_id, state in rows:
        if state == "sent":
            sent.add(value)
        else:
            due.append(event_id)
    _require_stored(len(unique) - len(sent) - len(due))
    if due:
        params = {"destination": destination_id, "run": run_id, "now": _now_ms()}
        conn.execute(_SET_PENDING, params | {"ids": json.dumps(due)})
    return ["sent" if value in sent else "send" for value in chunk]


def _event_ids(conn: sqlite3.Connection, values: Sequence[bytes]) -> dict[bytes, int]:
    rows = conn.execute(_LOOKUP_EVENTS, _slots(values)).fetchall()
    return {value: event_id for value, event_id, _ in rows}


def _slots(values: Sequence[bytes]) -> dict[str, Any]:
    """Parameters for the slot statements: the hashes as one blob, and how many."""
    _check_sizes(values)
    return {"n": len(values), "hashes": b"".join(values)}


def _check_sizes(values: Iterable[bytes]) -> None:
    # One hash of another size would shift every slot after it onto the wrong bytes.
    for value in values:
        if len(value) != KEY_HASH_BYTES:
            raise ValueError(f"a key hash is {KEY_HASH_BYTES} bytes, not {len(value)}")


def _require_stored(missing: int) -> None:
    # Deliveries hang off stored events; a hash the ledger never stored is a caller's bug
    # that must not pass silently as "sent".
    if missing > 0:
        raise _NotStored(f"{missing} of these events were never stored in the ledger")


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- status pieces -------------------------------------------------------------------------


def _event_totals(conn: sqlite3.Connection) -> dict[str, Any]:
    by_name: dict[str, int] = {}
    by_month: dict[str, dict[str, int]] = {}
    rows = conn.execute("SELECT month, name, n FROM event_counts ORDER BY month, name")
    for month, name, count in rows:
        by_name[name] = by_name.get(name, 0) + count
        by_month.setdefault(month, {})[name] = count
    return {
        "total": sum(by_name.values()),
        "by_name": dict(sorted(by_name.items())),
        "by_month": by_month,
    }


def _destination_totals(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    destinations = conn.execute(
        "SELECT id, endpoint, key_fingerprint, namespace FROM destinations ORDER BY id"
    ).fetchall()
    for destination_id, endpoint, fingerprint, namespace in destinations:
        entry: dict[str, Any] = {
            "endpoint": endpoint,
            "key_fingerprint": fingerprint,
            "namespace": namespace,
            "sent": 0,
            "pending": 0,
            "failed": 0,
            "last_sent_at": None,
        }
        counts = conn.execute(
            "SELECT state, count(*), max(changed_at) FROM deliveries"
            " WHERE destination_id = ? GROUP BY state",
            (destination_id,),
        )
        for state, count, last in counts:
            entry[state] = count
            if state == "sent":
                entry["last_sent_at"] = _iso(last)
        entry["failure_reasons"] = dict(
            conn.execute(
                "SELECT coalesce(reason, ''), count(*) FROM deliveries"
                " WHERE destination_id = ? AND state = 'failed'"
                " GROUP BY reason ORDER BY 2 DESC, 1 LIMIT ?",
                (destination_id, STATUS_REASONS),
            )
        )
        result.append(entry)
    return result


def _last_runs(conn: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, command, started_at, ended_at, status, summary FROM runs"
        " ORDER BY id DESC LIMIT ?",
        (limit,),
    )
    return [
        {
            "id": run_id,
            "command": command,
            "started_at": _iso(started),
            "ended_at": _iso(ended),
            "status": status,
            "summary": json.loads(summary) if summary else None,
        }
        for run_id, command, started, ended, status, summary in rows
    ]


def _last_files(conn: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT path, size, mtime, records, run_id, read_at FROM files"
        " ORDER BY read_at DESC, path LIMIT ?",
        (limit,),
    )
    return [
        {
            "path": path,
            "size": size,
            "mtime": _iso(round(mtime * 1000)) if mtime is not None else None,
            "records": records,
            "run_id": run_id,
            "read_at": _iso(read_at),
        }
        for path, size, mtime, records, run_id, read_at in rows
    ]


# -- the file, its lock, its schema --------------------------------------------------------


def lock_path(path: Path) -> Path:
    """The sibling file whose flock marks a run in progress."""
    return path.with_name(path.name + ".lock")


def _make_private_dirs(directory: Path) -> None:
    """Create missing directories one by one with 0700 (mkdir(parents=True) ignores mode)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for each in reversed(missing):
        each.mkdir(mode=0o700, exist_ok=True)
    if not directory.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory))


def _create_private_file(path: Path) -> None:
    # Created here, not by SQLite, so it is 0600 from its first byte: it holds addresses.
    # A file that existed already (touched by hand, say) is tightened too.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _hot_journal(path: Path) -> bool:
    """A rollback journal left by a kill during the ledger's creation. Only creation writes
    through a rollback journal (everything after goes through the WAL), so until a writable
    open rolls it back the ledger holds nothing a reader could show."""
    journal = Path(f"{path}-journal")
    return journal.exists() and journal.stat().st_size > 0


def _tighten_side_files(path: Path) -> None:
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(OSError):
            os.chmod(f"{path}{suffix}", 0o600)


def _take_lock(path: Path) -> int:
    where = lock_path(path)
    with _errors(path, "lock"):
        fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise LedgerBusy(
            f"another emailsrc run (pid {holder}) is using {path}; "
            "wait for it or use another --state"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise LedgerError(f"ledger {path}: cannot lock {where}: {exc.strerror}") from exc
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def _release_lock(fd: int) -> None:
    # An explicit unlock: a forked child sharing the descriptor must not keep the lock.
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    with contextlib.suppress(OSError):
        os.close(fd)


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    # Autocommit mode: every transaction is an explicit BEGIN ... COMMIT in Ledger._write.
    if readonly:
        return sqlite3.connect(
            f"{path.absolute().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Bounded: the hot end of the tables and most of a million-event key index fit in it;
    # a bigger ledger reads the rest through the kernel's cache, never into Python.
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")


def _migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the schema to SCHEMA_VERSION in one transaction; returns the version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _check_identity(conn, path)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return SCHEMA_VERSION


def _check_identity(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of an emailsrc ledger (0: blank); refuse anything else."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    application = int(conn.execute("PRAGMA application_id").fetchone()[0])
    blank = application == 0 and version == 0 and not _has_tables(conn)
    if application != APPLICATION_ID and not blank:
        raise LedgerError(
            f"{path} is a SQLite database but not an emailsrc ledger; use another --state"
        )
    if version > SCHEMA_VERSION:
        raise LedgerError(
            f"ledger {path} has schema version {version}, newer than this emailsrc "
            f"understands ({SCHEMA_VERSION}); upgrade emailsrc or use another --state"
        )
    return version


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """A read transaction, so that several queries see one state of the file."""
    if conn.in_transaction:  # our own open group: already one consistent view
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        _rollback(conn)


def _undo_call(conn: sqlite3.Connection) -> None:
    # After disk-full or I/O errors SQLite may have rolled back the whole transaction
    # already; then there is no savepoint left to return to.
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK TO call")
            conn.execute("RELEASE call")


def _rollback(conn: sqlite3.Connection) -> None:
    # The original error matters more than a failed rollback (SQLite rolls back anyway
    # when the connection closes).
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


@contextlib.contextmanager
def _errors(path: Path, action: str) -> Iterator[None]:
    """Turn sqlite3 and OS errors into one LedgerError line."""
    try:
        yield
    except (sqlite3.Error, _NotStored) as exc:
        raise LedgerError(_describe(path, action, str(exc) or type(exc).__name__)) from exc
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        reason = f"{exc.strerror or exc}{where}"
        raise LedgerError(_describe(path, action, reason)) from exc


def _describe(path: Path, action: str, reason: str) -> str:
    line = " ".join(reason.split())
    hint = next((text for marker, text in _HINTS.items() if marker in line), None)
    return f"ledger {path}: cannot {action}: {line}" + (f" ({hint})" if hint else "")


# -- small values --------------------------------------------------------------------------


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
