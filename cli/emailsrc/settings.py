"""One typed settings object per run: the CLI fills it (flags > env > defaults)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .events import EventName
from .secrets import WriteKey

DEFAULT_ENDPOINT = "https://api.segment.io"
EU_ENDPOINT = "https://events.eu1.segmentapis.com"
DEFAULT_RATE = 500.0


class SettingsError(ValueError):
    """An option that can't be used; the message is the one line the user sees."""


def default_state_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "emailsrc" / "ledger.sqlite3"


@dataclass(frozen=True, slots=True)
class InputSettings:
    """How input files are read and normalized."""

    files: tuple[str, ...] = ()
    format_name: str | None = None
    field_map: dict[str, str] = field(default_factory=dict)
    event_map: dict[str, str] = field(default_factory=dict)
    mapping_file: Path | None = None
    exclude_machine_opens: bool = False
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class SendSettings:
    """Where and how events go."""

    write_key: WriteKey | None = None
    endpoint: str = DEFAULT_ENDPOINT
    rate: float = DEFAULT_RATE
    transport: str = "http"
    concurrency: int = 4
    id_namespace: str | None = None
    integrations: dict[str, Any] = field(default_factory=dict)
    only_destinations: tuple[str, ...] = ()
    exclude_destinations: tuple[str, ...] = ()
    keep_customerio: bool = False
    max_attempts: int = 10
    timeout: float = 30.0
    backoff_base: float = 0.5
    backoff_max: float = 60.0


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything one command needs."""

    command: str
    inputs: InputSettings = field(default_factory=InputSettings)
    send: SendSettings = field(default_factory=SendSettings)
    state_path: Path = field(default_factory=default_state_path)
    use_ledger: bool = True
    dry_run: bool = False
    output: Path | None = None
    rejects: Path | None = None
    max_rejects: int = 0
    events: tuple[EventName, ...] = ()  # replay: only these names

    def public_options(self) -> dict[str, Any]:
        """What the ledger records about the run: never the write key."""
        return {
            "files": list(self.inputs.files),
            "format": self.inputs.format_name,
            "since": self.inputs.since.isoformat() if self.inputs.since else None,
            "until": self.inputs.until.isoformat() if self.inputs.until else None,
            "endpoint": self.send.endpoint,
            "write_key": self.send.write_key.masked if self.send.write_key else None,
            "rate": self.send.rate,
            "dry_run": self.dry_run,
            "events": [e.value for e in self.events],
        }


# Retry tuning, read from the environment only: hidden from --help because the defaults
# suit Segment, documented in the README because tests and slow networks need them.
TUNING_ENV = {
    "EMAILSRC_TIMEOUT": ("timeout", float, 0.001),
    "EMAILSRC_MAX_ATTEMPTS": ("max_attempts", int, 1),
    "EMAILSRC_BACKOFF_BASE": ("backoff_base", float, 0.0),
    "EMAILSRC_BACKOFF_MAX": ("backoff_max", float, 0.0),
}


def retry_tuning(environ: Mapping[str, str]) -> dict[str, Any]:
    """SendSettings fields from EMAILSRC_TIMEOUT / _MAX_ATTEMPTS / _BACKOFF_BASE / _BACKOFF_MAX."""
    tuning: dict[str, Any] = {}
    for variable, (name, kind, smallest) in TUNING_ENV.items():
        text = environ.get(variable, "").strip()
        if not text:
            continue
        try:
            value = kind(text)
        except ValueError:
            raise SettingsError(f"{variable}={text!r} is not a number") from None
        # NaN fails every comparison, so "not >=" also refuses it.
        if not value >= smallest or value == float("inf"):
            raise SettingsError(f"{variable} must be a finite number >= {smallest:g}")
        tuning[name] = value
    return tuning


_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SPAN_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO date or datetime (UTC unless it has an offset) or a span back from now: 7d."""
    now = now or datetime.now(UTC)
    match = _SPAN.match(text)
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        return now - timedelta(**{_SPAN_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SettingsError(
            f"can't read the time {text!r}: "
            "use 2025-06-01, 2025-06-01T12:00:00+02:00 or 7d / 12h / 90m"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
