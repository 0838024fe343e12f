"""Postmark format: record types, bounce types, subscription changes, API pages, sample."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from emailsrc.events import EmailEvent, EventName, RecordRejected, Skip
from emailsrc.formats import get_format
from format_samples import SAMPLES, convert_file, one_event

FORMAT = get_format("postmark")
SAMPLE = SAMPLES / "postmark_webhooks_2025-05.jsonl"
MESSAGE_ID = "4f6c2a1e-8b3d-4e7a-9c5f-1d2e3f4a5b6c"
RECIPIENT = "priya.raman@example.com"


def delivery(**fields: Any) -> dict[str, Any]:
    data = {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": MESSAGE_ID,
        "Recipient": RECIPIENT,
        "Tag": "order-shipped",
        "DeliveredAt": "2025-05-06T11:34:01.5432107-04:00",
        "Details": "smtp;250 2.0.0 OK",
        "Metadata": {"user_id": "c_3001", "order_id": "SO-77810"},
    }
    data.update(fields)
    return data


def tracked(record_type: str, **fields: Any) -> dict[str, Any]:
    data = {
        "RecordType": record_type,
        "MessageStream": "outbound",
        "MessageID": MESSAGE_ID,
        "Recipient": RECIPIENT,
        "ReceivedAt": "2025-05-06T17:50:13.1230000Z",
        "Tag": "order-shipped",
        "Metadata": {},
    }
    data.update(fields)
    return data


def bounce(kind: str, **fields: Any) -> dict[str, Any]:
    data = {
        "RecordType": "Bounce",
        "ID": 4295067821,
        "Type": kind,
        "TypeCode": 1,
        "Tag": "order-shipped",
        "MessageID": MESSAGE_ID,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message.",
        "Details": "smtp;550 5.1.1 User unknown",
        "Email": RECIPIENT,
        "BouncedAt": "2025-05-06T15:34:02.7316581Z",
        "Subject": "Your order has shipped",
        "Metadata": {},
    }
    data.update(fields)
    return data


def change(reason: str | None, suppress: bool = True, origin: str = "Recipient") -> dict[str, Any]:
    return {
        "RecordType": "SubscriptionChange",
        "MessageID": MESSAGE_ID,
        "MessageStream": "broadcast",
        "ChangedAt": "2025-05-09T19:20:41Z",
        "Recipient": RECIPIENT,
        "Origin": origin,
        "SuppressSending": suppress,
        "SuppressionReason": reason,
        "Tag": None,
        "Metadata": {"userId": "c_3001"},
    }


one = partial(one_event, FORMAT)


def test_delivery_is_fully_mapped() -> None:
    assert one(delivery()) == EmailEvent(
        name=EventName.DELIVERED,
        timestamp=datetime(2025, 5, 6, 15, 34, 1, 543210, tzinfo=UTC),
        provider="postmark",
        recipient=RECIPIENT,
        user_id="c_3001",
        email_id=MESSAGE_ID,
        event_id=None,
        properties={
            "order_id": "SO-77810",
            "campaign_name": "order-shipped",
            "tags": ["order-shipped"],
            "message_stream": "outbound",
        },
    )


@pytest.mark.parametrize("first", [True, False])
def test_every_open_is_an_open_and_first_open_is_kept(first: bool) -> None:
    event = one(tracked("Open", FirstOpen=first, Platform="Desktop"))
    assert (event.name, event.machine_open) == (EventName.OPENED, False)
    assert event.properties["first_open"] is first


def test_click_carries_the_original_link() -> None:
    event = one(tracked("Click", OriginalLink="https://shop.example.com/t", ClickLocation="HTML"))
    assert (event.name, event.link_url) == (EventName.CLICKED, "https://shop.example.com/t")
    assert event.properties["click_location"] == "HTML"


@pytest.mark.parametrize(
    ("kind", "bounce_type"),
    [
        ("HardBounce", "hard"),
        ("SoftBounce", "soft"),
        ("DnsError", "soft"),
        ("Blocked", "block"),
        ("DMARCPolicy", "block"),
        ("VirusNotification", "block"),
        ("Unknown", "undetermined"),
    ],
)
def test_bounce_types(kind: str, bounce_type: str) -> None:
    event = one(bounce(kind))
    assert event.name is EventName.BOUNCED
    assert event.event_id == "bounce-4295067821"
    assert event.properties == {
        "email_subject": "Your order has shipped",
        "campaign_name": "order-shipped",
        "tags": ["order-shipped"],
        "message_stream": "outbound",
        "bounce_type": bounce_type,
        "bounce_subtype": kind,
        "reason": "smtp;550 5.1.1 User unknown",
    }


def test_bounce_reason_falls_back_to_the_description() -> None:
    event = one(bounce("HardBounce", Details=""))
    assert event.properties["reason"] == "The server was unable to deliver your message."


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("Transient", "deferral: Transient"),
        ("BadEmailAddress", "suppressed before sending: BadEmailAddress"),
        ("ManuallyDeactivated", "suppressed before sending: ManuallyDeactivated"),
        ("Unconfirmed", "suppressed before sending: Unconfirmed"),
        ("SMTPApiError", "not an email event: SMTPApiError"),
        ("TemplateRenderingFailed", "not an email event: TemplateRenderingFailed"),
        ("SpamNotification", "not a bounce: SpamNotification"),
        ("AutoResponder", "not a bounce: AutoResponder"),
        ("AddressChange", "not a bounce: AddressChange"),
        ("ChallengeVerification", "not a bounce: ChallengeVerification"),
        ("OpenRelayTest", "not a bounce: OpenRelayTest"),
        ("Subscribe", "not a bounce: Subscribe"),
        ("InboundError", "not an email event: InboundError"),
    ],
)
def test_bounce_types_that_are_skipped(kind: str, reason: str) -> None:
    assert FORMAT.convert(bounce(kind)) == Skip(reason)


def test_unsubscribe_bounce_type_is_an_unsubscribe() -> None:
    event = one(bounce("Unsubscribe", TypeCode=16))
    assert event.name is EventName.UNSUBSCRIBED
    assert event.properties["list_id"] == "outbound"
    assert "bounce_type" not in event.properties


def test_spam_complaint_record() -> None:
    data = bounce("SpamComplaint", RecordType="SpamComplaint", ID=4295068502)
    event = one(data)
    assert (event.name, event.event_id) == (EventName.SPAM, "bounce-4295068502")


def test_unknown_bounce_type_is_rejected() -> None:
    with pytest.raises(RecordRejected, match=r"^unknown event type: Bounce Bouncy$"):
        FORMAT.convert(bounce("Bouncy"))


def test_manual_suppression_by_the_recipient_is_an_unsubscribe() -> None:
    event = one(change("ManualSuppression"))
    assert event == EmailEvent(
        name=EventName.UNSUBSCRIBED,
        timestamp=datetime(2025, 5, 9, 19, 20, 41, tzinfo=UTC),
        provider="postmark",
        recipient=RECIPIENT,
        user_id="c_3001",
        email_id=MESSAGE_ID,
        properties={"message_stream": "broadcast", "list_id": "broadcast"},
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (change("HardBounce"), "second signal for the same bounce: suppression after HardBounce"),
        (
            change("SpamComplaint"),
            "second signal for the same complaint: suppression after SpamComplaint",
        ),
        (change(None, suppress=False), "person-level subscription change: reactivation"),
        (
            change("ManualSuppression", origin="Customer"),
            "person-level subscription change: suppression by Customer",
        ),
        (
            change("ManualSuppression", origin="Admin"),
            "person-level subscription change: suppression by Admin",
        ),
    ],
)
def test_other_subscription_changes_are_skipped(data: dict[str, Any], reason: str) -> None:
    assert FORMAT.convert(data) == Skip(reason)


def test_inbound_and_unknown_record_types() -> None:
    assert FORMAT.convert({"RecordType": "Inbound", "MessageID": "x"}) == Skip(
        "not an email event: Inbound"
    )
    with pytest.raises(RecordRejected, match=r"^unknown event type: Teleport$"):
        FORMAT.convert({"RecordType": "Teleport", "MessageID": "x"})
    with pytest.raises(RecordRejected, match=r"^unknown record shape"):
        FORMAT.convert({"MessageID": "x"})


@pytest.mark.parametrize("key", ["user_id", "userId", "UserID", "customer_id", "person-id"])
def test_metadata_user_id_keys(key: str) -> None:
    event = one(delivery(Metadata={key: 42, "plan": "pro"}))
    assert (event.user_id, event.properties["plan"]) == ("42", "pro")
    assert set(event.properties) == {"plan", "campaign_name", "tags", "message_stream"}


def test_no_recipient_and_no_user_id_is_rejected() -> None:
    with pytest.raises(RecordRejected, match="no recipient and no user id"):
        FORMAT.convert(delivery(Recipient="", Metadata={}))


def test_bad_timestamp_is_rejected() -> None:
    with pytest.raises(RecordRejected, match="timestamp"):
        FORMAT.convert(delivery(DeliveredAt="yesterday-ish"))


def test_api_pages_explode_and_name_their_record_type() -> None:
    page = {
        "TotalCount": 3,
        "Bounces": [{k: v for k, v in bounce("HardBounce").items() if k != "RecordType"}],
        "Opens": [{k: v for k, v in tracked("Open").items() if k != "RecordType"}, 7],
    }
    items = list(FORMAT.explode(page))
    assert [i.get("RecordType") for i in items] == ["Bounce", "Open", None]
    assert one(items[0]).name is EventName.BOUNCED
    assert one(items[1]).name is EventName.OPENED
    assert list(FORMAT.explode(delivery())) == [delivery()]


def test_matches() -> None:
    assert FORMAT.matches(delivery(), None)
    assert FORMAT.matches({"TotalCount": 0, "Bounces": []}, None)
    assert not FORMAT.matches(delivery(), ["RecordType", "MessageID"])
    assert not FORMAT.matches({"RecordType": "Delivery"}, None)
    assert not FORMAT.matches({"TotalCount": 4, "Messages": []}, None)


def test_mapping_table_names_every_record_and_bounce_type() -> None:
    values = " ".join(row.value for row in FORMAT.mapping_table())
    for kind in ("Delivery", "Open", "Click", "SpamComplaint", "SubscriptionChange", "Inbound"):
        assert kind in values
    for kind in ("HardBounce", "SoftBounce", "Transient", "Unsubscribe", "ManuallyDeactivated"):
        assert f"Type {kind}" in values


# --- the sample export -------------------------------------------------------------------


def test_sample_export_summary() -> None:
    run = convert_file(FORMAT, SAMPLE)
    events = run.events
    assert Counter(event.name.value for event in events) == {
        "Email Delivered": 2,
        "Email Opened": 2,
        "Email Link Clicked": 1,
        "Email Bounced": 4,
        "Email Unsubscribed": 2,
        "Email Marked as Spam": 1,
    }
    # The Bounces API page repeats the webhook's hard bounce: same bounce ID, one key.
    assert len({event.key() for event in events}) == len(events) - 1
    assert run.skips == {
        "deferral: Transient": 1,
        "not a bounce: SpamNotification": 1,
        "suppressed before sending: ManuallyDeactivated": 1,
        "second signal for the same complaint: suppression after SpamComplaint": 1,
        "person-level subscription change: reactivation": 1,
        "person-level subscription change: suppression by Customer": 1,
    }
    assert run.rejects == {"unreadable line: malformed JSON": 1}


def test_sample_export_events_in_full() -> None:
    events = convert_file(FORMAT, SAMPLE).events
    soft = next(e for e in events if e.properties.get("bounce_type") == "soft")
    assert soft == EmailEvent(
        name=EventName.BOUNCED,
        timestamp=datetime(2025, 5, 7, 2, 10, 44, 16000, tzinfo=UTC),
        provider="postmark",
        recipient="sam.walker@example.com",
        user_id="c_3004",
        email_id="7c9f5d4b-1e6a-4b0d-8f8c-4a5b6c7d8e9f",
        event_id="bounce-4295067904",
        properties={
            "order_id": "SO-77813",
            "email_subject": "Your order has shipped",
            "campaign_name": "order-shipped",
            "tags": ["order-shipped"],
            "message_stream": "outbound",
            "bounce_type": "soft",
            "bounce_subtype": "SoftBounce",
            "reason": "smtp;452 4.2.2 The email account that you tried to reach is over quota.",
        },
    )
    click = next(e for e in events if e.name is EventName.CLICKED)
    assert click == EmailEvent(
        name=EventName.CLICKED,
        timestamp=datetime(2025, 5, 7, 8, 3, 10, 447000, tzinfo=UTC),
        provider="postmark",
        recipient=RECIPIENT,
        user_id="c_3001",
        email_id=MESSAGE_ID,
        link_url="https://shop.example.com/orders/SO-77810/track",
        properties={
            "order_id": "SO-77810",
            "campaign_name": "order-shipped",
            "tags": ["order-shipped"],
            "message_stream": "outbound",
            "click_location": "HTML",
        },
    )
