"""Mailgun: webhook bodies ({"signature", "event-data"}) and Events API pages ({"items"})."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..events import EmailEvent, EventName
from ..timestamps import parse_timestamp
from .base import (
    BLOCK,
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
    identify,
    merge_properties,
    object_list,
    page_items,
    strip_brackets,
    tag_list,
)

PROVIDER = "mailgun"

_EVENTS = {
    "delivered": EventName.DELIVERED,
    "opened": EventName.OPENED,
    "clicked": EventName.CLICKED,
    "unsubscribed": EventName.UNSUBSCRIBED,
    "complained": EventName.SPAM,
}

_SKIPPED = {
    "accepted": NOT_EMAIL_EVENT,
    "stored": NOT_EMAIL_EVENT,
    "list_member_uploaded": NOT_EMAIL_EVENT,
    "list_member_upload_error": NOT_EMAIL_EVENT,
    "list_uploaded": NOT_EMAIL_EVENT,
    # Mailgun refused the send request itself: nothing reached a mail server.
    "rejected": SUPPRESSED,
}

# "failed" with severity=permanent and one of these reasons: Mailgun did not send because
# the address is on its bounce, unsubscribe or complaint list (codes 605-607).
_SUPPRESSION_REASONS = frozenset({"suppress-bounce", "suppress-unsubscribe", "suppress-complaint"})

# Permanent failures that are not hard bounces: "old" is the retry limit giving up after
# temporary failures, "espblock" a rejection by the receiving provider.
_FAILURE_BOUNCE_TYPES = {"old": SOFT, "espblock": BLOCK}

# Mailgun's bot detection on opens and clicks: "apple" (Mail Privacy Protection),
# "gmail" (image proxy prefetch), "generic"; empty when a person was seen.
_BOT_FIELD = ("client-info", "bot")


class MailgunFormat(Format):
    name = PROVIDER
    title = "Mailgun"
    detection = (
        'JSON: webhook bodies {"signature", "event-data"}, Events API pages {"items", '
        '"paging"} or their items (event + id + timestamp + log-level/message)'
    )

    def matches(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> bool:
        if columns is not None:
            return False
        if isinstance(sample.get("event-data"), Mapping):
            return _is_event(sample["event-data"])
        items = sample.get("items")
        if isinstance(items, list) and isinstance(sample.get("paging"), Mapping):
            return all(isinstance(item, Mapping) and _is_event(item) for item in items[:5])
        return _is_event(sample)

    def explode(self, data: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        items = data.get("items")
        if "event-data" not in data and isinstance(items, list):
            yield from page_items(items)  # an Events API page
            return
        yield data

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        event = data.get("event-data", data)
        if not isinstance(event, Mapping) or not isinstance(event.get("event"), str):
            raise reject(UNKNOWN_SHAPE, "no Mailgun event-data")
        kind = event["event"].strip().lower()
        if kind in _SKIPPED:
            return skip(_SKIPPED[kind], kind)
        if kind == "failed":
            return _failed(event)
        name = _EVENTS.get(kind)
        if name is None:
            raise reject(UNKNOWN_EVENT, kind)
        return [_event(event, name, _engagement(event, name))]

    def mapping_table(self) -> list[MappingRow]:
        rows = [MappingRow(kind, name.value) for kind, name in _EVENTS.items()]
        rows += [
            MappingRow("failed (permanent, reason bounce/generic)", bounced_outcome(HARD)),
            MappingRow("failed (permanent, reason old)", bounced_outcome(SOFT)),
            MappingRow("failed (permanent, reason espblock)", bounced_outcome(BLOCK)),
            MappingRow("failed (permanent, reason suppress-*)", skipped_outcome(SUPPRESSED)),
            MappingRow("failed (temporary)", skipped_outcome(DEFERRAL)),
        ]
        rows += [MappingRow(kind, skipped_outcome(why)) for kind, why in _SKIPPED.items()]
        return rows


def _is_event(data: Mapping[str, Any]) -> bool:
    if not isinstance(data.get("event"), str) or "timestamp" not in data or "id" not in data:
        return False
    return "log-level" in data or isinstance(dig(data, "message", "headers"), Mapping)


def _failed(event: Mapping[str, Any]) -> Conversion:
    failure = (text(event.get("reason")) or "").lower()
    if (text(event.get("severity")) or "permanent").lower() == "temporary":
        return skip(DEFERRAL, "temporary failure")
    if failure in _SUPPRESSION_REASONS:
        return skip(SUPPRESSED, failure)
    status = event.get("delivery-status")
    status = status if isinstance(status, Mapping) else {}
    reported = (text(status.get("bounce-type")) or "").lower()
    bounce = {
        "bounce_type": _FAILURE_BOUNCE_TYPES.get(failure)
        or (reported if reported in (HARD, SOFT) else HARD),
        "bounce_subtype": failure or None,
        "reason": text(status.get("message")) or text(status.get("description")),
        "smtp_status": text(status.get("code")),
    }
    return [_event(event, EventName.BOUNCED, bounce)]


def _engagement(event: Mapping[str, Any], name: EventName) -> dict[str, Any]:
    if name in (EventName.OPENED, EventName.CLICKED):
        return {"bot": text(dig(event, *_BOT_FIELD))}
    if name is EventName.UNSUBSCRIBED:
        return {"list_id": text(dig(event, "mailing-list", "address"))}
    return {}


def _event(event: Mapping[str, Any], name: EventName, extra: dict[str, Any]) -> EmailEvent:
    variables = event.get("user-variables")
    who = identify(event.get("recipient"), variables)
    return EmailEvent(
        name=name,
        timestamp=parse_timestamp(event.get("timestamp")),
        provider=PROVIDER,
        recipient=who.recipient,
        user_id=who.user_id,
        email_id=strip_brackets(dig(event, "message", "headers", "message-id")),
        # Mailgun's event id is only "unique within a day": the composite key is safer.
        event_id=None,
        link_url=text(event.get("url")) if name is EventName.CLICKED else None,
        machine_open=name is EventName.OPENED and extra.get("bot") is not None,
        properties=merge_properties(
            standard={**_standard(event), **extra},
            custom=custom_properties(variables, skip_keys=[who.user_key]),
        ),
    )


def _standard(event: Mapping[str, Any]) -> dict[str, Any]:
    tags = tag_list(event.get("tags"))
    campaigns = object_list(event.get("campaigns"))
    campaign = campaigns[0] if len(campaigns) == 1 else {}
    return {
        "email_subject": text(dig(event, "message", "headers", "subject")),
        "campaign_id": text(campaign.get("id")),
        "campaign_name": text(campaign.get("name")) or campaign_from_tags(tags),
        "tags": tags or None,
    }


FORMATS = [MailgunFormat()]
