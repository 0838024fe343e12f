"""Any CSV export, read through a column mapping the user gives (never auto-detected).

    emailsrc backfill --format mapped-csv events.csv \\
        --map event=Activity --map timestamp="Occurred At" --map recipient=Email \\
        --event-map Delivered=delivered --event-map Opened="Email Opened"

or the same in a TOML file (--mapping FILE) with [fields] and [events] tables; options
given on the command line override the file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..events import EmailEvent, EventName
from ..timestamps import parse_timestamp
from .base import (
    NO_EVENT_TYPE,
    Conversion,
    Converter,
    Format,
    FormatError,
    MappingRow,
    clean_email,
    compact,
    reject,
    require_identity,
    skip,
    skipped_outcome,
    text,
    truthy,
)

NAME = "mapped-csv"
DEFAULT_PROVIDER = "csv"

# Every field a mapping may name, each to a column of the file ("provider" is a constant).
COLUMN_FIELDS = (
    "event",
    "timestamp",
    "recipient",
    "user_id",
    "message_id",
    "event_id",
    "subject",
    "campaign_id",
    "campaign_name",
    "link_url",
    "link_id",
    "list_id",
    "list_name",
    "reason",
    "machine_open",
)
FIELDS = (*COLUMN_FIELDS, "provider")

# The provider name is part of every event key ("<provider>:<event_id>"), so it stays a
# plain token.
_PROVIDER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_MAPPING_TABLES = frozenset({"fields", "events"})

# The user's mapping decides what the file's values mean, so a value it leaves out is the
# user's choice, not an unknown event type of some provider.
_UNMAPPED = "unmapped event value"


def parse_assignments(items: list[str], option: str) -> dict[str, str]:
    """["a=b", ...] from a repeatable option as a dict; later items override earlier ones."""
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{option} expects NAME=VALUE, got {item!r}")
        found[key.strip()] = value.strip()
    return found


@dataclass(frozen=True, slots=True)
class _Columns:
    """The mapped fields resolved to the file's own header names."""

    by_field: Mapping[str, str]

    def get(self, row: Mapping[str, Any], field: str) -> str | None:
        column = self.by_field.get(field)
        return text(row.get(column)) if column is not None else None


class MappedCsvFormat(Format):
    name = NAME
    title = "Mapped CSV (any provider)"
    detection = "never detected: chosen with --format mapped-csv plus --map / --event-map"
    detectable = False

    def __init__(
        self,
        field_map: Mapping[str, str] | None = None,
        event_map: Mapping[str, EventName] | None = None,
        provider: str = DEFAULT_PROVIDER,
    ) -> None:
        self.field_map: Mapping[str, str] = MappingProxyType(dict(field_map or {}))
        self.event_map: Mapping[str, EventName] = MappingProxyType(dict(event_map or {}))
        self.provider = provider
        self._lookup = {_event_key(value): name for value, name in self.event_map.items()}

    @classmethod
    def from_options(
        cls,
        field_map: dict[str, str],
        event_map: dict[str, str],
        mapping_file: Path | None = None,
    ) -> MappedCsvFormat:
        """Build from --map / --event-map options and an optional TOML mapping file.

        Raises ValueError with a one-line message for anything the user must fix.
        """
        file_fields, file_events = _read_mapping_file(mapping_file) if mapping_file else ({}, {})
        fields = {**file_fields, **field_map}
        events = {**file_events, **event_map}
        _check_field_names(fields)
        provider = fields.pop("provider", DEFAULT_PROVIDER)
        _check_provider(provider)
        _check_required(fields)
        return cls(fields, _parse_event_map(events), provider)

    def matches(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> bool:
        return False  # a mapping says nothing about which files it fits

    def bind(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> Converter:
        if not self.field_map:
            raise FormatError(
                "mapped-csv needs a column mapping: --map event=COLUMN --map timestamp=COLUMN "
                "--map recipient=COLUMN and --event-map VALUE=EVENT, or --mapping FILE"
            )
        found = list(columns) if columns is not None else [str(key) for key in sample]
        resolved = _resolve_columns(self.field_map, found)
        return self._converter(_Columns(MappingProxyType(resolved)))

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        # Without bind() the mapped names are taken as the exact column names.
        return self._converter(_Columns(self.field_map))(data)

    def mapping_table(self) -> list[MappingRow]:
        if not self.event_map:
            return [
                MappingRow("VALUE given with --event-map VALUE=EVENT", "the EVENT given"),
                MappingRow("any value not mapped", skipped_outcome(_UNMAPPED)),
            ]
        rows = [MappingRow(value, name.value) for value, name in self.event_map.items()]
        rows.append(MappingRow("any other value", skipped_outcome(_UNMAPPED)))
        return rows

    def _converter(self, columns: _Columns) -> Callable[[Mapping[str, Any]], Conversion]:
        def convert(row: Mapping[str, Any]) -> Conversion:
            return self._convert_row(row, columns)

        return convert

    def _convert_row(self, row: Mapping[str, Any], columns: _Columns) -> Conversion:
        value = columns.get(row, "event")
        if value is None:
            raise reject(NO_EVENT_TYPE)
        name = self._lookup.get(_event_key(value))
        if name is None:
            return skip(_UNMAPPED, value)
        return [self._event(row, columns, name)]

    def _event(self, row: Mapping[str, Any], columns: _Columns, name: EventName) -> EmailEvent:
        recipient = clean_email(columns.get(row, "recipient"))
        user_id = columns.get(row, "user_id")
        require_identity(recipient, user_id)
        clicked = name is EventName.CLICKED
        unsubscribed = name is EventName.UNSUBSCRIBED
        properties = {
            "email_subject": columns.get(row, "subject"),
            "campaign_id": columns.get(row, "campaign_id"),
            "campaign_name": columns.get(row, "campaign_name"),
            "link_id": columns.get(row, "link_id") if clicked else None,
            "list_id": columns.get(row, "list_id") if unsubscribed else None,
            "list_name": columns.get(row, "list_name") if unsubscribed else None,
            "reason": columns.get(row, "reason"),
        }
        return EmailEvent(
            name=name,
            timestamp=parse_timestamp(columns.get(row, "timestamp")),
            provider=self.provider,
            recipient=recipient,
            user_id=user_id,
            email_id=columns.get(row, "message_id"),
            event_id=columns.get(row, "event_id"),
            link_url=columns.get(row, "link_url") if clicked else None,
            machine_open=name is EventName.OPENED and truthy(columns.get(row, "machine_open")),
            properties=compact(properties),
        )


def _event_key(value: str) -> str:
    # A file's own values are matched without regard to case or surrounding spaces.
    return " ".join(value.split()).casefold()


def _read_mapping_file(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise ValueError(f"mapping file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"mapping file {path}: {' '.join(str(exc).split())}") from None
    unknown = sorted(set(document) - _MAPPING_TABLES)
    if unknown:
        raise ValueError(
            f"mapping file {path}: unknown table(s) {', '.join(unknown)}; "
            "expected [fields] and [events]"
        )
    return _string_table(document, "fields", path), _string_table(document, "events", path)


def _string_table(document: Mapping[str, Any], table: str, path: Path) -> dict[str, str]:
    section = document.get(table, {})
    if not isinstance(section, dict):
        raise ValueError(f"mapping file {path}: [{table}] must be a table")
    for key, value in section.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"mapping file {path}: [{table}] {key} must be a non-empty string")
    return {str(key).strip(): value.strip() for key, value in section.items()}


def _check_field_names(fields: Mapping[str, str]) -> None:
    unknown = sorted(field for field in fields if field not in FIELDS)
    if unknown:
        raise ValueError(
            f"unknown field(s) for --map: {', '.join(unknown)}; valid fields: {', '.join(FIELDS)}"
        )


def _check_provider(provider: str) -> None:
    if not _PROVIDER_NAME.fullmatch(provider):
        raise ValueError(
            f"--map provider={provider!r}: a provider name is letters, digits, '.', '_' or '-'"
        )


def _check_required(fields: Mapping[str, str]) -> None:
    missing = [field for field in ("event", "timestamp") if field not in fields]
    if "recipient" not in fields and "user_id" not in fields:
        missing.append("recipient or user_id")
    if missing:
        raise ValueError(
            f"mapped-csv needs --map for: {', '.join(missing)} (e.g. --map event=COLUMN)"
        )


def _parse_event_map(events: Mapping[str, str]) -> dict[str, EventName]:
    if not events:
        raise ValueError("mapped-csv needs at least one --event-map VALUE=EVENT")
    parsed: dict[str, EventName] = {}
    seen: dict[str, str] = {}
    for value, target in events.items():
        try:
            name = EventName.parse(target)
        except ValueError:
            choices = ", ".join(event.value for event in EventName)
            raise ValueError(
                f"--event-map {value}={target}: {target!r} is not one of the six events ({choices})"
            ) from None
        key = _event_key(value)
        if key in seen and parsed[seen[key]] is not name:
            raise ValueError(
                f"--event-map maps {seen[key]!r} and {value!r} (the same value) to different events"
            )
        seen[key] = value
        parsed[value] = name
    return parsed


def _resolve_columns(field_map: Mapping[str, str], found: Sequence[str]) -> dict[str, str]:
    """Each mapped column as the file spells it: exact first, then ignoring case/spaces."""
    by_loose: dict[str, list[str]] = {}
    for column in found:
        by_loose.setdefault(_column_key(column), []).append(column)
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for field, column in field_map.items():
        candidates = [column] if column in found else by_loose.get(_column_key(column), [])
        if len(candidates) == 1:
            resolved[field] = candidates[0]
        else:
            missing.append(f"{field}={column}")
    if missing:
        shown = ", ".join(repr(column) for column in found) or "none"
        raise FormatError(
            f"mapped-csv: column(s) not in the file: {', '.join(missing)}; columns found: {shown}"
        )
    return resolved


def _column_key(column: str) -> str:
    return " ".join(column.replace("\ufeff", "").split()).casefold()


FORMATS = [MappedCsvFormat()]
