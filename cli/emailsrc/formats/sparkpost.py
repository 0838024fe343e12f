"""SparkPost: webhook batches ({"msys": {...}} items) and Events API result pages."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..events import EmailEvent, EventName
from .base import (
    BLOCK,
    DEFERRAL,
    HARD,
    NON_EMAIL_CHANNEL,
    NOT_A_BOUNCE,
    NOT_EMAIL_EVENT,
    SECOND_OPEN,
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
)
from .common import (
    custom_properties,
    event_type,
    first_timestamp,
    identify,
    merge_properties,
    page_items,
    tag_list,
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
    "initial_open": SECOND_OPEN,
    "amp_initial_open": SECOND_OPEN,
    "injection": NOT_EMAIL_EVENT,
    "delay": DEFERRAL,
    "policy_rejection": SUPPRESSED,
    # The template did not render: nothing was sent.
    "generation_failure": NOT_EMAIL_EVENT,
    "generation_rejection": NOT_EMAIL_EVENT,
    # Inbound relay: mail received for the sender, not mail the sender sent.
    "relay_injection": NOT_EMAIL_EVENT,
    "relay_rejection": NOT_EMAIL_EVENT,
    "relay_delivery": NOT_EMAIL_EVENT,
    "relay_tempfail": NOT_EMAIL_EVENT,
    "relay_permfail": NOT_EMAIL_EVENT,
    "sms_status": NON_EMAIL_CHANNEL,
    # A/B test lifecycle (ab_test_event class): about the test, not one recipient's email.
    "ab_test_completed": NOT_EMAIL_EVENT,
    "ab_test_cancelled": NOT_EMAIL_EVENT,
}
_INBOUND_RELAY = "inbound relay message"
_RELAY_CLASSES = frozenset({"relay_message", "relay_event"})

# Bounce classification codes (SparkPost's "Bounce Classification Codes" table): the
# category decides the bounce_type; admin codes are SparkPost's own suppressions, and
# a few codes are not bounces at all.
_BOUNCE_TYPES = {
    "1": UNDETERMINED,
    "10": HARD,
    "30": HARD,
    "20": SOFT,
    "21": SOFT,
    "22": SOFT,
    "23": SOFT,
    "24": SOFT,
    "40": SOFT,
    "70": SOFT,
    "50": BLOCK,
    "51": BLOCK,
    "52": BLOCK,
    "53": BLOCK,
    "54": BLOCK,
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
            yield from page_items(results)  # an Events API page
            return
        yield data

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        if "msys" in data:
            return _convert_webhook_item(data["msys"])
        if not _is_flat_event(data):
            raise reject(UNKNOWN_SHAPE, "not a SparkPost event")
        return _convert_event(data)

    def mapping_table(self) -> list[MappingRow]:
        rows = [MappingRow(kind, name.value) for kind, name in _EVENTS.items()]
        rows += [
            MappingRow(f"bounce / out_of_band (class {_classes(bounce)})", bounced_outcome(bounce))
            for bounce in (HARD, SOFT, BLOCK, UNDETERMINED)
        ]
        rows += [
            MappingRow("bounce / out_of_band (no or unknown class)", bounced_outcome(UNDETERMINED)),
            MappingRow(
                f"bounce / out_of_band (class {_UNSUBSCRIBE_CLASS})", EventName.UNSUBSCRIBED.value
            ),
            MappingRow(
                f"bounce (class {', '.join(sorted(_SUPPRESSION_CLASSES, key=int))})",
                skipped_outcome(SUPPRESSED),
            ),
            MappingRow(
                f"bounce (class {', '.join(sorted(_NOT_BOUNCE_CLASSES, key=int))})",
                skipped_outcome(NOT_A_BOUNCE),
            ),
        ]
        rows += [MappingRow(kind, skipped_outcome(why)) for kind, why in _SKIPPED.items()]
        rows += [
            MappingRow("msys {} (webhook ping)", skipped_outcome(NOT_EMAIL_EVENT)),
            MappingRow("msys relay_message / relay_event", skipped_outcome(NOT_EMAIL_EVENT)),
            MappingRow("delv_method other than esmtp / smtp", skipped_outcome(NON_EMAIL_CHANNEL)),
        ]
        return rows


def _is_flat_event(data: Mapping[str, Any]) -> bool:
    kind = data.get("type")
    if not isinstance(kind, str) or "event_id" not in data:
        return False
    return "transmission_id" in data or "rcpt_to" in data or "message_id" in data


def _classes(bounce_type: str) -> str:
    codes = sorted((c for c, t in _BOUNCE_TYPES.items() if t == bounce_type), key=int)
    return ", ".join(codes)


def _convert_webhook_item(msys: object) -> Conversion:
    if not isinstance(msys, Mapping):
        raise reject(UNKNOWN_SHAPE, "msys is not an object")
    if not msys:
        return skip(NOT_EMAIL_EVENT, "webhook ping")
    if len(msys) != 1:
        raise reject(UNKNOWN_SHAPE, "msys holds several event classes")
    ((event_class, event),) = msys.items()
    if event_class in _RELAY_CLASSES:
        return skip(NOT_EMAIL_EVENT, _INBOUND_RELAY)
    if not isinstance(event, Mapping):
        raise reject(UNKNOWN_SHAPE, "event is not an object")
    if event_class not in _WEBHOOK_CLASSES and "type" not in event:
        raise reject(UNKNOWN_EVENT, f"event class {event_class}")
    return _convert_event(event)


def _convert_event(event: Mapping[str, Any]) -> Conversion:
    kind = event_type(event.get("type"))
    if kind in _SKIPPED:
        return skip(_SKIPPED[kind], kind)
    method = text(event.get("delv_method"))
    if method and method.lower() not in _EMAIL_METHODS:
        return skip(NON_EMAIL_CHANNEL, method)
    if kind in _BOUNCES:
        return _bounce(event, kind)
    name = _EVENTS.get(kind)
    if name is None:
        raise reject(UNKNOWN_EVENT, kind)
    return [_event(event, name)]


def _bounce(event: Mapping[str, Any], kind: str) -> Conversion:
    bounce_class = text(event.get("bounce_class"))
    if bounce_class in _SUPPRESSION_CLASSES:
        return skip(SUPPRESSED, f"bounce class {bounce_class}")
    if bounce_class in _NOT_BOUNCE_CLASSES:
        return skip(NOT_A_BOUNCE, f"bounce class {bounce_class}")
    details = {
        "reason": text(event.get("reason")) or text(event.get("raw_reason")),
        "bounce_class": bounce_class,
        "error_code": text(event.get("error_code")),
        "out_of_band": True if kind == "out_of_band" else None,
    }
    if bounce_class == _UNSUBSCRIBE_CLASS:
        return [_event(event, EventName.UNSUBSCRIBED, details)]
    bounce_type = _BOUNCE_TYPES.get(bounce_class or "", UNDETERMINED)
    return [_event(event, EventName.BOUNCED, {"bounce_type": bounce_type, **details})]


def _event(
    event: Mapping[str, Any], name: EventName, extra: Mapping[str, Any] | None = None
) -> EmailEvent:
    meta = event.get("rcpt_meta")
    who = identify(event.get("raw_rcpt_to") or event.get("rcpt_to"), meta)
    clicked = name is EventName.CLICKED
    standard = {
        "email_subject": text(event.get("subject")),
        "campaign_id": text(event.get("campaign_id")),
        "template_id": text(event.get("template_id")),
        "transmission_id": text(event.get("transmission_id")),
        "tags": tag_list(event.get("rcpt_tags")),
        "link_name": text(event.get("target_link_name")) if clicked else None,
        **(extra or {}),
    }
    return EmailEvent(
        name=name,
        timestamp=first_timestamp(event.get("timestamp")),
        provider=PROVIDER,
        recipient=who.recipient,
        user_id=who.user_id,
        email_id=text(event.get("message_id")) or text(event.get("transmission_id")),
        event_id=text(event.get("event_id")),
        link_url=text(event.get("target_link_url")) if clicked else None,
        properties=merge_properties(
            standard=standard, custom=custom_properties(meta, skip_keys=[who.user_key])
        ),
    )


FORMATS = [SparkPostFormat()]
