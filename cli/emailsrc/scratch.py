"""A throwaway SQLite file for what a run must remember without holding it in memory:
keys seen in a dry run, distinct user and anonymous ids."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

_CHUNK = 900  # under SQLite's bound-variable limit on every build


class ScratchStore:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="emailsrc-")
        self._db = sqlite3.connect(Path(self._dir.name) / "scratch.sqlite3")
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE seen (h BLOB PRIMARY KEY) WITHOUT ROWID;
            CREATE TABLE ids (kind INTEGER, id TEXT, PRIMARY KEY (kind, id)) WITHOUT ROWID;
            """
        )

    def first_seen(self, hashes: Sequence[bytes]) -> list[bool]:
        """For each hash, in order: True the first time it is ever given, else False."""
        known: set[bytes] = set()
        for start in range(0, len(hashes), _CHUNK):
            part = hashes[start : start + _CHUNK]
            marks = ",".join("?" * len(part))
            known.update(
                row[0] for row in self._db.execute(f"SELECT h FROM seen WHERE h IN ({marks})", part)
            )
        result: list[bool] = []
        fresh: list[tuple[bytes]] = []
        for value in hashes:
            if value in known:
                result.append(False)
            else:
                known.add(value)
                fresh.append((value,))
                result.append(True)
        self._db.executemany("INSERT INTO seen VALUES (?)", fresh)
        return result

    def add_identities(self, user_ids: Iterable[str], anonymous_ids: Iterable[str]) -> None:
        # One person's events come together (delivered, opened, clicked): a set drops most
        # repeats before each costs a statement, and sorted rows insert into neighbouring
        # pages of the index instead of random ones.
        rows = [(1, value) for value in sorted(set(user_ids))]
        rows += [(2, value) for value in sorted(set(anonymous_ids))]
        self._db.executemany("INSERT OR IGNORE INTO ids VALUES (?, ?)", rows)

    def distinct_identities(self) -> tuple[int, int]:
        counts = dict(self._db.execute("SELECT kind, count(*) FROM ids GROUP BY kind").fetchall())
        return counts.get(1, 0), counts.get(2, 0)

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()
