"""Mailchimp Transactional (Mandrill): stored webhook bodies, {"mandrill_events": "[...]"}."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..events import EmailEvent, EventName
from .base import (
    DEFERRAL,
    HARD,
    NOT_EMAIL_EVENT,
    SOFT,
    SUPPRESSED,
    UNKNOWN_EVENT,
    UNKNOWN_SHAPE,
    Conversion,
    Format,
    MappingRow,
    bounced_outcome,
    dig,
    reject,
    skip,
    skipped_outcome,
    text,
)
from .common import (
    campaign_from_tags,
    custom_properties,
    embedded_json,
    first_timestamp,
    identify,
    merge_properties,
    object_list,
    page_items,
    tag_list,
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
    "deferral": DEFERRAL,
    # The address is on the rejection denylist (or the message broke a rule): not sent.
    "reject": SUPPRESSED,
    "inbound": NOT_EMAIL_EVENT,
}

# Sync events carry "type" instead of "event": changes to the rejection lists.
_SYNC_TYPES = frozenset({"whitelist", "blacklist", "allowlist", "denylist"})

# user_agent_parsed.type names the kind of client; "robot" is an automated fetch.
_MACHINE_AGENT = "robot"

# Mandrill has no delivery event: "send" means Mandrill handed the message on, and only the
# receiving server's reply, logged in msg.smtp_events, says whether it took the message.
# An smtp event's diag is that reply ("250 2.0.0 OK ...", "smtp;550 5.1.1 ..."); its type
# ("sent", "deferred"...) is Mandrill's reading of it, used when diag carries no code.
_SEND = "send"
_UNCONFIRMED_SEND = "send (no delivery confirmation)"
_REPLY_CODE = re.compile(r"(?:smtp;)?\s*([2-5])\d\d\b", re.IGNORECASE)
_ACCEPTED_TYPE = "sent"


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
            raise reject(UNKNOWN_SHAPE, "mandrill_events is not a list")
        yield from page_items(events)

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        if _is_sync(data):
            return skip(NOT_EMAIL_EVENT, f"{text(data.get('type'))} sync")
        kind = text(data.get("event"))
        if kind is None:
            raise reject(UNKNOWN_SHAPE, "no Mandrill event")
        kind = kind.lower()
        if kind in _SKIPPED:
            return skip(_SKIPPED[kind], kind)
        name = EventName.DELIVERED if kind == _SEND else _EVENTS.get(kind)
        if name is None:
            raise reject(UNKNOWN_EVENT, kind)
        msg = data.get("msg")
        if not isinstance(msg, Mapping):
            raise reject(UNKNOWN_SHAPE, "no Mandrill msg object")
        if kind == _SEND:
            return _send(data, msg)
        return [_event(data, msg, name, kind)]

    def mapping_table(self) -> list[MappingRow]:
        rows = [
            MappingRow("send (last smtp_events reply is 2xx)", EventName.DELIVERED.value),
            MappingRow("send (no smtp_events, or no 2xx reply)", skipped_outcome(NOT_EMAIL_EVENT)),
        ]
        rows += [
            MappingRow(kind, name.value)
            for kind, name in _EVENTS.items()
            if name is not EventName.BOUNCED
        ]
        rows += [
            MappingRow(kind, bounced_outcome(bounce)) for kind, bounce in _BOUNCE_TYPES.items()
        ]
        rows += [MappingRow(kind, skipped_outcome(why)) for kind, why in _SKIPPED.items()]
        rows.append(MappingRow("sync events (allow/deny lists)", skipped_outcome(NOT_EMAIL_EVENT)))
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


def _send(data: Mapping[str, Any], msg: Mapping[str, Any]) -> Conversion:
    reply = _last_smtp_event(msg)
    if reply is None or not _accepted(reply):
        return skip(NOT_EMAIL_EVENT, _UNCONFIRMED_SEND)
    # The reply's own time is when the receiving server took the message.
    return [_event(data, msg, EventName.DELIVERED, _SEND, moment=reply.get("ts"))]


def _last_smtp_event(msg: Mapping[str, Any]) -> Mapping[str, Any] | None:
    # Mandrill appends to the log in the order the attempts happened.
    attempts = object_list(msg.get("smtp_events"))
    return attempts[-1] if attempts else None


def _accepted(reply: Mapping[str, Any]) -> bool:
    code = _REPLY_CODE.match(text(reply.get("diag")) or "")
    if code is not None:
        return code.group(1) == "2"
    return (text(reply.get("type")) or "").lower() == _ACCEPTED_TYPE


def _event(
    data: Mapping[str, Any],
    msg: Mapping[str, Any],
    name: EventName,
    kind: str,
    moment: object = None,
) -> EmailEvent:
    metadata = msg.get("metadata")
    who = identify(msg.get("email"), metadata)
    agent_type = text(dig(data, "user_agent_parsed", "type"))
    return EmailEvent(
        name=name,
        timestamp=first_timestamp(moment, data.get("ts")),
        provider=PROVIDER,
        recipient=who.recipient,
        user_id=who.user_id,
        email_id=text(msg.get("_id")) or text(data.get("_id")),
        # Mandrill events carry only the message's _id; the composite key tells them apart.
        event_id=None,
        link_url=text(data.get("url")) if name is EventName.CLICKED else None,
        machine_open=name is EventName.OPENED and (agent_type or "").lower() == _MACHINE_AGENT,
        properties=merge_properties(
            standard=_standard(msg, kind),
            custom=custom_properties(metadata, skip_keys=[who.user_key]),
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
