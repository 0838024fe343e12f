"""Mailchimp Transactional (Mandrill): stored webhook bodies, {"mandrill_events": "[...]"}."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..events import EmailEvent, EventName
from ..timestamps import parse_timestamp
from .base import Conversion, Format, MappingRow, clean_email, dig, require_identity, text
from .webhook_common import (
    DEFERRAL,
    HARD,
    NOT_EMAIL_EVENT,
    SOFT,
    SUPPRESSED,
    campaign_from_tags,
    custom_properties,
    embedded_json,
    find_user_id,
    merge_properties,
    skip,
    tag_list,
    unknown_shape,
    unknown_type,
)

PROVIDER = "mandrill"

_EVENTS = {
    "open": EventName.OPENED,
    "click": EventName.CLICKED,
    "spam": EventName.SPAM,
    "unsub": EventName.UNSUBSCRIBED,
    "hard_bounce": EventName.BOUNCED,
    # A soft bounce ends the message: its state becomes "soft-bounced" and Mandrill stops;
    # retries in progress are reported as "deferral".
    "soft_bounce": EventName.BOUNCED,
}
_BOUNCE_TYPES = {"hard_bounce": HARD, "soft_bounce": SOFT}

_SKIPPED = {
    # Mandrill has no separate delivery event; "send" is skipped like every send event.
    "send": NOT_EMAIL_EVENT,
    "deferral": DEFERRAL,
    # The address is on the rejection denylist (or the message broke a rule): not sent.
    "reject": SUPPRESSED,
    "inbound": NOT_EMAIL_EVENT,
}

# Sync events carry "type" instead of "event": changes to the rejection lists.
_SYNC_TYPES = frozenset({"whitelist", "blacklist", "allowlist", "denylist"})

# user_agent_parsed.type names the kind of client; "robot" is an automated fetch.
_MACHINE_AGENT = "robot"


class MandrillFormat(Format):
    name = PROVIDER
    title = "Mailchimp Transactional (Mandrill)"
    detection = (
        'JSON: webhook bodies {"mandrill_events": ...} or their events '
        "(event + msg with _id / email)"
    )

    def matches(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> bool:
        if columns is not None:
            return False
        return "mandrill_events" in sample or _is_event(sample) or _is_sync(sample)

    def explode(self, data: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        if "mandrill_events" not in data:
            yield data
            return
        events = embedded_json(data["mandrill_events"], "mandrill_events")
        if not isinstance(events, list):
            raise unknown_shape("mandrill_events is not a list")
        for item in events:
            yield item if isinstance(item, Mapping) else {}

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        if _is_sync(data):
            return skip(NOT_EMAIL_EVENT, f"{text(data.get('type'))} sync")
        kind = text(data.get("event"))
        if kind is None:
            raise unknown_shape("no Mandrill event")
        kind = kind.lower()
        if kind in _SKIPPED:
            return skip(_SKIPPED[kind], kind)
        name = _EVENTS.get(kind)
        if name is None:
            raise unknown_type(kind)
        msg = data.get("msg")
        if not isinstance(msg, Mapping):
            raise unknown_shape("no Mandrill msg object")
        return [_event(data, msg, name, kind)]

    def mapping_table(self) -> list[MappingRow]:
        rows = [
            MappingRow(kind, name.value)
            for kind, name in _EVENTS.items()
            if name is not EventName.BOUNCED
        ]
        rows += [
            MappingRow(kind, f"{EventName.BOUNCED.value} ({bounce})")
            for kind, bounce in _BOUNCE_TYPES.items()
        ]
        rows += [MappingRow(kind, f"skipped: {why}") for kind, why in _SKIPPED.items()]
        rows.append(MappingRow("sync events (allow/deny lists)", f"skipped: {NOT_EMAIL_EVENT}"))
        return rows


def _is_event(data: Mapping[str, Any]) -> bool:
    msg = data.get("msg")
    return (
        isinstance(data.get("event"), str)
        and isinstance(msg, Mapping)
        and ("_id" in msg or "email" in msg)
        and "ts" in data
    )


def _is_sync(data: Mapping[str, Any]) -> bool:
    return text(data.get("type")) in _SYNC_TYPES and "event" not in data and "action" in data


def _event(
    data: Mapping[str, Any], msg: Mapping[str, Any], name: EventName, kind: str
) -> EmailEvent:
    metadata = msg.get("metadata")
    user_id, user_key = find_user_id(metadata)
    recipient = clean_email(msg.get("email"))
    require_identity(recipient, user_id)
    agent_type = text(dig(data, "user_agent_parsed", "type"))
    return EmailEvent(
        name=name,
        timestamp=parse_timestamp(data.get("ts")),
        provider=PROVIDER,
        recipient=recipient,
        user_id=user_id,
        email_id=text(msg.get("_id")) or text(data.get("_id")),
        # Mandrill events carry only the message's _id; the composite key tells them apart.
        event_id=None,
        link_url=text(data.get("url")) if name is EventName.CLICKED else None,
        machine_open=name is EventName.OPENED and (agent_type or "").lower() == _MACHINE_AGENT,
        properties=merge_properties(
            _standard(msg, kind),
            custom_properties(metadata, skip_keys=[user_key] if user_key else []),
        ),
    )


def _standard(msg: Mapping[str, Any], kind: str) -> dict[str, Any]:
    tags = tag_list(msg.get("tags"))
    standard: dict[str, Any] = {
        "email_subject": text(msg.get("subject")),
        "campaign_name": campaign_from_tags(tags),
        "tags": tags or None,
        "template_name": text(msg.get("template")),
        "subaccount": text(msg.get("subaccount")),
    }
    if kind in _BOUNCE_TYPES:
        standard.update(
            {
                "bounce_type": _BOUNCE_TYPES[kind],
                "bounce_subtype": text(msg.get("bounce_description")),
                "reason": text(msg.get("diag")),
            }
        )
    return standard


FORMATS = [MandrillFormat()]
