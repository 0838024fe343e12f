"""Postmark: webhook bodies (RecordType ...) and Bounces / Opens / Clicks API pages."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..events import EmailEvent, EventName
from ..timestamps import parse_timestamp
from .base import (
    BLOCK,
    DEFERRAL,
    HARD,
    NOT_A_BOUNCE,
    NOT_EMAIL_EVENT,
    PERSON_LEVEL,
    SECOND_BOUNCE,
    SECOND_COMPLAINT,
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
    campaign_from_tags,
    custom_properties,
    identify,
    merge_properties,
    tag_list,
)

PROVIDER = "postmark"

# Record types, with the field holding the recipient and the one holding the event time.
_RECORDS = {
    "Delivery": ("Recipient", "DeliveredAt"),
    "Open": ("Recipient", "ReceivedAt"),
    "Click": ("Recipient", "ReceivedAt"),
    "Bounce": ("Email", "BouncedAt"),
    "SpamComplaint": ("Email", "BouncedAt"),
    "SubscriptionChange": ("Recipient", "ChangedAt"),
}
_SIMPLE = {
    "Delivery": EventName.DELIVERED,
    "Open": EventName.OPENED,
    "Click": EventName.CLICKED,
    "SpamComplaint": EventName.SPAM,
}

# API pages: the list key and the RecordType of its items (older items omit it).
_PAGES = {"Bounces": "Bounce", "Opens": "Open", "Clicks": "Click"}

# SuppressionReason of a SubscriptionChange that follows a failure: the Bounce or
# SpamComplaint record of that failure is the event.
_SECOND_SIGNALS = {"HardBounce": SECOND_BOUNCE, "SpamComplaint": SECOND_COMPLAINT}

# Bounce "Type" values (Postmark's bounce types table). Final failures of the message are
# bounces; SoftBounce / Undeliverable is reported once Postmark has stopped retrying, and
# DnsError, like it, is a bounce record of the message rather than a delay notice.
_BOUNCES = {
    "HardBounce": HARD,
    "SoftBounce": SOFT,
    "DnsError": SOFT,
    "Blocked": BLOCK,
    "DMARCPolicy": BLOCK,
    "VirusNotification": BLOCK,
    "Unknown": UNDETERMINED,
}
_BOUNCE_SKIPS = {
    # "Message delayed": Postmark is still trying.
    "Transient": DEFERRAL,
    # Postmark refused to send: an invalid address, a deactivated one, an unconfirmed sender.
    "BadEmailAddress": SUPPRESSED,
    "ManuallyDeactivated": SUPPRESSED,
    "Unconfirmed": SUPPRESSED,
    # Postmark could not send: an API error, a template that did not render.
    "SMTPApiError": NOT_EMAIL_EVENT,
    "TemplateRenderingFailed": NOT_EMAIL_EVENT,
    # Replies and notices that come back as bounces but are not failed deliveries;
    # SpamNotification says the message was delivered and then filtered, not reported.
    "AutoResponder": NOT_A_BOUNCE,
    "AddressChange": NOT_A_BOUNCE,
    "ChallengeVerification": NOT_A_BOUNCE,
    "OpenRelayTest": NOT_A_BOUNCE,
    "SpamNotification": NOT_A_BOUNCE,
    # A subscribe request mailed to the sender, as SparkPost's bounce class 80.
    "Subscribe": NOT_A_BOUNCE,
    "InboundError": NOT_EMAIL_EVENT,
}


class PostmarkFormat(Format):
    name = PROVIDER
    title = "Postmark"
    detection = (
        "JSON: webhook records (RecordType + MessageID/Recipient/Email), or API pages "
        "(TotalCount + Bounces/Opens/Clicks)"
    )

    def matches(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> bool:
        if columns is not None:
            return False
        if "TotalCount" in sample:
            return any(isinstance(sample.get(key), list) for key in _PAGES)
        return text(sample.get("RecordType")) in _RECORDS and any(
            key in sample for key in ("MessageID", "Recipient", "Email")
        )

    def explode(self, data: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        if "RecordType" in data or "TotalCount" not in data:
            yield data
            return
        for key, record_type in _PAGES.items():
            items = data.get(key)
            for item in items if isinstance(items, list) else []:
                yield {"RecordType": record_type, **item} if isinstance(item, Mapping) else {}

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        record = text(data.get("RecordType"))
        if record is None:
            raise reject(UNKNOWN_SHAPE, "no Postmark RecordType")
        if record == "Inbound":
            return skip(NOT_EMAIL_EVENT, record)
        if record not in _RECORDS:
            raise reject(UNKNOWN_EVENT, record)
        if record in _SIMPLE:
            return [_event(data, record, _SIMPLE[record], _extra(data, record))]
        if record == "Bounce":
            return _bounce(data)
        return _subscription_change(data)

    def mapping_table(self) -> list[MappingRow]:
        rows = [MappingRow(record, name.value) for record, name in _SIMPLE.items()]
        rows += [
            MappingRow(f"Bounce (Type {kind})", bounced_outcome(bounce))
            for kind, bounce in _BOUNCES.items()
        ]
        rows.append(MappingRow("Bounce (Type Unsubscribe)", EventName.UNSUBSCRIBED.value))
        rows.append(MappingRow("Bounce (Type SpamComplaint)", EventName.SPAM.value))
        rows += [
            MappingRow(f"Bounce (Type {kind})", skipped_outcome(why))
            for kind, why in _BOUNCE_SKIPS.items()
        ]
        rows.append(
            MappingRow(
                "SubscriptionChange (suppressed, ManualSuppression by the recipient)",
                EventName.UNSUBSCRIBED.value,
            )
        )
        rows += [
            MappingRow(f"SubscriptionChange (suppressed after {why})", skipped_outcome(category))
            for why, category in _SECOND_SIGNALS.items()
        ]
        rows += [
            MappingRow(
                "SubscriptionChange (reactivation, or suppression by the sender)",
                skipped_outcome(PERSON_LEVEL),
            ),
            MappingRow("Inbound", skipped_outcome(NOT_EMAIL_EVENT)),
        ]
        return rows


def _bounce(data: Mapping[str, Any]) -> Conversion:
    kind = text(data.get("Type"))
    if kind in _BOUNCE_SKIPS:
        return skip(_BOUNCE_SKIPS[kind], kind)
    if kind == "Unsubscribe":
        # An unsubscribe request that arrived as a bounce (a reply, a list-unsubscribe mail).
        return [_event(data, "Bounce", EventName.UNSUBSCRIBED, _stream_list(data))]
    if kind == "SpamComplaint":
        return [_event(data, "Bounce", EventName.SPAM, {})]
    if kind not in _BOUNCES:
        raise reject(UNKNOWN_EVENT, f"Bounce {kind}")
    extra = {
        "bounce_type": _BOUNCES[kind],
        "bounce_subtype": kind,
        "reason": text(data.get("Details")) or text(data.get("Description")),
    }
    return [_event(data, "Bounce", EventName.BOUNCED, extra)]


def _subscription_change(data: Mapping[str, Any]) -> Conversion:
    why = text(data.get("SuppressionReason"))
    if data.get("SuppressSending") is not True:
        return skip(PERSON_LEVEL, "reactivation")
    if why in _SECOND_SIGNALS:
        return skip(_SECOND_SIGNALS[why], f"suppression after {why}")
    if why != "ManualSuppression":
        raise reject(UNKNOWN_EVENT, f"SubscriptionChange {why}")
    origin = text(data.get("Origin")) or "Recipient"
    if origin != "Recipient":
        # The sender or Postmark support suppressed the address, not the recipient.
        return skip(PERSON_LEVEL, f"suppression by {origin}")
    return [_event(data, "SubscriptionChange", EventName.UNSUBSCRIBED, _stream_list(data))]


def _stream_list(data: Mapping[str, Any]) -> dict[str, Any]:
    """Postmark keeps one suppression list per message stream: the stream is the list."""
    return {"list_id": text(data.get("MessageStream"))}


def _extra(data: Mapping[str, Any], record: str) -> dict[str, Any]:
    if record == "Open":
        first = data.get("FirstOpen")
        return {"first_open": first if isinstance(first, bool) else None}
    if record == "Click":
        return {"click_location": text(data.get("ClickLocation"))}
    return {}


def _event(
    data: Mapping[str, Any], record: str, name: EventName, extra: dict[str, Any]
) -> EmailEvent:
    recipient_key, time_key = _RECORDS[record]
    metadata = data.get("Metadata")
    who = identify(data.get(recipient_key) or data.get("Email") or data.get("Recipient"), metadata)
    tags = tag_list(data.get("Tag"))
    standard = {
        "email_subject": text(data.get("Subject")),
        "campaign_name": campaign_from_tags(tags),
        "tags": tags or None,
        "message_stream": text(data.get("MessageStream")),
        **extra,
    }
    return EmailEvent(
        name=name,
        timestamp=parse_timestamp(data.get(time_key)),
        provider=PROVIDER,
        recipient=who.recipient,
        user_id=who.user_id,
        email_id=text(data.get("MessageID")),
        event_id=_event_id(data, record),
        link_url=text(data.get("OriginalLink")) if name is EventName.CLICKED else None,
        properties=merge_properties(
            standard=standard, custom=custom_properties(metadata, skip_keys=[who.user_key])
        ),
    )


def _event_id(data: Mapping[str, Any], record: str) -> str | None:
    """Bounce and spam complaint records carry Postmark's bounce ID, unique per record;
    deliveries, opens, clicks and subscription changes have no id of their own."""
    if record in ("Bounce", "SpamComplaint"):
        bounce_id = text(data.get("ID"))
        return f"bounce-{bounce_id}" if bounce_id else None
    return None


FORMATS = [PostmarkFormat()]
