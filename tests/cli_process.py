"""Run emailsrc as a real process and read what it left behind: the pieces the fault,
crash and security suites share.

Inputs are Customer.io reporting-webhook lines with unique event ids, so each event's key
is `customerio:<event_id>` and its messageId can be computed here, independently of the
code under test, and compared with what the server received.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from emailsrc.secrets import WriteKey
from emailsrc.segment import message_id, message_namespace

WRITE_KEY = "wk_TEST_3f9c2a71d8e64b05a1c7e9f2"
# Small retry settings so a fault costs milliseconds, not the production half second.
FAST_RETRIES = {
    "EMAILSRC_BACKOFF_BASE": "0.01",
    "EMAILSRC_BACKOFF_MAX": "0.05",
    "EMAILSRC_TIMEOUT": "2",
    "EMAILSRC_MAX_ATTEMPTS": "40",
}


def write_export(
    path: Path, count: int, *, start: int = 0, pad: int = 0, users: int = 97
) -> list[str]:
    """A JSONL export of `count` delivered events; returns their event keys in order.

    `pad` characters of subject make events bigger, so batches fill by bytes and a small
    export still needs many requests.
    """
    keys: list[str] = []
    with path.open("w", encoding="utf-8") as out:
        for number in range(start, start + count):
            event_id = f"ev-{number:07d}"
            record = {
                "event_id": event_id,
                "object_type": "email",
                "metric": "delivered",
                "timestamp": 1_748_779_200 + number,
                "data": {
                    "delivery_id": f"dlv-{number}",
                    "subject": f"issue {number} " + "x" * pad,
                    "identifiers": {
                        "id": f"user-{number % users}",
                        "email": f"p{number}@example.com",
                    },
                },
            }
            out.write(json.dumps(record) + "\n")
            keys.append(f"customerio:{event_id}")
    return keys


def message_ids(keys: Iterable[str], write_key: str = WRITE_KEY) -> set[str]:
    """The messageIds a real run sends for these event keys to this write key's source."""
    namespace = message_namespace(WriteKey(write_key), None)
    return {message_id(namespace, key) for key in keys}


def emailsrc_env(home: Path, write_key: str | None = WRITE_KEY, **extra: str) -> dict[str, str]:
    """A clean environment: no inherited Segment settings or proxies, state under `home`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SEGMENT_", "EMAILSRC_"))
        and name.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["XDG_STATE_HOME"] = str(home / "xdg-state")
    env["NO_COLOR"] = "1"
    if write_key is not None:
        env["SEGMENT_WRITE_KEY"] = write_key
    env.update(extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "emailsrc", *args]


def run(
    args: Iterable[str],
    env: Mapping[str, str],
    *,
    timeout: float = 120,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec_fn,
        check=False,
    )


def start(args: Iterable[str], env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(*args),
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def summary(result: subprocess.CompletedProcess[str] | str) -> dict[str, Any]:
    """The --json summary printed on stdout."""
    text = result if isinstance(result, str) else result.stdout
    data: dict[str, Any] = json.loads(text)
    return data


def _connect(ledger: Path) -> sqlite3.Connection:
    # Read-only, so a check never changes the file it is checking (the WAL stays as is).
    return sqlite3.connect(f"{ledger.absolute().as_uri()}?mode=ro", uri=True)


def ledger_ids(ledger: Path, state: str, write_key: str = WRITE_KEY) -> set[str]:
    """messageIds of the events the ledger holds in this delivery state ('sent', ...)."""
    if not ledger.exists():
        return set()
    connection = _connect(ledger)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        if "deliveries" not in tables:
            return set()
        rows = connection.execute(
            "SELECT e.key FROM deliveries AS d JOIN events AS e ON e.id = d.event_id"
            " WHERE d.state = ?",
            (state,),
        ).fetchall()
    finally:
        connection.close()
    return message_ids((key for (key,) in rows), write_key)


def ledger_states(ledger: Path) -> Counter[str]:
    connection = _connect(ledger)
    try:
        return Counter(
            dict(connection.execute("SELECT state, count(*) FROM deliveries GROUP BY state"))
        )
    finally:
        connection.close()


def integrity(ledger: Path) -> str:
    """PRAGMA integrity_check of the ledger as a crash left it ('ok' when sound)."""
    connection = _connect(ledger)
    try:
        rows = connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()
    return "; ".join(str(row[0]) for row in rows)


def rejects(path: str | None) -> list[dict[str, Any]]:
    if not path:
        return []
    # Split on newlines only: str.splitlines() also breaks at U+0085 and U+2028, which
    # JSON strings may hold unescaped.
    lines = Path(path).read_bytes().split(b"\n")
    return [json.loads(line) for line in lines if line]


def rejected_message_ids(path: str | None) -> Counter[str]:
    """messageIds of the failed events listed in a rejects file."""
    return Counter(entry["event"]["messageId"] for entry in rejects(path) if "event" in entry)


def no_traceback(*texts: str) -> bool:
    return not any("Traceback (most recent call last)" in text for text in texts)
