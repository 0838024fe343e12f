"""SparkPost: webhook batches and Events API pages mapped to the six events."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from emailsrc.events import EmailEvent, EventName, RecordRejected
from emailsrc.formats.sparkpost import SparkPostFormat
from format_samples import SAMPLES, categories, convert_file, events_of, one_event, skip_reason

FMT = SparkPostFormat()


def flat(kind: str, **fields: Any) -> dict[str, Any]:
    """An Events API item (the same fields a webhook item carries inside msys)."""
    record: dict[str, Any] = {
        "type": kind,
        "event_id": "1001",
        "timestamp": "1741597204",
        "message_id": "msg-1",
        "transmission_id": "tx-1",
        "customer_id": "218734",
        "rcpt_to": "ann@example.com",
        "raw_rcpt_to": "Ann@example.com",
        "subject": "Hello",
        "campaign_id": "spring",
    }
    record.update(fields)
    return record


def hook(event_class: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"msys": {event_class: flat(kind, **fields)}}


events = partial(events_of, FMT)
one = partial(one_event, FMT)
skipped = partial(skip_reason, FMT)


# --- mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_class", "kind", "name"),
    [
        ("message_event", "delivery", EventName.DELIVERED),
        ("track_event", "open", EventName.OPENED),
        ("track_event", "amp_open", EventName.OPENED),
        ("track_event", "click", EventName.CLICKED),
        ("track_event", "amp_click", EventName.CLICKED),
        ("message_event", "spam_complaint", EventName.SPAM),
        ("unsubscribe_event", "list_unsubscribe", EventName.UNSUBSCRIBED),
        ("unsubscribe_event", "link_unsubscribe", EventName.UNSUBSCRIBED),
    ],
)
def test_event_types_map_to_the_six(event_class: str, kind: str, name: EventName) -> None:
    assert one(hook(event_class, kind)).name is name
    assert one(flat(kind)).name is name


def test_delivery_fields() -> None:
    event = one(hook("message_event", "delivery", rcpt_meta={"user_id": "u-1"}))
    assert event.provider == "sparkpost"
    assert event.timestamp == datetime(2025, 3, 10, 9, 0, 4, tzinfo=UTC)
    assert event.recipient == "Ann@example.com"  # raw_rcpt_to keeps the sender's casing
    assert event.user_id == "u-1"
    assert event.email_id == "msg-1"
    assert event.event_id == "1001"
    assert event.key() == "sparkpost:1001"
    assert event.link_url is None
    assert event.machine_open is False
    assert event.properties == {
        "email_subject": "Hello",
        "campaign_id": "spring",
        "transmission_id": "tx-1",
    }


def test_click_carries_link_and_link_name() -> None:
    event = one(
        hook(
            "track_event",
            "click",
            target_link_url="https://shop.example.com/a",
            target_link_name="Shop now",
        )
    )
    assert event.link_url == "https://shop.example.com/a"
    assert event.properties["link_name"] == "Shop now"
    assert "link_url" not in event.properties


def test_email_id_falls_back_to_transmission_id() -> None:
    assert one(flat("delivery", message_id=None)).email_id == "tx-1"


def test_iso_timestamps_from_the_events_api() -> None:
    event = one(flat("open", timestamp="2025-04-02T10:40:12.000Z"))
    assert event.timestamp == datetime(2025, 4, 2, 10, 40, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("bounce_class", "bounce_type"),
    [
        ("10", "hard"),
        ("30", "hard"),
        ("20", "soft"),
        ("21", "soft"),
        ("22", "soft"),
        ("24", "soft"),
        ("40", "soft"),
        ("70", "soft"),
        ("50", "block"),
        ("51", "block"),
        ("54", "block"),
        ("1", "undetermined"),
        (None, "undetermined"),
    ],
)
def test_bounce_classes(bounce_class: str | None, bounce_type: str) -> None:
    event = one(hook("message_event", "bounce", bounce_class=bounce_class, reason="550 nope"))
    assert event.name is EventName.BOUNCED
    assert event.properties["bounce_type"] == bounce_type
    assert event.properties["reason"] == "550 nope"


def test_out_of_band_bounce_is_a_bounce() -> None:
    event = one(hook("message_event", "out_of_band", bounce_class="10", error_code="550"))
    assert event.name is EventName.BOUNCED
    assert event.properties["bounce_type"] == "hard"
    assert event.properties["out_of_band"] is True
    assert event.properties["error_code"] == "550"


def test_unsubscribe_bounce_class_is_an_unsubscribe() -> None:
    event = one(hook("message_event", "bounce", bounce_class="90"))
    assert event.name is EventName.UNSUBSCRIBED
    assert "bounce_type" not in event.properties


@pytest.mark.parametrize("bounce_class", ["25", "26"])
def test_admin_bounce_classes_are_suppressions(bounce_class: str) -> None:
    reason = skipped(hook("message_event", "bounce", bounce_class=bounce_class))
    assert reason == f"suppressed before sending: bounce class {bounce_class}"


@pytest.mark.parametrize("bounce_class", ["60", "80", "100"])
def test_auto_replies_and_subscribe_requests_are_not_bounces(bounce_class: str) -> None:
    reason = skipped(hook("message_event", "out_of_band", bounce_class=bounce_class))
    assert reason == f"not a bounce: bounce class {bounce_class}"


# --- skips --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("initial_open", "second signal for the same open: initial_open"),
        ("amp_initial_open", "second signal for the same open: amp_initial_open"),
        ("injection", "not an email event: injection"),
        ("delay", "deferral: delay"),
        ("policy_rejection", "suppressed before sending: policy_rejection"),
        ("generation_failure", "not an email event: generation_failure"),
        ("generation_rejection", "not an email event: generation_rejection"),
        ("relay_delivery", "not an email event: relay_delivery"),
        ("sms_status", "channel is not email: sms_status"),
        ("ab_test_completed", "not an email event: ab_test_completed"),
        ("ab_test_cancelled", "not an email event: ab_test_cancelled"),
    ],
)
def test_skipped_types(kind: str, expected: str) -> None:
    assert skipped(flat(kind)) == expected


def test_ping_and_inbound_relay_are_skipped() -> None:
    assert skipped({"msys": {}}) == "not an email event: webhook ping"
    relay = {"msys": {"relay_message": {"rcpt_to": "in@example.com", "content": {}}}}
    assert skipped(relay) == "not an email event: inbound relay message"


def test_non_email_delivery_method_is_skipped() -> None:
    assert skipped(flat("delivery", delv_method="sms")) == "channel is not email: sms"
    assert one(flat("delivery", delv_method="esmtp")).name is EventName.DELIVERED


def test_unknown_types_and_event_classes_are_rejected() -> None:
    with pytest.raises(RecordRejected, match=r"^unknown event type: hologram_view$"):
        FMT.convert(flat("hologram_view"))
    with pytest.raises(RecordRejected, match=r"^unknown event type: hologram_view$"):
        FMT.convert({"msys": {"track_event": {"type": "hologram_view"}}})
    with pytest.raises(RecordRejected, match=r"^unknown event type: event class future_event$"):
        FMT.convert({"msys": {"future_event": {"x": 1}}})


# --- identity and properties --------------------------------------------------------------


@pytest.mark.parametrize("key", ["user_id", "userId", "UserID", "customer_id", "customerId"])
def test_user_id_comes_from_rcpt_meta(key: str) -> None:
    assert one(flat("open", rcpt_meta={key: "u-9"})).user_id == "u-9"


def test_sparkpost_customer_id_is_the_account_not_the_user() -> None:
    event = one(flat("open", customer_id="218734", rcpt_meta={}))
    assert event.user_id is None
    assert "customer_id" not in event.properties


def test_user_id_without_recipient_is_enough() -> None:
    event = one(flat("open", rcpt_to=None, raw_rcpt_to=None, rcpt_meta={"user_id": 42}))
    assert (event.recipient, event.user_id) == (None, "42")


def test_no_recipient_and_no_user_id_is_rejected() -> None:
    with pytest.raises(RecordRejected, match="no recipient and no user id"):
        FMT.convert(flat("open", rcpt_to="", raw_rcpt_to="", rcpt_meta={}))


def test_custom_metadata_becomes_snake_case_properties() -> None:
    meta = {
        "user_id": "u-1",
        "planTier": "pro",
        "nested": {"a": 1},
        "email_id": "theirs",
        "link_url": "x",
    }
    event = one(flat("open", rcpt_meta=meta, rcpt_tags=["vip", "eu"]))
    assert event.properties["plan_tier"] == "pro"
    assert event.properties["tags"] == ["vip", "eu"]
    assert "nested" not in event.properties
    assert "user_id" not in event.properties
    # names the payload builder owns never appear as properties
    for reserved in ("email_id", "link_url", "provider", "machine_open"):
        assert reserved not in event.properties
    assert event.properties["custom_email_id"] == "theirs"


def test_bad_records_are_rejected() -> None:
    with pytest.raises(RecordRejected, match="unparseable timestamp"):
        FMT.convert(flat("open", timestamp="soon"))
    with pytest.raises(RecordRejected, match="missing timestamp"):
        FMT.convert(flat("open", timestamp=None))
    with pytest.raises(RecordRejected, match="no event type"):
        FMT.convert(flat("open", type=""))
    with pytest.raises(RecordRejected, match=r"^unknown record shape"):
        FMT.convert({"errors": [{"message": "Unauthorized"}]})
    with pytest.raises(RecordRejected, match="several event classes"):
        FMT.convert({"msys": {"message_event": flat("delivery"), "track_event": flat("open")}})


# --- explode and detection ----------------------------------------------------------------


def test_explode_splits_events_api_pages() -> None:
    page = {
        "results": [flat("delivery", event_id="1"), flat("open", event_id="2"), "junk"],
        "links": {"next": "/api/v1/events/message?cursor=abc"},
        "total_count": 3,
    }
    items = list(FMT.explode(page))
    assert [item.get("event_id") for item in items] == ["1", "2", None]
    assert [event.name for item in items[:2] for event in events(item)] == [
        EventName.DELIVERED,
        EventName.OPENED,
    ]
    with pytest.raises(RecordRejected, match=r"^unknown record shape"):
        FMT.convert(items[2])


def test_explode_passes_webhook_items_and_empty_pages_through() -> None:
    item = hook("message_event", "delivery")
    assert list(FMT.explode(item)) == [item]
    assert list(FMT.explode({"results": [], "total_count": 0})) == []


def test_matches_webhook_items_pages_and_flat_items_only() -> None:
    assert FMT.matches({"msys": {}}, None)
    assert FMT.matches({"results": [flat("open")], "total_count": 1}, None)
    assert FMT.matches(flat("open"), None)
    assert not FMT.matches({"results": [{"id": 1}]}, None)
    assert not FMT.matches({"event": "open", "email": "a@example.com", "time": 1}, None)
    assert not FMT.matches({"type": "email.opened", "created_at": "x", "data": {}}, None)


def test_mapping_table_documents_every_type() -> None:
    values = " ".join(row.value for row in FMT.mapping_table())
    for kind in ("delivery", "open", "initial_open", "click", "bounce", "policy_rejection"):
        assert kind in values


# --- golden samples -----------------------------------------------------------------------


def convert_all(path: Path) -> tuple[list[EmailEvent], dict[str, Any]]:
    run = convert_file(FMT, path)
    summary = {
        "records": run.items,
        "events": dict(Counter(event.name.value for event in run.events)),
        "unique_keys": len({event.key() for event in run.events}),
        "skipped": categories(run.skips),
        "rejected": categories(run.rejects),
    }
    return run.events, summary


def test_golden_webhook_sample() -> None:
    found, summary = convert_all(SAMPLES / "sparkpost_webhooks.jsonl")
    assert summary == {
        "records": 26,
        "events": {
            "Email Delivered": 2,
            "Email Opened": 3,
            "Email Link Clicked": 2,
            "Email Bounced": 4,
            "Email Unsubscribed": 3,
            "Email Marked as Spam": 1,
        },
        "unique_keys": 14,  # the redelivered open batch repeats event_id ...004
        "skipped": {
            # an injection, a generation failure, a ping and an inbound relay message
            "not an email event": 4,
            "second signal for the same open": 2,
            "deferral": 1,
            "suppressed before sending": 2,
        },
        "rejected": {
            "unreadable line": 1,
            "no recipient and no user id": 1,
            "unparseable timestamp": 1,
        },
    }
    click = next(event for event in found if event.name is EventName.CLICKED)
    assert click == EmailEvent(
        name=EventName.CLICKED,
        timestamp=datetime(2025, 3, 10, 9, 13, 2, tzinfo=UTC),
        provider="sparkpost",
        recipient="alice@example.com",
        user_id="u-1001",
        email_id="0001a2b3c4d5e6f70001",
        event_id="4000000000000000005",
        link_url="https://shop.example.com/spring?utm_source=email",
        machine_open=False,
        properties={
            "locale": "en-GB",
            "email_subject": "Spring sale: 20% off everything",
            "campaign_id": "spring-sale-2025",
            "template_id": "spring-sale",
            "transmission_id": "7368412290123456001",
            "tags": ["newsletter", "spring"],
            "link_name": "Shop now",
        },
    )
    bounce = next(event for event in found if event.properties.get("out_of_band"))
    assert bounce == EmailEvent(
        name=EventName.BOUNCED,
        timestamp=datetime(2025, 3, 10, 14, 2, 45, tzinfo=UTC),
        provider="sparkpost",
        recipient="gina@example.com",
        user_id=None,
        email_id="0001a2b3c4d5e6f70007",
        event_id="4000000000000000017",
        properties={
            "email_subject": "Spring sale: 20% off everything",
            "campaign_id": "spring-sale-2025",
            "template_id": "spring-sale",
            "transmission_id": "7368412290123456001",
            "tags": ["newsletter", "spring"],
            "bounce_type": "hard",
            "reason": "550 5.1.1 No such user",
            "bounce_class": "10",
            "error_code": "550",
            "out_of_band": True,
        },
    )


def test_golden_events_api_sample() -> None:
    found, summary = convert_all(SAMPLES / "sparkpost_events_api.jsonl")
    assert summary == {
        "records": 17,
        "events": {
            "Email Delivered": 3,
            "Email Opened": 2,
            "Email Link Clicked": 1,
            "Email Bounced": 2,
            "Email Marked as Spam": 1,
            "Email Unsubscribed": 1,
        },
        "unique_keys": 9,  # overlapping pages repeat delivery ...006
        "skipped": {
            "not an email event": 2,  # an injection and a generation failure
            "second signal for the same open": 1,
            "deferral": 1,
            "suppressed before sending": 1,
            "channel is not email": 2,
        },
        "rejected": {"unreadable line": 1},
    }
    delivery = next(event for event in found if event.recipient == "pete@example.com")
    assert delivery == EmailEvent(
        name=EventName.DELIVERED,
        timestamp=datetime(2025, 4, 2, 10, 15, 5, tzinfo=UTC),
        provider="sparkpost",
        recipient="pete@example.com",
        user_id="4242",
        email_id="0002a2b3c4d5e6f70002",
        event_id="5000000000000000006",
        properties={
            "order_id": "A-9913",
            "email_subject": "Your order has shipped",
            "campaign_id": "order-receipts",
            "template_id": "order-receipt",
            "transmission_id": "7368412290123457100",
            "tags": ["transactional"],
        },
    )
    timeout = next(event for event in found if event.recipient == "quinn@example.com")
    assert timeout.name is EventName.BOUNCED
    assert timeout.properties["bounce_type"] == "soft"
    assert timeout.properties["bounce_class"] == "24"
