"""What every input format provides, and the helpers they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..events import EmailEvent, RecordRejected, Skip

# What converting one record gives: events (one record may yield several) or a skip.
# A record that cannot be converted raises RecordRejected with the reason.
Conversion = list[EmailEvent] | Skip
Converter = Callable[[Mapping[str, Any]], Conversion]


class FormatError(Exception):
    """A whole input that a format cannot read (e.g. a CSV whose columns it can't map)."""


@dataclass(frozen=True, slots=True)
class MappingRow:
    """One line of a format's mapping table: a provider value and what becomes of it."""

    value: str
    outcome: str  # an EventName value, or "skipped: <reason>"


class Format(ABC):
    """An input format: detection, per-file binding, conversion, documentation."""

    name: str  # what --format takes, e.g. "customerio"
    title: str  # e.g. "Customer.io"
    detection: str  # one line: how it is recognized

    @abstractmethod
    def matches(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> bool:
        """Does this record (the first good one of a file) look like this format?

        `columns` is the CSV header, or None for JSON input.
        """

    detect_priority: int = 100  # lower is tried first; for formats whose signature is a subset
    detectable: bool = True  # False for formats that are only chosen explicitly

    def explode(self, data: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        """Container records (an API page, a batched body, an SNS envelope holding several
        items) yield their items; each item counts as one record in the summary."""
        yield data

    def bind(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> Converter:
        """The converter for one file. CSV formats resolve their columns here and raise
        FormatError naming the columns found and the ones missing."""
        return self.convert

    @abstractmethod
    def convert(self, data: Mapping[str, Any]) -> Conversion:
        """Turn one record into events or a skip; raise RecordRejected when it can't."""

    @abstractmethod
    def mapping_table(self) -> list[MappingRow]:
        """What each provider value becomes, for `emailsrc formats`."""


def text(value: object) -> str | None:
    """A field as trimmed text, None when absent or empty."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return None


def dig(data: Mapping[str, Any], *path: str) -> Any:
    """data[path[0]][path[1]]... or None when any step is missing or not a mapping."""
    current: Any = data
    for step in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(step)
    return current


def require_identity(recipient: str | None, user_id: str | None) -> None:
    if not recipient and not user_id:
        raise RecordRejected("no recipient and no user id")


def clean_email(value: object) -> str | None:
    """A recipient address, or None; control characters reject the record."""
    address = text(value)
    if address is None:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in address):
        raise RecordRejected("recipient contains control characters")
    if "<" in address and address.endswith(">"):
        address = address[address.rindex("<") + 1 : -1].strip()
    if "@" not in address:
        raise RecordRejected(f"recipient is not an email address: {address[:80]!r}")
    return address


def compact(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Drop absent values so events carry only what the provider knew."""
    return {k: v for k, v in properties.items() if v is not None and v != ""}
