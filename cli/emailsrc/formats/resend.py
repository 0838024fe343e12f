"""Resend webhooks: {"type": "email.*", "created_at": ..., "data": {...}}."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from email.utils import getaddresses
from typing import Any

from ..events import EmailEvent, EventName
from .base import (
    DEFERRAL,
    HARD,
    NO_EVENT_TYPE,
    NOT_EMAIL_EVENT,
    SOFT,
    SUPPRESSED,
    UNDETERMINED,
    UNKNOWN_EVENT,
    UNKNOWN_SHAPE,
    Conversion,
    Format,
    MappingRow,
    bounced_outcome,
    clean_email,
    reject,
    require_identity,
    skip,
    skipped_outcome,
    text,
)
from .common import (
    custom_properties,
    find_user_id,
    first_timestamp,
    merge_properties,
)

PROVIDER = "resend"

_EVENTS = {
    "email.delivered": EventName.DELIVERED,
    "email.opened": EventName.OPENED,
    "email.clicked": EventName.CLICKED,
    "email.bounced": EventName.BOUNCED,
    "email.complained": EventName.SPAM,
}
_SKIPPED = {
    "email.sent": NOT_EMAIL_EVENT,
    "email.scheduled": NOT_EMAIL_EVENT,
    "email.queued": NOT_EMAIL_EVENT,
    "email.delivery_delayed": DEFERRAL,
    # Resend could not send the message at all.
    "email.failed": NOT_EMAIL_EVENT,
    "email.suppressed": SUPPRESSED,
    # Inbound mail received for the sender.
    "email.received": NOT_EMAIL_EVENT,
}
# contact.*, domain.*: account changes, not tied to an email delivery.
_ACCOUNT_PREFIXES = ("contact.", "domain.")
# Resend's bounce types come from its SES backend: Permanent, Transient, Undetermined.
_BOUNCE_TYPES = {"permanent": HARD, "transient": SOFT, "undetermined": UNDETERMINED}
# Permanent "bounces" whose subtype says Resend itself refused to send to the address.
_SUPPRESSED_SUBTYPES = frozenset({"suppressed", "onaccountsuppressionlist"})


class ResendFormat(Format):
    name = PROVIDER
    title = "Resend"
    detection = 'JSON with type "email.*", created_at and data.email_id'

    def matches(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> bool:
        kind = sample.get("type")
        data = sample.get("data")
        return (
            isinstance(kind, str)
            and kind.startswith("email.")
            and "created_at" in sample
            and isinstance(data, Mapping)
            and "email_id" in data
        )

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        kind = text(data.get("type"))
        if not kind:
            raise reject(NO_EVENT_TYPE)
        if kind in _SKIPPED:
            return skip(_SKIPPED[kind], kind)
        if kind.startswith(_ACCOUNT_PREFIXES):
            return skip(NOT_EMAIL_EVENT, kind)
        name = _EVENTS.get(kind)
        if name is None:
            raise reject(UNKNOWN_EVENT, kind)
        payload = data.get("data")
        if not isinstance(payload, Mapping):
            raise reject(UNKNOWN_SHAPE, "data is not an object")
        if name is EventName.BOUNCED:
            return _bounce(data, payload)
        return _events(data, payload, name, {})

    def mapping_table(self) -> list[MappingRow]:
        rows = [MappingRow(kind, name.value) for kind, name in _EVENTS.items()]
        rows += [
            MappingRow(f"email.bounced ({kind.title()})", bounced_outcome(bounce))
            for kind, bounce in _BOUNCE_TYPES.items()
        ]
        rows += [
            MappingRow("email.bounced (Suppressed)", skipped_outcome(SUPPRESSED)),
            MappingRow("data.to with several addresses", "one event per recipient"),
            MappingRow("contact.* / domain.*", skipped_outcome(NOT_EMAIL_EVENT)),
        ]
        rows += [MappingRow(kind, skipped_outcome(why)) for kind, why in _SKIPPED.items()]
        return rows


def _bounce(data: Mapping[str, Any], payload: Mapping[str, Any]) -> Conversion:
    bounce = payload.get("bounce")
    bounce = bounce if isinstance(bounce, Mapping) else {}
    message = text(bounce.get("message"))
    subtype = text(bounce.get("subType"))
    if (subtype or "").lower() in _SUPPRESSED_SUBTYPES or "suppressed sending" in (message or ""):
        return skip(SUPPRESSED, subtype)
    kind = (text(bounce.get("type")) or "").lower()
    details = {
        "bounce_type": _BOUNCE_TYPES.get(kind, UNDETERMINED),
        "bounce_subtype": subtype,
        "reason": message,
    }
    return _events(data, payload, EventName.BOUNCED, details)


def _events(
    data: Mapping[str, Any],
    payload: Mapping[str, Any],
    name: EventName,
    extra: Mapping[str, Any],
) -> list[EmailEvent]:
    """One event per recipient: Resend lists every "to" address on each webhook."""
    tags = _tags(payload.get("tags"))
    recipients = _recipients(payload.get("to"))
    user_id, user_key = find_user_id(tags)
    if len(recipients) > 1:
        # A user id tagged on a message to several people belongs to one of them, and the
        # payload does not say which: those events stay keyed by each recipient's address,
        # and the tag is not copied onto everyone's events either.
        user_id = None
    if not recipients:
        require_identity(None, user_id)
    click = payload.get("click") if name is EventName.CLICKED else None
    click = click if isinstance(click, Mapping) else {}
    timestamp = first_timestamp(data.get("created_at"), click.get("timestamp"))
    standard = {
        "email_subject": text(payload.get("subject")),
        "campaign_id": text(payload.get("broadcast_id")),
        **extra,
    }
    properties = merge_properties(
        standard=standard, custom=custom_properties(tags, skip_keys=[user_key])
    )
    return [
        EmailEvent(
            name=name,
            timestamp=timestamp,
            provider=PROVIDER,
            recipient=recipient,
            user_id=user_id,
            email_id=text(payload.get("email_id")),
            event_id=None,  # the svix-id header is not part of the payload
            link_url=text(click.get("link")),
            properties=dict(properties),
        )
        for recipient in recipients or [None]
    ]


def _recipients(value: object) -> list[str]:
    if isinstance(value, str):
        value = [address for _, address in getaddresses([value]) if address]
    if not isinstance(value, list):
        return []
    unique: dict[str, str] = {}
    for item in value:
        address = clean_email(item)
        if address:
            unique.setdefault(address.lower(), address)
    return list(unique.values())


def _tags(value: object) -> dict[str, Any]:
    """Tags as a name -> value mapping: Resend sends an object, or a list of {name, value}."""
    if isinstance(value, Mapping):
        return dict(value)
    tags: dict[str, Any] = {}
    if isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping) and text(item.get("name")):
                tags[str(item["name"])] = item.get("value")
    return tags


FORMATS = [ResendFormat()]
