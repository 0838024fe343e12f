"""Pieces shared by the webhook-shaped JSON formats (SparkPost, Mailjet, Brevo, Resend).

Not a format itself: it defines no FORMATS, so the registry imports it and moves on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..events import RecordRejected, Skip, snake_case
from ..timestamps import TimestampError, parse_timestamp
from .base import compact, text

# Custom-field keys that carry the sender's own user id, compared loosely so that
# user_id, userId, UserID and "user-id" all count.
IDENTITY_KEYS = frozenset({"userid", "customerid", "externaluserid"})

# The payload builder sets these itself; a custom field with the same name would shadow them.
BUILDER_KEYS = frozenset({"email_id", "link_url", "provider", "machine_open"})

_TRUTHY = frozenset({"true", "1", "yes", "y", "t"})
_DETAIL_LIMIT = 200


def loose_key(name: object) -> str:
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


def truthy(value: object) -> bool:
    """A provider flag that may arrive as a JSON bool or as CSV text."""
    if isinstance(value, bool):
        return value
    shown = text(value)
    return shown is not None and shown.lower() in _TRUTHY


def first_timestamp(*candidates: object) -> datetime:
    """The first candidate that is present, parsed; later ones are fallbacks, not checks."""
    for candidate in candidates:
        if candidate is not None and candidate != "":
            return parse_timestamp(candidate)
    raise TimestampError("missing timestamp")


def event_type(value: object) -> str:
    """A provider's event type as lower snake_case ("hardBounce" -> "hard_bounce")."""
    shown = text(value)
    if not shown:
        raise RecordRejected("no event type")
    shown = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", shown)
    return re.sub(r"[^a-z0-9]+", "_", shown.lower()).strip("_")


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


def user_id_from(*sources: Mapping[str, Any] | None) -> str | None:
    """The sender's user id from custom fields (metadata, custom args, parsed tags)."""
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for key, value in source.items():
            if loose_key(key) in IDENTITY_KEYS and not isinstance(value, bool):
                found = text(value)
                if found:
                    return found
    return None


def custom_properties(*sources: Mapping[str, Any] | None) -> dict[str, Any]:
    """Custom fields as snake_case properties: scalars and lists of scalars only, identity
    keys left out (they become userId), names that would shadow builder fields prefixed."""
    found: dict[str, Any] = {}
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for key, value in source.items():
            if loose_key(key) in IDENTITY_KEYS:
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


def merge_properties(custom: Mapping[str, Any], standard: Mapping[str, Any]) -> dict[str, Any]:
    """Custom fields first, the provider's own fields on top where it knew them."""
    return {**custom, **compact(standard)}


def string_list(value: object) -> list[str]:
    """Tags and the like: a list of strings, or one string."""
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list):
        return [item.strip() for item in value if isinstance(item, str) and item.strip()]
    return []


def tag_fields(tags: Iterable[str]) -> dict[str, Any]:
    """Tags written as "key:value" or "key=value", as fields; plain tags give nothing."""
    fields: dict[str, Any] = {}
    for tag in tags:
        fields.update(parse_custom_text(tag))
    return fields
