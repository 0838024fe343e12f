"""Amazon SES: event publishing records, classic notifications, and their SNS envelopes.

One record may yield several events: SES lists every recipient of a delivery, bounce or
complaint in the same record.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, NoReturn

from ..events import EmailEvent, EventName, RecordRejected
from ..timestamps import parse_timestamp
from .base import (
    DEFERRAL,
    HARD,
    NO_IDENTITY,
    NOT_A_COMPLAINT,
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
    clean_email,
    dig,
    loose_key,
    reject,
    require_identity,
    skip,
    skipped_outcome,
    text,
)
from .common import (
    custom_properties,
    embedded_json,
    find_user_id,
    merge_properties,
    object_list,
    page_items,
    scalar,
)

PROVIDER = "ses"

_SKIPPED = {
    "Send": NOT_EMAIL_EVENT,
    "Received": NOT_EMAIL_EVENT,
    "AmazonSnsSubscriptionSucceeded": NOT_EMAIL_EVENT,
    "DeliveryDelay": DEFERRAL,
    # SES found a virus and did not attempt delivery; or the template did not render.
    "Reject": NOT_EMAIL_EVENT,
    "RenderingFailure": NOT_EMAIL_EVENT,
}

# bounceType -> bounce_type. SES publishes a Transient bounce only once it has stopped
# retrying ("soft bounces are only included when SES fails to deliver the email after
# retrying for a period of time"), so it is final for the message.
_BOUNCE_TYPES = {"Permanent": HARD, "Transient": SOFT, "Undetermined": UNDETERMINED}
# Permanent bounces SES generated itself from a suppression list: never sent.
_SUPPRESSION_SUBTYPES = ("Suppressed", "OnAccountSuppressionList")

# SNS message types that only manage the subscription.
_SNS_CONTROL = ("SubscriptionConfirmation", "UnsubscribeConfirmation")


class SesFormat(Format):
    name = PROVIDER
    title = "Amazon SES"
    detection = (
        "JSON: event publishing records or notifications (eventType/notificationType + "
        "mail.messageId), SNS envelopes holding them, or Lambda SNS events"
    )

    def matches(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> bool:
        if columns is not None:
            return False
        records = sample.get("Records")
        if isinstance(records, list) and records:
            return all(_is_sns(dig(item, "Sns") or {}) for item in records[:5])
        return _is_sns(sample) or _is_ses(sample)

    def explode(self, data: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        records = data.get("Records")
        if "mail" not in data and isinstance(records, list):
            # A Lambda event from an SNS subscription: one envelope per record.
            yield from page_items(dig(item, "Sns") for item in records)
            return
        yield data

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        if "TopicArn" in data and "Type" in data:
            sns_type = text(data.get("Type"))
            if sns_type in _SNS_CONTROL:
                return skip(NOT_EMAIL_EVENT, sns_type)
            data = embedded_json(data.get("Message"), "SNS Message")
            if not isinstance(data, Mapping):
                raise reject(UNKNOWN_SHAPE, "SNS Message is not an object")
        kind = _event_type(data)
        if kind is None:
            raise reject(UNKNOWN_SHAPE, "no SES eventType or notificationType")
        if kind in _SKIPPED:
            return skip(_SKIPPED[kind], kind)
        convert = _CONVERTERS.get(kind)
        if convert is None:
            raise reject(UNKNOWN_EVENT, kind)
        mail = data.get("mail")
        if not isinstance(mail, Mapping):
            raise reject(UNKNOWN_SHAPE, "no SES mail object")
        return convert(data, mail)

    def mapping_table(self) -> list[MappingRow]:
        suppressed = skipped_outcome(SUPPRESSED)
        return [
            MappingRow("Delivery (per recipient)", EventName.DELIVERED.value),
            MappingRow("Open", EventName.OPENED.value),
            MappingRow("Click", EventName.CLICKED.value),
            *[
                MappingRow(f"Bounce {kind} (per recipient)", bounced_outcome(bounce))
                for kind, bounce in _BOUNCE_TYPES.items()
            ],
            *[MappingRow(f"Bounce Permanent/{sub}", suppressed) for sub in _SUPPRESSION_SUBTYPES],
            MappingRow("Complaint (per recipient)", EventName.SPAM.value),
            MappingRow("Complaint OnAccountSuppressionList", suppressed),
            MappingRow("Complaint feedback not-spam", skipped_outcome(NOT_A_COMPLAINT)),
            MappingRow("Subscription (opt-out)", EventName.UNSUBSCRIBED.value),
            MappingRow("Subscription (opt-in)", skipped_outcome(PERSON_LEVEL)),
            *[MappingRow(kind, skipped_outcome(why)) for kind, why in _SKIPPED.items()],
            *[MappingRow(f"SNS {kind}", skipped_outcome(NOT_EMAIL_EVENT)) for kind in _SNS_CONTROL],
        ]


def _is_ses(data: Mapping[str, Any]) -> bool:
    kind = data.get("eventType", data.get("notificationType"))
    return isinstance(kind, str) and isinstance(dig(data, "mail", "messageId"), str)


def _is_sns(data: Mapping[str, Any]) -> bool:
    if not isinstance(data.get("TopicArn"), str) or not isinstance(data.get("Message"), str):
        return False
    sns_type = text(data.get("Type"))
    if sns_type in _SNS_CONTROL:
        return True
    try:
        inner = embedded_json(data["Message"], "SNS Message")
    except RecordRejected:
        return False
    return sns_type == "Notification" and isinstance(inner, Mapping) and _is_ses(inner)


def _event_type(data: Mapping[str, Any]) -> str | None:
    # Event publishing writes "Rendering Failure" with a space; normalize it.
    kind = text(data.get("eventType")) or text(data.get("notificationType"))
    return kind.replace(" ", "") if kind else None


def _delivery(data: Mapping[str, Any], mail: Mapping[str, Any]) -> Conversion:
    delivery = _section(data, "delivery")
    moment = delivery.get("timestamp")
    events = [
        _event(mail, EventName.DELIVERED, moment, address, {})
        for address in _addresses(delivery.get("recipients"))
    ]
    return events or _no_recipients("delivery.recipients")


def _bounce(data: Mapping[str, Any], mail: Mapping[str, Any]) -> Conversion:
    bounce = _section(data, "bounce")
    kind = text(bounce.get("bounceType")) or "Undetermined"
    subtype = text(bounce.get("bounceSubType"))
    if kind == "Permanent" and subtype in _SUPPRESSION_SUBTYPES:
        return skip(SUPPRESSED, subtype)
    if kind not in _BOUNCE_TYPES:
        raise reject(UNKNOWN_EVENT, f"Bounce {kind}")
    events = []
    for item in object_list(bounce.get("bouncedRecipients")):
        extra = {
            "bounce_type": _BOUNCE_TYPES[kind],
            "bounce_subtype": subtype,
            "reason": text(item.get("diagnosticCode")),
            "smtp_status": text(item.get("status")),
        }
        address = item.get("emailAddress")
        events.append(_event(mail, EventName.BOUNCED, bounce.get("timestamp"), address, extra))
    return events or _no_recipients("bouncedRecipients")


def _complaint(data: Mapping[str, Any], mail: Mapping[str, Any]) -> Conversion:
    complaint = _section(data, "complaint")
    if text(complaint.get("complaintSubType")) == "OnAccountSuppressionList":
        return skip(SUPPRESSED, "OnAccountSuppressionList")
    feedback = text(complaint.get("complaintFeedbackType"))
    if feedback == "not-spam":
        # A feedback report saying the message is not spam.
        return skip(NOT_A_COMPLAINT, feedback)
    extra = {"feedback_type": feedback}
    events = [
        _event(mail, EventName.SPAM, complaint.get("timestamp"), item.get("emailAddress"), extra)
        for item in object_list(complaint.get("complainedRecipients"))
    ]
    return events or _no_recipients("complainedRecipients")


def _open(data: Mapping[str, Any], mail: Mapping[str, Any]) -> Conversion:
    opened = _section(data, "open")
    address, count = _sole_recipient(mail)
    return [_event(mail, EventName.OPENED, opened.get("timestamp"), address, {}, count)]


def _click(data: Mapping[str, Any], mail: Mapping[str, Any]) -> Conversion:
    click = _section(data, "click")
    link_tags = _flat(click.get("linkTags"))
    link_id = next((v for k, v in link_tags.items() if loose_key(k) == "linkid"), None)
    extra = {"link_id": text(link_id), "link_tags": link_tags or None}
    address, count = _sole_recipient(mail)
    event = _event(mail, EventName.CLICKED, click.get("timestamp"), address, extra, count)
    return [replace(event, link_url=text(click.get("link")))]


def _subscription(data: Mapping[str, Any], mail: Mapping[str, Any]) -> Conversion:
    change = _section(data, "subscription")
    everything = dig(change, "newTopicPreferences", "unsubscribeAll") is True
    topics = _opted_out_topics(change)
    if not everything and not topics:
        return skip(PERSON_LEVEL, "subscription opt-in")
    extra = {
        "list_name": text(change.get("contactList")),
        "topics": None if everything else topics,
        "unsubscribe_all": everything,
    }
    address, count = _sole_recipient(mail)
    return [_event(mail, EventName.UNSUBSCRIBED, change.get("timestamp"), address, extra, count)]


def _opted_out_topics(change: Mapping[str, Any]) -> list[str]:
    """Topics that are opted out now and were not before: this event's own opt-outs."""

    def opted_out(preferences: object) -> set[str]:
        statuses = dig(preferences, "topicSubscriptionStatus") if preferences else None
        return {
            name
            for item in object_list(statuses)
            if (name := text(item.get("topicName")))
            and (text(item.get("subscriptionStatus")) or "").lower() == "optout"
        }

    new = opted_out(change.get("newTopicPreferences"))
    old = opted_out(change.get("oldTopicPreferences"))
    return sorted(new - old)


_CONVERTERS = {
    "Delivery": _delivery,
    "Bounce": _bounce,
    "Complaint": _complaint,
    "Open": _open,
    "Click": _click,
    "Subscription": _subscription,
}


def _event(
    mail: Mapping[str, Any],
    name: EventName,
    moment: object,
    address: object,
    extra: dict[str, Any],
    destinations: int = 1,
) -> EmailEvent:
    tags = _custom_tags(mail)
    user_id, user_key = find_user_id(tags)
    recipient = clean_email(address)
    if recipient is None and user_id is None and destinations > 1:
        detail = f"{name.value} on a message to {destinations} recipients"
        raise reject("ambiguous recipient", detail)
    require_identity(recipient, user_id)
    standard = {
        "email_subject": text(dig(mail, "commonHeaders", "subject")),
        "configuration_set": scalar(dig(mail, "tags", "ses:configuration-set")),
        **extra,
    }
    return EmailEvent(
        name=name,
        timestamp=parse_timestamp(moment),
        provider=PROVIDER,
        recipient=recipient,
        user_id=user_id,
        email_id=text(mail.get("messageId")),
        # SES records carry no event id; the composite key tells them apart.
        event_id=None,
        properties=merge_properties(
            standard=standard, custom=custom_properties(tags, skip_keys=[user_key])
        ),
    )


def _sole_recipient(mail: Mapping[str, Any]) -> tuple[str | None, int]:
    """Opens, clicks and subscription changes name no recipient: SES only lists the
    message's destinations, which identify the person only when there is one."""
    destinations = _addresses(mail.get("destination"))
    return (destinations[0] if len(destinations) == 1 else None), len(destinations)


def _custom_tags(mail: Mapping[str, Any]) -> dict[str, Any]:
    """Message tags set by the sender; SES's own tags start with "ses:"."""
    tags = _flat(mail.get("tags"))
    return {key: value for key, value in tags.items() if not key.startswith("ses:")}


def _flat(tags: object) -> dict[str, Any]:
    """SES tags map a name to a list of values; a single value stands for itself."""
    if not isinstance(tags, Mapping):
        return {}
    return {str(key): _single(value) for key, value in tags.items()}


def _single(value: object) -> object:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    section = data.get(key)
    if not isinstance(section, Mapping):
        raise reject(UNKNOWN_SHAPE, f"no SES {key} object")
    return section


def _addresses(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _no_recipients(field: str) -> NoReturn:
    raise reject(NO_IDENTITY, f"empty {field}")


FORMATS = [SesFormat()]
