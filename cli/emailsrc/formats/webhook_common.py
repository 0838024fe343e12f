"""Pieces shared by the SendGrid, Mailgun, Postmark, SES and Mandrill formats.

Not a format itself: it defines no FORMATS, so the registry imports it and moves on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..events import RecordRejected, Skip, snake_case
from .base import compact, text

# Stable skip categories: summaries group by them, so they never hold per-record values.
NOT_EMAIL_EVENT = "not an email event"
DEFERRAL = "deferral"
SUPPRESSED = "suppressed before sending"
NOT_SENT = "not sent"
NOT_A_FAILURE = "not a delivery failure"
NOT_A_COMPLAINT = "not a complaint"
SECOND_SIGNAL = "second signal for an earlier event"

# bounce_type values, the same for every provider so summaries and warehouses can compare.
HARD = "hard"
SOFT = "soft"
BLOCK = "block"
UNDETERMINED = "undetermined"

# Keys that carry the sender's own user id, in order of preference, compared loosely so
# that user_id, userId, UserID and "user-id" all count.
USER_ID_KEYS = ("userid", "customerid", "personid")

# The payload builder sets these itself; a custom value with the same name would shadow them.
BUILDER_KEYS = frozenset({"email_id", "link_url", "provider", "machine_open"})

_DETAIL_LIMIT = 200


def reason(category: str, detail: object = None) -> str:
    """A "<category>[: <detail>]" reason; the detail is one trimmed line."""
    shown = text(detail) if not isinstance(detail, str) else " ".join(detail.split())
    if not shown:
        return category
    if len(shown) > _DETAIL_LIMIT:
        shown = shown[: _DETAIL_LIMIT - 3] + "..."
    return f"{category}: {shown}"


def skip(category: str, detail: object = None) -> Skip:
    return Skip(reason(category, detail))


def unknown_type(value: object) -> RecordRejected:
    """An event type the provider may have added since: rejected so the raw record is kept."""
    return RecordRejected(reason("unknown event type", repr(value)))


def unknown_shape(detail: str) -> RecordRejected:
    return RecordRejected(reason("unknown record shape", detail))


def loose_key(name: object) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def scalar(value: object) -> str | None:
    """A value as text; a one-item list (SES tags, Mailgun variables) counts as its item."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        return None
    return text(value)


def find_user_id(*sources: object) -> tuple[str | None, str | None]:
    """The sender's user id from custom data, and the key it came from."""
    mappings = [source for source in sources if isinstance(source, Mapping)]
    for wanted in USER_ID_KEYS:
        for mapping in mappings:
            for key, value in mapping.items():
                if loose_key(key) == wanted and (found := scalar(value)):
                    return found, str(key)
    return None, None


def custom_properties(values: object, skip_keys: Iterable[str] = ()) -> dict[str, Any]:
    """Custom data as properties: snake_case keys, never a builder or reserved column name."""
    if not isinstance(values, Mapping):
        return {}
    skipped = set(skip_keys)
    found: dict[str, Any] = {}
    for key, value in values.items():
        if key in skipped or value is None or value == "" or value == []:
            continue
        name = snake_case(str(key))
        if name in BUILDER_KEYS:
            name = f"custom_{name}"
        found.setdefault(name, value)
    return found


def merge_properties(standard: Mapping[str, Any], custom: Mapping[str, Any]) -> dict[str, Any]:
    """The provider's own fields win over custom data with the same name."""
    merged = dict(custom)
    merged.update(compact(standard))
    return compact(merged)


def tag_list(value: object) -> list[str]:
    """Tags or categories, which providers send as one string or a list."""
    items = value if isinstance(value, list) else [value]
    return [shown for item in items if (shown := text(item))]


def campaign_from_tags(tags: list[str]) -> str | None:
    """A single tag names the email's campaign; several are only listed, never guessed."""
    return tags[0] if len(tags) == 1 else None


def embedded_json(value: object, what: str) -> Any:
    """A JSON document carried as a string inside a record (SNS Message, mandrill_events)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise RecordRejected(f"unreadable embedded JSON: {what}") from None


def strip_brackets(value: object) -> str | None:
    """A Message-ID without the angle brackets some providers keep around it."""
    shown = text(value)
    if shown and shown.startswith("<") and shown.endswith(">"):
        shown = shown[1:-1].strip() or None
    return shown
