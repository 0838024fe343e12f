"""SendGrid: stored Event Webhook bodies (one event object, or a batched array, per line)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..events import EmailEvent, EventName
from ..timestamps import parse_timestamp
from .base import (
    BLOCK,
    DEFERRAL,
    HARD,
    NOT_EMAIL_EVENT,
    PERSON_LEVEL,
    SOFT,
    SUPPRESSED,
    UNDETERMINED,
    UNKNOWN_EVENT,
    UNKNOWN_SHAPE,
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
    campaign_from_tags,
    custom_properties,
    identify,
    merge_properties,
    strip_brackets,
    tag_list,
)

PROVIDER = "sendgrid"

_EVENTS = {
    "delivered": EventName.DELIVERED,
    "open": EventName.OPENED,
    "click": EventName.CLICKED,
    "spamreport": EventName.SPAM,
    "unsubscribe": EventName.UNSUBSCRIBED,
    "group_unsubscribe": EventName.UNSUBSCRIBED,
    "bounce": EventName.BOUNCED,
}

_SKIPPED = {
    "processed": NOT_EMAIL_EVENT,
    # The recipient opted back in to an unsubscribe group: a change to the person's
    # subscriptions, not to one email.
    "group_resubscribe": PERSON_LEVEL,
    "deferred": DEFERRAL,
    # SendGrid drops a message it will not send (suppression lists, invalid address):
    # it never reached a mail server.
    "dropped": SUPPRESSED,
}

# Account events (e.g. account_status_change) concern the sending account, not a message.
_ACCOUNT_EVENTS = frozenset({"account_status_change"})

# The bounce event's "type": a hard bounce, a block (rejected for the message or the
# sending IP, not the address), or a deferral that gave up after 72 hours.
_BOUNCE_TYPES = {"bounce": HARD, "blocked": BLOCK, "expired": SOFT}

# Fields SendGrid itself writes; every other top-level key is a custom arg of the sender.
_SENDGRID_KEYS = frozenset(
    {
        "email",
        "timestamp",
        "event",
        "smtp-id",
        "sg_event_id",
        "sg_message_id",
        "sg_machine_open",
        "category",
        "url",
        "url_offset",
        "useragent",
        "ip",
        "response",
        "reason",
        "status",
        "type",
        "attempt",
        "tls",
        "cert_err",
        "bounce_classification",
        "asm_group_id",
        "pool",
        "send_at",
        "phase_id",
        "mc_stats",
        "post_type",
        "newsletter",
        "singlesend_id",
        "singlesend_name",
        "template_id",
        "template_name",
        "template_version_id",
        "unique_args",
    }
)
_SENDGRID_PREFIXES = ("sg_", "marketing_campaign_", "nlvx_")


class SendGridFormat(Format):
    name = PROVIDER
    title = "SendGrid"
    detection = "JSON: Event Webhook events (event + sg_event_id or sg_message_id)"

    def matches(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> bool:
        if columns is not None or not isinstance(sample.get("event"), str):
            return False
        return "sg_event_id" in sample or "sg_message_id" in sample

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        kind = text(data.get("event"))
        if kind is None:
            raise reject(UNKNOWN_SHAPE, "no SendGrid event name")
        kind = kind.lower()
        if kind in _SKIPPED:
            return skip(_SKIPPED[kind], kind)
        if kind in _ACCOUNT_EVENTS:
            return skip(NOT_EMAIL_EVENT, kind)
        name = _EVENTS.get(kind)
        if name is None:
            raise reject(UNKNOWN_EVENT, kind)
        return [_event(data, name, kind)]

    def mapping_table(self) -> list[MappingRow]:
        rows = [MappingRow(kind, name.value) for kind, name in _EVENTS.items() if kind != "bounce"]
        rows += [
            MappingRow(f"bounce (type {kind})", bounced_outcome(bounce))
            for kind, bounce in _BOUNCE_TYPES.items()
        ]
        rows.append(MappingRow("bounce (any other type)", bounced_outcome(UNDETERMINED)))
        rows += [MappingRow(kind, skipped_outcome(why)) for kind, why in _SKIPPED.items()]
        rows += [MappingRow(kind, skipped_outcome(NOT_EMAIL_EVENT)) for kind in _ACCOUNT_EVENTS]
        return rows


def _event(data: Mapping[str, Any], name: EventName, kind: str) -> EmailEvent:
    custom = _custom_args(data)
    who = identify(data.get("email"), custom)
    return EmailEvent(
        name=name,
        timestamp=parse_timestamp(data.get("timestamp")),
        provider=PROVIDER,
        recipient=who.recipient,
        user_id=who.user_id,
        email_id=text(data.get("sg_message_id")) or strip_brackets(data.get("smtp-id")),
        event_id=text(data.get("sg_event_id")),
        link_url=text(data.get("url")) if name is EventName.CLICKED else None,
        machine_open=name is EventName.OPENED and truthy(data.get("sg_machine_open")),
        properties=merge_properties(
            standard=_standard(data, name, kind),
            custom=custom_properties(custom, skip_keys=[who.user_key]),
        ),
    )


def _custom_args(data: Mapping[str, Any]) -> dict[str, Any]:
    """SendGrid flattens the sender's custom args into the event; old exports nest them."""
    custom = {
        key: value
        for key, value in data.items()
        if key not in _SENDGRID_KEYS and not key.startswith(_SENDGRID_PREFIXES)
    }
    nested = data.get("unique_args")
    if isinstance(nested, Mapping):
        custom = {**nested, **custom}
    return custom


def _standard(data: Mapping[str, Any], name: EventName, kind: str) -> dict[str, Any]:
    tags = tag_list(data.get("category"))
    standard: dict[str, Any] = {
        "campaign_id": text(data.get("marketing_campaign_id")) or text(data.get("singlesend_id")),
        "campaign_name": text(data.get("marketing_campaign_name"))
        or text(data.get("singlesend_name"))
        or campaign_from_tags(tags),
        "tags": tags or None,
        "template_id": text(data.get("template_id")) or text(data.get("sg_template_id")),
    }
    if name is EventName.BOUNCED:
        standard.update(_bounce(data))
    if kind == "group_unsubscribe":
        standard["list_id"] = text(data.get("asm_group_id"))
    return standard


def _bounce(data: Mapping[str, Any]) -> dict[str, Any]:
    bounce_kind = (text(data.get("type")) or "bounce").lower()
    return {
        "bounce_type": _BOUNCE_TYPES.get(bounce_kind, UNDETERMINED),
        "bounce_subtype": text(data.get("bounce_classification")),
        "reason": text(data.get("reason")),
        "smtp_status": text(data.get("status")),
    }


FORMATS = [SendGridFormat()]
