"""What every input format provides, and the helpers they share."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..events import EmailEvent, EventName, RecordRejected, Skip

# --- reasons -------------------------------------------------------------------------------
# A skip or reject reason reads "<category>[: <detail>]". Run summaries group records by the
# category, so every format says the same thing in the same words, and a category never
# holds per-record values (those go in the detail).

# Skip categories: the record is understood and deliberately yields no event.
NOT_EMAIL_EVENT = "not an email event"  # sends, processing, rendering, inbound mail, pings...
DEFERRAL = "deferral"  # a delay or temporary failure; the provider is still trying
SUPPRESSED = "suppressed before sending"  # dropped, suppress-*, blocked by a provider's list
SECOND_OPEN = "second signal for the same open"
SECOND_CLICK = "second signal for the same click"
SECOND_BOUNCE = "second signal for the same bounce"
SECOND_COMPLAINT = "second signal for the same complaint"
NON_EMAIL_CHANNEL = "channel is not email"
PERSON_LEVEL = "person-level subscription change"
NOT_A_BOUNCE = "not a bounce"  # auto-replies and notices that arrive as bounces
NOT_A_COMPLAINT = "not a complaint"  # a feedback report saying "not spam"
# A reject, not a skip: an event type we don't know may be one of the six under a new
# name, so the raw record goes to the rejects file where the user can see it.
UNKNOWN_EVENT = "unknown event type"

# Reject categories: the record cannot become events.
UNKNOWN_SHAPE = "unknown record shape"
NO_EVENT_TYPE = "no event type"
NO_IDENTITY = "no recipient and no user id"

# bounce_type values, the same for every provider so summaries and warehouses can compare.
HARD = "hard"
SOFT = "soft"
BLOCK = "block"
UNDETERMINED = "undetermined"

_DETAIL_LIMIT = 200
_TRUTHY = frozenset({"true", "1", "yes", "y", "t"})

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
        raise RecordRejected(NO_IDENTITY)


# C0 controls and DEL; one regex scan instead of a Python loop over each character.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_email(value: object) -> str | None:
    """A recipient address, or None; control characters reject the record."""
    address = text(value)
    if address is None:
        return None
    if _CONTROL.search(address):
        raise RecordRejected("recipient contains control characters")
    if "<" in address and address.endswith(">"):
        address = address[address.rindex("<") + 1 : -1].strip()
    if "@" not in address:
        raise RecordRejected(f"recipient is not an email address: {address[:80]!r}")
    return address


def compact(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Drop absent values so events carry only what the provider knew.

    Empty lists and objects count as absent: a warehouse column that is always [] says
    nothing, and an empty tag list is how providers write "no tags".
    """
    return {k: v for k, v in properties.items() if not _empty(v)}


def _empty(value: object) -> bool:
    # Only containers and text can be empty: False and 0 are real values.
    if type(value) is str:  # nearly every value: spare it the isinstance against an ABC
        return not value
    return value is None or (isinstance(value, str | list | tuple | Mapping) and not value)


def truthy(value: object) -> bool:
    """A provider flag that may arrive as a JSON bool or as CSV text."""
    if isinstance(value, bool):
        return value
    shown = text(value)
    return shown is not None and shown.lower() in _TRUTHY


def loose_key(name: object) -> str:
    """A key compared loosely: "user_id", "userId", "UserID" and "user-id" are one key."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def reason(category: str, detail: object = None) -> str:
    """A "<category>[: <detail>]" reason; the detail is one trimmed line."""
    shown = detail.strip() if isinstance(detail, str) else text(detail)
    if not shown:
        return category
    shown = " ".join(shown.split())
    if len(shown) > _DETAIL_LIMIT:
        shown = shown[: _DETAIL_LIMIT - 3] + "..."
    return f"{category}: {shown}"


def skip(category: str, detail: object = None) -> Skip:
    return Skip(reason(category, detail))


def reject(category: str, detail: object = None) -> RecordRejected:
    """The exception to raise; callers write `raise reject(...)` so the raise stays visible."""
    return RecordRejected(reason(category, detail))


def skipped_outcome(category: str) -> str:
    """A mapping-table outcome for values that are skipped."""
    return f"skipped: {category}"


def bounced_outcome(bounce_type: str) -> str:
    """A mapping-table outcome for values that become a bounce of one bounce_type."""
    return f"{EventName.BOUNCED.value} ({bounce_type})"
