"""Brevo (formerly Sendinblue) transactional email webhooks, one JSON object per event."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..events import EmailEvent, EventName
from ..timestamps import TimestampError, parse_timestamp
from .base import (
    DEFERRAL,
    HARD,
    NOT_EMAIL_EVENT,
    PERSON_LEVEL,
    SECOND_OPEN,
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
)
from .common import (
    custom_properties,
    event_type,
    identify,
    merge_properties,
    nonzero_id,
    parse_custom_text,
    tag_fields,
    tag_list,
)

PROVIDER = "brevo"

_EVENTS = {
    "delivered": EventName.DELIVERED,
    "opened": EventName.OPENED,
    "open": EventName.OPENED,
    "proxy_open": EventName.OPENED,
    "click": EventName.CLICKED,
    "clicked": EventName.CLICKED,
    "hard_bounce": EventName.BOUNCED,
    "hard_bounced": EventName.BOUNCED,
    "soft_bounce": EventName.BOUNCED,
    "soft_bounced": EventName.BOUNCED,
    "spam": EventName.SPAM,
    "complaint": EventName.SPAM,
    "unsubscribed": EventName.UNSUBSCRIBED,
    "unsubscribe": EventName.UNSUBSCRIBED,
}
_BOUNCE_TYPES = {
    "hard_bounce": HARD,
    "hard_bounced": HARD,
    # Brevo reports retries as "deferred"; a soft bounce is the final temporary failure.
    "soft_bounce": SOFT,
    "soft_bounced": SOFT,
}
# Opens loaded by a privacy proxy (Apple Mail Privacy Protection and the like).
_MACHINE_OPENS = frozenset({"proxy_open"})

_SKIPPED = {
    # Brevo marks the first open of a recipient with an extra event beside "opened"
    # ("First opening" / "unique_opened"); the "opened" stream is the one kept.
    "unique_opened": SECOND_OPEN,
    "first_opening": SECOND_OPEN,
    "unique_proxy_open": SECOND_OPEN,
    "unique_proxy_opened": SECOND_OPEN,
    "request": NOT_EMAIL_EVENT,
    "sent": NOT_EMAIL_EVENT,
    "deferred": DEFERRAL,
    "blocked": SUPPRESSED,
    "invalid_email": SUPPRESSED,
    "invalid": SUPPRESSED,
    # Brevo could not send the message at all.
    "error": NOT_EMAIL_EVENT,
    # A contact added to a list: the person subscribed, no email involved.
    "list_addition": PERSON_LEVEL,
    # Marketing webhooks for changes to a contact record: no email involved.
    "contact_updated": NOT_EMAIL_EVENT,
    "contact_deleted": NOT_EMAIL_EVENT,
}

# "date" is in Brevo's CET/CEST wall-clock time; only a last resort after the UTC fields.
_DATE_ZONE = "Europe/Paris"


class BrevoFormat(Format):
    name = PROVIDER
    title = "Brevo (Sendinblue)"
    detection = "JSON with event + email + message-id / ts_epoch / ts_event"

    def matches(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> bool:
        keys = set(columns) if columns is not None else set(sample)
        if "event" not in keys or "email" not in keys:
            return False
        return bool(keys & {"message-id", "ts_epoch", "ts_event", "X-Mailin-custom"})

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        kind = event_type(data.get("event"))
        if kind in _SKIPPED:
            return skip(_SKIPPED[kind], kind)
        name = _EVENTS.get(kind)
        if name is None:
            raise reject(UNKNOWN_EVENT, kind)
        return [_event(data, name, kind)]

    def mapping_table(self) -> list[MappingRow]:
        rows = [MappingRow(kind, _outcome(kind, name)) for kind, name in _EVENTS.items()]
        rows += [MappingRow(kind, skipped_outcome(why)) for kind, why in _SKIPPED.items()]
        return rows


def _outcome(kind: str, name: EventName) -> str:
    if kind in _BOUNCE_TYPES:
        return bounced_outcome(_BOUNCE_TYPES[kind])
    if kind in _MACHINE_OPENS:
        return f"{name.value} (machine open)"
    return name.value


def _event(data: Mapping[str, Any], name: EventName, kind: str) -> EmailEvent:
    raw_custom = data.get("X-Mailin-custom")
    custom = parse_custom_text(raw_custom)
    tags = tag_list(data.get("tags")) or tag_list(data.get("tag"))
    who = identify(data.get("email"), custom, tag_fields(tags))
    standard = {
        "email_subject": text(data.get("subject")),
        "campaign_id": text(data.get("camp_id")),
        "campaign_name": text(data.get("campaign name")),
        "template_id": text(data.get("template_id")),
        "tags": tags,
        "bounce_type": _BOUNCE_TYPES.get(kind),
        "reason": text(data.get("reason")),
        "x_mailin_custom": None if custom else text(raw_custom),
        # Brevo sends contact_id 0 when the recipient is not a known contact.
        "brevo_contact_id": nonzero_id(data.get("contact_id")),
    }
    return EmailEvent(
        name=name,
        timestamp=_timestamp(data),
        provider=PROVIDER,
        recipient=who.recipient,
        user_id=who.user_id,
        email_id=text(data.get("message-id")) or text(data.get("messageId")),
        event_id=None,  # "id" is the webhook's id, the same for every event it posts
        link_url=text(data.get("link")) if name is EventName.CLICKED else None,
        machine_open=kind in _MACHINE_OPENS,
        properties=merge_properties(
            standard=standard, custom=custom_properties(custom, skip_keys=[who.user_key])
        ),
    )


def _timestamp(data: Mapping[str, Any]) -> datetime:
    # ts_epoch (ms) is the one field that is reliably UTC; ts_event and ts follow it.
    for key in ("ts_epoch", "ts_event", "ts"):
        value = data.get(key)
        if value is not None and value != "":
            return parse_timestamp(value)
    return _local_date(data.get("date"))


def _local_date(value: object) -> datetime:
    shown = text(value)
    if shown is None:
        raise TimestampError("missing timestamp")
    try:
        moment = datetime.fromisoformat(shown)
    except ValueError:
        return parse_timestamp(shown)
    if moment.tzinfo is not None:
        return parse_timestamp(moment)
    try:
        zone = ZoneInfo(_DATE_ZONE)
    except ZoneInfoNotFoundError:
        raise TimestampError("timestamp without time zone: no tz database") from None
    return parse_timestamp(moment.replace(tzinfo=zone))


FORMATS = [BrevoFormat()]
