"""The six Segment email events and what a record can turn into."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


class EventName(StrEnum):
    """Names exactly as the live Customer.io -> Segment source sends them."""

    DELIVERED = "Email Delivered"
    OPENED = "Email Opened"
    CLICKED = "Email Link Clicked"
    UNSUBSCRIBED = "Email Unsubscribed"
    BOUNCED = "Email Bounced"
    SPAM = "Email Marked as Spam"

    @classmethod
    def parse(cls, text: str) -> EventName:
        """Accept the exact name or a loose spelling ('email_opened', 'opened')."""
        wanted = _loose(text)
        for name in cls:
            if wanted in (_loose(name.value), _loose(name.value.removeprefix("Email "))):
                return name
        for name in cls:
            if wanted == name.name.lower():
                return name
        if wanted in _ALIASES:
            return cls(_ALIASES[wanted])
        raise ValueError(f"unknown event name {text!r}; one of: {', '.join(n.value for n in cls)}")


# Words people type for the six events.
_ALIASES = {
    "open": "Email Opened",
    "click": "Email Link Clicked",
    "bounce": "Email Bounced",
    "unsubscribe": "Email Unsubscribed",
    "unsub": "Email Unsubscribed",
    "complaint": "Email Marked as Spam",
    "spamcomplaint": "Email Marked as Spam",
    "spam": "Email Marked as Spam",
    "delivery": "Email Delivered",
}


def _loose(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


class RecordRejected(Exception):
    """A record that cannot become events: unparseable, no timestamp, no recipient...

    Reasons read "<stable category>[: <detail>]"; summaries group them by the category, so
    the category never holds per-record values (ids, addresses, raw text).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True, frozen=True)
class Skip:
    """A record that is understood but deliberately yields no event, with the reason why."""

    reason: str


@dataclass(slots=True)
class EmailEvent:
    """One normalized email event, before it gets a destination-specific messageId."""

    name: EventName
    timestamp: datetime  # aware, UTC
    provider: str
    recipient: str | None = None
    user_id: str | None = None
    email_id: str | None = None  # the provider's delivery / message id
    event_id: str | None = None  # the provider's own event id, only where it is really unique
    link_url: str | None = None
    machine_open: bool = False
    properties: dict[str, Any] = field(default_factory=dict)

    def timestamp_ms(self) -> int:
        # Integer arithmetic: float seconds * 1000 can land one millisecond off.
        return (self.timestamp - _EPOCH) // _ONE_MS

    def key(self) -> str:
        """The event's identity: the provider's unique id, else a canonical composite."""
        if self.event_id:
            return f"{self.provider}:{self.event_id}"
        return "|".join(
            (
                self.provider,
                self.email_id or "",
                self.name.value,
                (self.recipient or "").lower(),
                str(self.timestamp_ms()),
                self.link_url or "",
                "" if self.recipient else (self.user_id or ""),
            )
        )


# Segment's warehouse columns for a track table; a property with one of these names would
# collide with them, so extras get a prefix instead.
RESERVED_PROPERTY_NAMES = frozenset(
    {
        "id",
        "anonymous_id",
        "user_id",
        "event",
        "event_text",
        "timestamp",
        "sent_at",
        "received_at",
        "original_timestamp",
        "uuid_ts",
        "loaded_at",
        "context",
        "channel",
        "message_id",
        "type",
        "properties",
        "integrations",
    }
)


def snake_case(name: str) -> str:
    """A property key as Segment's warehouses would name it, safe from reserved columns."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "value"
    if text[0].isdigit():
        text = f"_{text}"
    return f"custom_{text}" if text in RESERVED_PROPERTY_NAMES else text
