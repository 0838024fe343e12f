"""Mailjet Event API (webhook) records: one JSON object per event, or grouped arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..events import EmailEvent, EventName
from .base import (
    DEFERRAL,
    HARD,
    SOFT,
    SUPPRESSED,
    UNKNOWN_EVENT,
    Conversion,
    Format,
    MappingRow,
    bounced_outcome,
    reject,
    skip,
    skipped_outcome,
    text,
    truthy,
)
from .common import (
    custom_properties,
    event_type,
    first_timestamp,
    identify,
    merge_properties,
    nonzero_id,
    parse_custom_text,
)

PROVIDER = "mailjet"

# Mailjet's "sent" is dispatched when the destination SMTP server accepted the message:
# that is a delivery, not a send.
_EVENTS = {
    "sent": EventName.DELIVERED,
    "open": EventName.OPENED,
    "click": EventName.CLICKED,
    "spam": EventName.SPAM,
    "unsub": EventName.UNSUBSCRIBED,
}
_SKIPPED = {
    # "blocked": Mailjet never handed the message to a mail server (preblocked,
    # duplicate in campaign, sender or content blocked).
    "blocked": SUPPRESSED,
}

# Bounce errors that Mailjet itself calls temporary: delivery is retried, so the bounce
# event is a deferral unless Mailjet marked it permanent.
_TEMPORARY_ERRORS = frozenset({"greylisted", "system issue", "protocol issue", "connection issue"})

_KNOWN_KEYS = frozenset({"mj_campaign_id", "mj_contact_id", "mj_message_id", "Message_GUID"})


class MailjetFormat(Format):
    name = PROVIDER
    title = "Mailjet"
    detection = "JSON with event + time (unix) + MessageID / Message_GUID / mj_* fields"

    def matches(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> bool:
        keys = set(columns) if columns is not None else set(sample)
        if "event" not in keys or "time" not in keys:
            return False
        return bool(keys & _KNOWN_KEYS) or {"MessageID", "email"} <= keys

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        kind = event_type(data.get("event"))
        if kind in _SKIPPED:
            return skip(_SKIPPED[kind], text(data.get("error")))
        if kind == "bounce":
            return _bounce(data)
        name = _EVENTS.get(kind)
        if name is None:
            raise reject(UNKNOWN_EVENT, kind)
        return [_event(data, name)]

    def mapping_table(self) -> list[MappingRow]:
        rows = [MappingRow(kind, name.value) for kind, name in _EVENTS.items()]
        rows += [
            MappingRow("bounce (hard_bounce: true)", bounced_outcome(HARD)),
            MappingRow("bounce (hard_bounce: false)", bounced_outcome(SOFT)),
            MappingRow("bounce (temporary error, not hard)", skipped_outcome(DEFERRAL)),
            MappingRow("bounce (error related to mailjet)", skipped_outcome(SUPPRESSED)),
        ]
        rows += [MappingRow(kind, skipped_outcome(why)) for kind, why in _SKIPPED.items()]
        return rows


def _bounce(data: Mapping[str, Any]) -> Conversion:
    hard = truthy(data.get("hard_bounce"))
    error = text(data.get("error"))
    related = text(data.get("error_related_to"))
    if related == "mailjet":
        return skip(SUPPRESSED, error)
    if not hard and (error or "").lower() in _TEMPORARY_ERRORS:
        return skip(DEFERRAL, error)
    details = {
        "bounce_type": HARD if hard else SOFT,
        "reason": _bounce_reason(related, error, text(data.get("comment"))),
        "error_related_to": related,
        "blocked": truthy(data.get("blocked")) or None,
    }
    return [_event(data, EventName.BOUNCED, details)]


def _bounce_reason(related: str | None, error: str | None, comment: str | None) -> str | None:
    parts = [part for part in (related, error, comment) if part]
    return ": ".join(parts) or None


def _custom_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    # Payload is free text set at send time; CustomID is usually a tracking id, and
    # counts as custom data only when it is structured ("user_id=42", a JSON object).
    fields = parse_custom_text(data.get("Payload"))
    for key, value in parse_custom_text(data.get("CustomID")).items():
        fields.setdefault(key, value)
    return fields


def _event(
    data: Mapping[str, Any], name: EventName, extra: Mapping[str, Any] | None = None
) -> EmailEvent:
    custom = _custom_fields(data)
    who = identify(data.get("email"), custom)
    standard = {
        "campaign_id": nonzero_id(data.get("mj_campaign_id")),
        "campaign_name": text(data.get("customcampaign")),
        "custom_id": text(data.get("CustomID")),
        "message_guid": text(data.get("Message_GUID")),
        "list_id": nonzero_id(data.get("mj_list_id")) if name is EventName.UNSUBSCRIBED else None,
        "source": text(data.get("source")) if name is EventName.SPAM else None,
        **(extra or {}),
    }
    if not custom and text(data.get("Payload")):
        standard["payload"] = text(data.get("Payload"))
    return EmailEvent(
        name=name,
        timestamp=first_timestamp(data.get("time")),
        provider=PROVIDER,
        recipient=who.recipient,
        user_id=who.user_id,
        email_id=_message_id(data),
        event_id=None,  # Mailjet gives no per-event id
        link_url=text(data.get("url")) if name is EventName.CLICKED else None,
        properties=merge_properties(
            standard=standard, custom=custom_properties(custom, skip_keys=[who.user_key])
        ),
    )


def _message_id(data: Mapping[str, Any]) -> str | None:
    return (
        text(data.get("MessageID"))
        or text(data.get("mj_message_id"))
        or text(data.get("Message_GUID"))
    )


FORMATS = [MailjetFormat()]
