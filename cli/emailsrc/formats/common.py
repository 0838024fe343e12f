"""Pieces shared by the webhook-shaped JSON formats: identity and custom data, tags,
timestamps with fallbacks, documents embedded as strings, API pages.

Not a format itself: it defines no FORMATS, so the registry imports it and moves on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from ..events import snake_case
from ..timestamps import TimestampError, parse_timestamp
from .base import (
    NO_EVENT_TYPE,
    clean_email,
    compact,
    loose_key,
    reject,
    require_identity,
    text,
)

# Custom-data keys that carry the sender's own user id, in order of preference, compared
# loosely (see loose_key) so that user_id, userId, UserID and "user-id" all count.
USER_ID_KEYS = ("userid", "customerid", "externaluserid", "personid")

# The payload builder sets these itself; a custom value with the same name would shadow them.
BUILDER_KEYS = frozenset({"email_id", "link_url", "provider", "machine_open"})


class Identity(NamedTuple):
    """Who an event is about."""

    recipient: str | None
    user_id: str | None
    user_key: str | None  # the custom-data key the user id came from


def identify(address: object, *custom: object) -> Identity:
    """The recipient address and the sender's user id from custom data; rejects the record
    when there is neither."""
    user_id, user_key = find_user_id(*custom)
    recipient = clean_email(address)
    require_identity(recipient, user_id)
    return Identity(recipient, user_id, user_key)


def find_user_id(*sources: object) -> tuple[str | None, str | None]:
    """The sender's user id from custom data, and the key it came from.

    The preferred key wins across all sources, so a customer_id in the first source does
    not hide a user_id in the second.
    """
    mappings = [source for source in sources if isinstance(source, Mapping)]
    for wanted in USER_ID_KEYS:
        for mapping in mappings:
            for key, value in mapping.items():
                if loose_key(key) == wanted and (found := scalar(value)):
                    return found, str(key)
    return None, None


def scalar(value: object) -> str | None:
    """A value as text; a one-item list (SES tags, Mailgun variables) counts as its item."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        return None
    return text(value)


def custom_properties(*sources: object, skip_keys: Iterable[str | None] = ()) -> dict[str, Any]:
    """Custom data as snake_case properties: scalars and lists of scalars only, names that
    would shadow builder fields prefixed. The earlier source wins a shared name.

    skip_keys are left out as written, typically the key the user id came from: it is the
    event's userId already.
    """
    skipped = {key for key in skip_keys if key is not None}
    found: dict[str, Any] = {}
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for key, value in source.items():
            if key in skipped:
                continue
            kept = _flat_value(value)
            if kept is None:
                continue
            name = snake_case(str(key))
            if name in BUILDER_KEYS:
                name = f"custom_{name}"
            found.setdefault(name, kept)
    return found


def _flat_value(value: object) -> Any:
    # Nested objects are left out: they bloat events toward Segment's 32 KB limit and
    # warehouses flatten them into unpredictable columns.
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list):
        items = [_flat_value(item) for item in value if not isinstance(item, dict | list)]
        items = [item for item in items if item is not None]
        return items or None
    return None


def merge_properties(*, standard: Mapping[str, Any], custom: Mapping[str, Any]) -> dict[str, Any]:
    """The provider's own fields win over custom data with the same name, where it knew them.

    Keyword-only: both arguments are mappings, and swapping them would let custom data
    overwrite the provider's fields without any error.
    """
    return compact({**custom, **compact(standard)})


def tag_list(value: object) -> list[str]:
    """Tags or categories, which providers send as one string or a list."""
    items = value if isinstance(value, list) else [value]
    return [shown for item in items if (shown := text(item))]


def campaign_from_tags(tags: list[str]) -> str | None:
    """A single tag names the email's campaign; several are only listed, never guessed."""
    return tags[0] if len(tags) == 1 else None


def tag_fields(tags: Iterable[str]) -> dict[str, Any]:
    """Tags written as "key:value" or "key=value", as fields; plain tags give nothing."""
    fields: dict[str, Any] = {}
    for tag in tags:
        fields.update(parse_custom_text(tag))
    return fields


def parse_custom_text(value: object) -> dict[str, Any]:
    """Custom data that providers carry as one string: a JSON object or "k=v;k2=v2" pairs.

    Anything else is not structured, and gives an empty dict (callers keep the raw text).
    """
    if isinstance(value, Mapping):
        return dict(value)
    raw = value.strip() if isinstance(value, str) else None
    if not raw:
        return {}
    if raw.startswith("{"):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {}
        return dict(parsed) if isinstance(parsed, dict) else {}
    return _pairs(raw)


def _pairs(raw: str) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for part in re.split(r"[;&,]", raw):
        if not part.strip():
            continue
        match = re.fullmatch(r"\s*([A-Za-z_][\w.-]*)\s*[=:]\s*(.*?)\s*", part)
        if not match:
            return {}
        pairs[match.group(1)] = match.group(2)
    return pairs


def event_type(value: object) -> str:
    """A provider's event type as lower snake_case ("hardBounce" -> "hard_bounce")."""
    shown = text(value)
    if not shown:
        raise reject(NO_EVENT_TYPE)
    shown = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", shown)
    return re.sub(r"[^a-z0-9]+", "_", shown.lower()).strip("_")


def first_timestamp(*candidates: object) -> datetime:
    """The first candidate that is present, parsed; later ones are fallbacks, not checks."""
    for candidate in candidates:
        if candidate is not None and candidate != "":
            return parse_timestamp(candidate)
    raise TimestampError("missing timestamp")


def embedded_json(value: object, what: str) -> Any:
    """A JSON document carried as a string inside a record (SNS Message, mandrill_events)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise reject("unreadable embedded JSON", what) from None


def strip_brackets(value: object) -> str | None:
    """A Message-ID without the angle brackets some providers keep around it."""
    shown = text(value)
    if shown and shown.startswith("<") and shown.endswith(">"):
        shown = shown[1:-1].strip() or None
    return shown


def nonzero_id(value: object) -> str | None:
    """An id where the provider writes 0 for "none" (no campaign, list or contact)."""
    shown = text(value)
    return None if shown in (None, "0") else shown


def object_list(value: object) -> list[Mapping[str, Any]]:
    """The objects of a list field; anything else in it, or a field that is not a list,
    is ignored: these lists only add detail to a record that stands without them."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def page_items(items: Iterable[object]) -> Iterator[Mapping[str, Any]]:
    """The items of an API page or a batched body, each one record. A stray non-object
    item still counts as a record, and is rejected on its own as an unknown shape."""
    for item in items:
        yield item if isinstance(item, Mapping) else {}
