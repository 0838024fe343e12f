"""SparkPost: webhook batches ({"msys": {...}} items) and Events API result pages."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..events import EmailEvent, EventName, RecordRejected
from .base import Conversion, Format, MappingRow, clean_email, require_identity, text
from .webhook_helpers import (
    custom_properties,
    event_type,
    first_timestamp,
    merge_properties,
    skip,
    string_list,
    user_id_from,
)

PROVIDER = "sparkpost"

_EVENTS = {
    "delivery": EventName.DELIVERED,
    "open": EventName.OPENED,
    "amp_open": EventName.OPENED,
    "click": EventName.CLICKED,
    "amp_click": EventName.CLICKED,
    "spam_complaint": EventName.SPAM,
    "list_unsubscribe": EventName.UNSUBSCRIBED,
    "link_unsubscribe": EventName.UNSUBSCRIBED,
}
_BOUNCES = frozenset({"bounce", "out_of_band"})

# Every type that is understood but yields no event, with the stable skip category.
_SKIPPED = {
    # SparkPost sends "initial_open" for the same open that also produces "open".
    "initial_open": "second open signal",
    "amp_initial_open": "second open signal",
    "injection": "send event",
    "delay": "deferral",
    "policy_rejection": "suppressed before sending",
    "generation_failure": "rendering failure",
    "generation_rejection": "rendering failure",
    "relay_injection": "inbound relay message",
    "relay_rejection": "inbound relay message",
    "relay_delivery": "inbound relay message",
    "relay_tempfail": "inbound relay message",
    "relay_permfail": "inbound relay message",
    "sms_status": "non-email channel",
}

# Bounce classification codes (SparkPost's "Bounce Classification Codes" table): the
# category decides the bounce_type; admin codes are SparkPost's own suppressions, and
# a few codes are not bounces at all.
_BOUNCE_TYPES = {
    "1": "undetermined",
    "10": "hard",
    "30": "hard",
    "20": "soft",
    "21": "soft",
    "22": "soft",
    "23": "soft",
    "24": "soft",
    "40": "soft",
    "70": "soft",
    "50": "block",
    "51": "block",
    "52": "block",
    "53": "block",
    "54": "block",
}
_SUPPRESSION_CLASSES = frozenset({"25", "26"})
_NOT_BOUNCE_CLASSES = frozenset({"60", "80", "100"})
_UNSUBSCRIBE_CLASS = "90"

# Delivery methods that are email; SparkPost also carries SMS and push traffic.
_EMAIL_METHODS = frozenset({"esmtp", "smtp"})

# Webhook event classes whose items are email activity; others need a "type" to be read.
_WEBHOOK_CLASSES = frozenset(
    {"message_event", "track_event", "unsubscribe_event", "gen_event", "relay_event"}
)


class SparkPostFormat(Format):
    name = PROVIDER
    title = "SparkPost"
    detection = (
        'JSON: webhook items {"msys": {...}}, or Events API pages / items '
        "(type + event_id + transmission_id/rcpt_to)"
    )

    def matches(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> bool:
        if isinstance(sample.get("msys"), Mapping):
            return True
        results = sample.get("results")
        if isinstance(results, list):
            return any(isinstance(item, Mapping) and _is_flat_event(item) for item in results)
        return _is_flat_event(sample)

    def explode(self, data: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        results = data.get("results")
        if "msys" not in data and isinstance(results, list):
            # An Events API page: its items are the records. A stray non-object item
            # still counts, and is rejected as unrecognized.
            for item in results:
                yield item if isinstance(item, Mapping) else {}
            return
        yield data

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        if "msys" in data:
            return _convert_webhook_item(data["msys"])
        if not _is_flat_event(data):
            raise RecordRejected("unrecognized record: not a SparkPost event")
        return _convert_event(data)

    def mapping_table(self) -> list[MappingRow]:
        rows = [MappingRow(kind, name.value) for kind, name in _EVENTS.items()]
        rows += [
            MappingRow("bounce / out_of_band (class 10, 30)", "Email Bounced (hard)"),
            MappingRow("bounce / out_of_band (soft classes)", "Email Bounced (soft)"),
            MappingRow("bounce / out_of_band (class 50-54)", "Email Bounced (block)"),
            MappingRow("bounce / out_of_band (class 1)", "Email Bounced (undetermined)"),
            MappingRow("bounce / out_of_band (class 90)", EventName.UNSUBSCRIBED.value),
            MappingRow("bounce (class 25, 26)", "skipped: suppressed before sending"),
            MappingRow("bounce (class 60, 80, 100)", "skipped: not a bounce"),
        ]
        rows += [MappingRow(kind, f"skipped: {why}") for kind, why in _SKIPPED.items()]
        return rows


def _is_flat_event(data: Mapping[str, Any]) -> bool:
    kind = data.get("type")
    if not isinstance(kind, str) or "event_id" not in data:
        return False
    return "transmission_id" in data or "rcpt_to" in data or "message_id" in data


def _convert_webhook_item(msys: object) -> Conversion:
    if not isinstance(msys, Mapping):
        raise RecordRejected("unrecognized record: msys is not an object")
    if not msys:
        return skip("webhook ping")
    if len(msys) != 1:
        raise RecordRejected("unrecognized record: msys holds several event classes")
    ((event_class, event),) = msys.items()
    if event_class in ("relay_message", "relay_event"):
        return skip("inbound relay message")
    if not isinstance(event, Mapping):
        raise RecordRejected("unrecognized record: event is not an object")
    if event_class not in _WEBHOOK_CLASSES and "type" not in event:
        return skip("unsupported event class", event_class)
    return _convert_event(event)


def _convert_event(event: Mapping[str, Any]) -> Conversion:
    kind = event_type(event.get("type"))
    if kind in _SKIPPED:
        return skip(_SKIPPED[kind], kind)
    method = text(event.get("delv_method"))
    if method and method.lower() not in _EMAIL_METHODS:
        return skip("non-email channel", method)
    if kind in _BOUNCES:
        return _bounce(event, kind)
    name = _EVENTS.get(kind)
    if name is None:
        return skip("unsupported event type", kind)
    return [_event(event, name)]


def _bounce(event: Mapping[str, Any], kind: str) -> Conversion:
    bounce_class = text(event.get("bounce_class"))
    if bounce_class in _SUPPRESSION_CLASSES:
        return skip("suppressed before sending", f"bounce class {bounce_class}")
    if bounce_class in _NOT_BOUNCE_CLASSES:
        return skip("not a bounce", f"bounce class {bounce_class}")
    details = {
        "reason": text(event.get("reason")) or text(event.get("raw_reason")),
        "bounce_class": bounce_class,
        "error_code": text(event.get("error_code")),
        "out_of_band": True if kind == "out_of_band" else None,
    }
    if bounce_class == _UNSUBSCRIBE_CLASS:
        return [_event(event, EventName.UNSUBSCRIBED, details)]
    bounce_type = _BOUNCE_TYPES.get(bounce_class or "", "undetermined")
    return [_event(event, EventName.BOUNCED, {"bounce_type": bounce_type, **details})]


def _event(
    event: Mapping[str, Any], name: EventName, extra: Mapping[str, Any] | None = None
) -> EmailEvent:
    meta = event.get("rcpt_meta")
    recipient = clean_email(event.get("raw_rcpt_to") or event.get("rcpt_to"))
    user_id = user_id_from(meta)
    require_identity(recipient, user_id)
    clicked = name is EventName.CLICKED
    standard = {
        "email_subject": text(event.get("subject")),
        "campaign_id": text(event.get("campaign_id")),
        "template_id": text(event.get("template_id")),
        "transmission_id": text(event.get("transmission_id")),
        "tags": string_list(event.get("rcpt_tags")) or None,
        "link_name": text(event.get("target_link_name")) if clicked else None,
        **(extra or {}),
    }
    return EmailEvent(
        name=name,
        timestamp=first_timestamp(event.get("timestamp")),
        provider=PROVIDER,
        recipient=recipient,
        user_id=user_id,
        email_id=text(event.get("message_id")) or text(event.get("transmission_id")),
        event_id=text(event.get("event_id")),
        link_url=text(event.get("target_link_url")) if clicked else None,
        properties=merge_properties(custom_properties(meta), standard),
    )


FORMATS = [SparkPostFormat()]
