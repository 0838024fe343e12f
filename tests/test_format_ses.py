"""Amazon SES format: event publishing, notifications, SNS envelopes, recipients, sample."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from emailsrc.events import EmailEvent, EventName, RecordRejected, Skip
from emailsrc.formats import get_format
from format_samples import SAMPLES, convert_file, events_of

FORMAT = get_format("ses")
SAMPLE = SAMPLES / "ses_events_2025-06.jsonl"
MESSAGE_ID = "0102019650a1b2c3-4d5e6f70-8192-4a3b-9c8d-7e6f5a4b3c2d-000000"
TOPIC = "arn:aws:sns:eu-west-1:111122223333:ses-events"


def mail(destination: list[str], tags: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {
        "timestamp": "2025-06-02T08:00:00.101Z",
        "source": "news@example.com",
        "messageId": MESSAGE_ID,
        "destination": destination,
        "commonHeaders": {"subject": "June digest"},
        "tags": {"ses:configuration-set": ["marketing"], **(tags or {})},
    }


def record(event_type: str, section: str | None, body: dict[str, Any], **mail_args: Any) -> dict:
    data: dict[str, Any] = {"eventType": event_type, "mail": mail(**mail_args)}
    if section:
        data[section] = body
    return data


def envelope(message: dict[str, Any] | str, kind: str = "Notification") -> dict[str, Any]:
    return {
        "Type": kind,
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "TopicArn": TOPIC,
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2025-06-02T08:00:02.000Z",
        "SignatureVersion": "1",
    }


ONE = ["xena.park@example.com"]
TWO = ["yusuf.demir@example.com", "Zoe Martin <zoe.martin@example.com>"]


def delivery(recipients: list[str]) -> dict[str, Any]:
    body = {"timestamp": "2025-06-02T08:00:01.802Z", "recipients": recipients}
    return record("Delivery", "delivery", body, destination=recipients)


convert = partial(events_of, FORMAT)


def test_delivery_is_fully_mapped() -> None:
    data = delivery(ONE)
    data["mail"]["tags"].update({"user_id": ["cust-501"], "campaign_name": ["june-digest"]})
    assert convert(data) == [
        EmailEvent(
            name=EventName.DELIVERED,
            timestamp=datetime(2025, 6, 2, 8, 0, 1, 802000, tzinfo=UTC),
            provider="ses",
            recipient="xena.park@example.com",
            user_id="cust-501",
            email_id=MESSAGE_ID,
            event_id=None,
            properties={
                "campaign_name": "june-digest",
                "email_subject": "June digest",
                "configuration_set": "marketing",
            },
        )
    ]


def test_one_delivery_record_gives_one_event_per_recipient() -> None:
    events = convert(delivery(TWO))
    assert [e.recipient for e in events] == ["yusuf.demir@example.com", "zoe.martin@example.com"]
    assert {e.email_id for e in events} == {MESSAGE_ID}
    assert len({e.key() for e in events}) == 2


def test_multi_recipient_bounce_keeps_each_recipients_diagnostic() -> None:
    body = {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "timestamp": "2025-06-02T08:00:03.118Z",
        "bouncedRecipients": [
            {"emailAddress": TWO[0], "status": "5.1.1", "diagnosticCode": "smtp; 550 unknown"},
            {"emailAddress": TWO[1], "status": "5.2.1", "diagnosticCode": "smtp; 550 disabled"},
        ],
    }
    events = convert(record("Bounce", "bounce", body, destination=TWO))
    assert [(e.recipient, e.properties["reason"], e.properties["smtp_status"]) for e in events] == [
        ("yusuf.demir@example.com", "smtp; 550 unknown", "5.1.1"),
        ("zoe.martin@example.com", "smtp; 550 disabled", "5.2.1"),
    ]
    assert {e.properties["bounce_type"] for e in events} == {"hard"}
    assert {e.properties["bounce_subtype"] for e in events} == {"General"}


@pytest.mark.parametrize(
    ("bounce_type", "subtype", "expected"),
    [
        ("Permanent", "NoEmail", "hard"),
        ("Transient", "MailboxFull", "soft"),
        ("Transient", "General", "soft"),
        ("Undetermined", "Undetermined", "undetermined"),
    ],
)
def test_bounce_types(bounce_type: str, subtype: str, expected: str) -> None:
    body = {
        "bounceType": bounce_type,
        "bounceSubType": subtype,
        "timestamp": "2025-06-04T00:30:05.412Z",
        "bouncedRecipients": [{"emailAddress": ONE[0]}],
    }
    (event,) = convert(record("Bounce", "bounce", body, destination=ONE))
    assert (event.name, event.properties["bounce_type"]) == (EventName.BOUNCED, expected)


@pytest.mark.parametrize("subtype", ["Suppressed", "OnAccountSuppressionList"])
def test_suppression_list_bounces_are_skipped(subtype: str) -> None:
    body = {"bounceType": "Permanent", "bounceSubType": subtype, "bouncedRecipients": []}
    assert FORMAT.convert(record("Bounce", "bounce", body, destination=ONE)) == Skip(
        f"suppressed before sending: {subtype}"
    )


def test_unknown_bounce_type_is_rejected() -> None:
    body = {"bounceType": "Sideways", "bouncedRecipients": [{"emailAddress": ONE[0]}]}
    with pytest.raises(RecordRejected, match=r"^unknown event type: Bounce Sideways$"):
        FORMAT.convert(record("Bounce", "bounce", body, destination=ONE))


def test_bounce_without_recipients_is_rejected() -> None:
    body = {"bounceType": "Permanent", "timestamp": "2025-06-02T08:00:03Z"}
    with pytest.raises(RecordRejected, match="no recipient and no user id"):
        FORMAT.convert(record("Bounce", "bounce", body, destination=ONE))


def test_complaints() -> None:
    body = {
        "timestamp": "2025-06-05T07:20:11Z",
        "complaintFeedbackType": "abuse",
        "complainedRecipients": [{"emailAddress": a} for a in TWO],
    }
    events = convert(record("Complaint", "complaint", body, destination=TWO))
    assert [e.name for e in events] == [EventName.SPAM, EventName.SPAM]
    assert events[0].properties["feedback_type"] == "abuse"
    not_spam = {**body, "complaintFeedbackType": "not-spam"}
    assert FORMAT.convert(record("Complaint", "complaint", not_spam, destination=TWO)) == Skip(
        "not a complaint: not-spam"
    )
    suppressed = {**body, "complaintSubType": "OnAccountSuppressionList"}
    assert FORMAT.convert(record("Complaint", "complaint", suppressed, destination=TWO)) == Skip(
        "suppressed before sending: OnAccountSuppressionList"
    )


def test_open_on_a_single_recipient_message() -> None:
    body = {"timestamp": "2025-06-02T09:12:45.337Z", "userAgent": "Mozilla/5.0"}
    (event,) = convert(record("Open", "open", body, destination=ONE))
    assert (event.name, event.recipient, event.machine_open) == (
        EventName.OPENED,
        ONE[0],
        False,
    )


def test_open_on_a_multi_recipient_message_needs_a_user_id() -> None:
    body = {"timestamp": "2025-06-02T09:12:45.337Z"}
    with pytest.raises(RecordRejected, match=r"^ambiguous recipient: Email Opened on a message"):
        FORMAT.convert(record("Open", "open", body, destination=TWO))
    tagged = record("Open", "open", body, destination=TWO, tags={"userId": ["cust-9"]})
    (event,) = convert(tagged)
    assert (event.recipient, event.user_id) == (None, "cust-9")


def test_click_with_link_tags() -> None:
    body = {
        "timestamp": "2025-06-02T09:13:02.104Z",
        "link": "https://www.example.com/changelog",
        "linkTags": {"link_id": ["changelog"], "section": ["hero"]},
    }
    (event,) = convert(record("Click", "click", body, destination=ONE))
    assert event.link_url == "https://www.example.com/changelog"
    assert event.properties["link_id"] == "changelog"
    assert event.properties["link_tags"] == {"link_id": "changelog", "section": "hero"}


def subscription(new: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {
        "contactList": "Newsletter",
        "timestamp": "2025-06-05T18:42:09Z",
        "source": "UnsubscribeHeader",
        "newTopicPreferences": new,
        "oldTopicPreferences": old or {"unsubscribeAll": False, "topicSubscriptionStatus": []},
    }
    return record("Subscription", "subscription", body, destination=ONE)


def test_unsubscribe_from_everything() -> None:
    (event,) = convert(subscription({"unsubscribeAll": True}))
    assert event.name is EventName.UNSUBSCRIBED
    assert event.properties["list_name"] == "Newsletter"
    assert event.properties["unsubscribe_all"] is True
    assert "topics" not in event.properties


def test_topic_opt_out_is_an_unsubscribe_from_that_topic() -> None:
    status = [
        {"topicName": "digest", "subscriptionStatus": "OptOut"},
        {"topicName": "promos", "subscriptionStatus": "OptOut"},
    ]
    old = {"topicSubscriptionStatus": [{"topicName": "promos", "subscriptionStatus": "OptOut"}]}
    (event,) = convert(subscription({"topicSubscriptionStatus": status}, old))
    assert event.properties["topics"] == ["digest"]


def test_opt_in_is_skipped() -> None:
    status = [{"topicName": "digest", "subscriptionStatus": "OptIn"}]
    assert FORMAT.convert(subscription({"topicSubscriptionStatus": status})) == Skip(
        "person-level subscription change: subscription opt-in"
    )


@pytest.mark.parametrize(
    ("event_type", "reason"),
    [
        ("Send", "not an email event: Send"),
        ("DeliveryDelay", "deferral: DeliveryDelay"),
        ("Reject", "not an email event: Reject"),
        ("Rendering Failure", "not an email event: RenderingFailure"),
        ("RenderingFailure", "not an email event: RenderingFailure"),
    ],
)
def test_skips(event_type: str, reason: str) -> None:
    assert FORMAT.convert(record(event_type, None, {}, destination=ONE)) == Skip(reason)


def test_unknown_event_type_is_rejected() -> None:
    with pytest.raises(RecordRejected, match=r"^unknown event type: Teleport$"):
        FORMAT.convert(record("Teleport", None, {}, destination=ONE))


def test_sns_envelope_with_an_event_publishing_record() -> None:
    assert convert(envelope(delivery(ONE))) == convert(delivery(ONE))


def test_sns_envelope_with_a_classic_notification() -> None:
    notification = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "timestamp": "2025-06-07T15:45:20.661Z",
            "bouncedRecipients": [{"emailAddress": "gina.cole@example.com"}],
        },
        "mail": {"messageId": "m-1", "destination": ["gina.cole@example.com"]},
    }
    (event,) = convert(envelope(notification))
    assert (event.name, event.recipient, event.email_id) == (
        EventName.BOUNCED,
        "gina.cole@example.com",
        "m-1",
    )


def test_sns_subscription_messages_are_skipped() -> None:
    confirm = envelope("You have chosen to subscribe to the topic.", "SubscriptionConfirmation")
    assert FORMAT.convert(confirm) == Skip("not an email event: SubscriptionConfirmation")


def test_sns_envelope_with_broken_message_is_rejected() -> None:
    with pytest.raises(RecordRejected, match=r"^unreadable embedded JSON: SNS Message$"):
        FORMAT.convert(envelope('{"eventType": "Open", "mail": {'))
    with pytest.raises(RecordRejected, match=r"^unknown record shape"):
        FORMAT.convert(envelope("[1, 2]"))


def test_lambda_sns_event_explodes_into_envelopes() -> None:
    lambda_event = {
        "Records": [
            {"EventSource": "aws:sns", "Sns": envelope(delivery(ONE))},
            {"EventSource": "aws:sns", "Sns": envelope(delivery(TWO))},
            {"EventSource": "aws:sqs"},
        ]
    }
    items = list(FORMAT.explode(lambda_event))
    assert len(items) == 3
    assert [len(convert(i)) for i in items[:2]] == [1, 2]
    with pytest.raises(RecordRejected):
        FORMAT.convert(items[2])
    assert list(FORMAT.explode(delivery(ONE))) == [delivery(ONE)]


def test_ses_tags_never_become_properties_and_user_tags_do() -> None:
    data = delivery(ONE)
    data["mail"]["tags"].update({"ses:source-ip": ["192.0.2.1"], "plan": ["pro"], "id": ["7"]})
    (event,) = convert(data)
    assert event.properties == {
        "plan": "pro",
        "custom_id": "7",
        "email_subject": "June digest",
        "configuration_set": "marketing",
    }


def test_matches() -> None:
    assert FORMAT.matches(delivery(ONE), None)
    assert FORMAT.matches(envelope(delivery(ONE)), None)
    assert FORMAT.matches(envelope("hello", "SubscriptionConfirmation"), None)
    assert FORMAT.matches({"Records": [{"Sns": envelope(delivery(ONE))}]}, None)
    assert not FORMAT.matches(delivery(ONE), ["eventType", "mail"])
    assert not FORMAT.matches(envelope('{"unrelated": true}'), None)
    assert not FORMAT.matches({"eventType": "Delivery", "mail": {}}, None)


def test_mapping_table_names_every_event_type() -> None:
    values = " ".join(row.value for row in FORMAT.mapping_table())
    for kind in (
        "Delivery",
        "Open",
        "Click",
        "Bounce",
        "Complaint",
        "Subscription",
        "Send",
        "Reject",
        "RenderingFailure",
        "DeliveryDelay",
    ):
        assert kind in values


# --- the sample export -------------------------------------------------------------------


def test_sample_export_summary() -> None:
    run = convert_file(FORMAT, SAMPLE)
    events = run.events
    assert Counter(event.name.value for event in events) == {
        "Email Delivered": 4,
        "Email Opened": 1,
        "Email Link Clicked": 1,
        "Email Bounced": 4,
        "Email Marked as Spam": 1,
        "Email Unsubscribed": 1,
    }
    # SNS delivered one notification twice: the duplicate delivery has the same key.
    assert len({event.key() for event in events}) == len(events) - 1
    assert run.skips == {
        "not an email event: SubscriptionConfirmation": 1,
        "not an email event: Send": 1,
        "deferral: DeliveryDelay": 1,
        "suppressed before sending: OnAccountSuppressionList": 1,
        "not an email event: Reject": 1,
        "not an email event: RenderingFailure": 1,
    }
    assert run.rejects == {
        "ambiguous recipient: Email Opened on a message to 2 recipients": 1,
        "unreadable line: malformed JSON": 1,
    }


def test_sample_export_events_in_full() -> None:
    events = convert_file(FORMAT, SAMPLE).events
    bounced = [e for e in events if e.properties.get("bounce_subtype") == "General"]
    assert bounced[1] == EmailEvent(
        name=EventName.BOUNCED,
        timestamp=datetime(2025, 6, 2, 8, 0, 3, 118000, tzinfo=UTC),
        provider="ses",
        recipient="bea.fischer@example.com",
        email_id="0102019650a1b2c5-6f708192-a3b4-4c5d-9eaf-9a8b7c6d5e4f-000000",
        properties={
            "campaign_name": "june-digest",
            "email_subject": "June digest: what's new",
            "configuration_set": "marketing",
            "bounce_type": "hard",
            "bounce_subtype": "General",
            "reason": "smtp; 550 5.1.1 mailbox unavailable",
            "smtp_status": "5.1.1",
        },
    )
    unsubscribed = next(e for e in events if e.name is EventName.UNSUBSCRIBED)
    assert unsubscribed == EmailEvent(
        name=EventName.UNSUBSCRIBED,
        timestamp=datetime(2025, 6, 5, 18, 42, 9, tzinfo=UTC),
        provider="ses",
        recipient="dan.reyes@example.com",
        user_id="cust-507",
        email_id="0102019650a1b2c7-8192a3b4-c5d6-4e7f-9a0b-bcad9e8f7a6b-000000",
        properties={
            "campaign_name": "june-digest",
            "email_subject": "June digest: what's new",
            "configuration_set": "marketing",
            "list_name": "Newsletter",
            "topics": ["digest"],
            "unsubscribe_all": False,
        },
    )
