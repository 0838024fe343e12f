"""SendGrid Event Webhook format: mapping, skips, identity, detection, and the sample export."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from emailsrc.events import EmailEvent, EventName, RecordRejected, Skip
from emailsrc.formats import get_format
from format_samples import SAMPLES, convert_file, one_event

FORMAT = get_format("sendgrid")
SAMPLE = SAMPLES / "sendgrid_events_2025-03.jsonl"
MESSAGE_ID = "Lq9Ry0fDSPy3-cHOYbMhfQ.recvd-7b9c5d5c5-mk2xt-1-67C5A1B2-1F.0"


def record(event: str, **fields: Any) -> dict[str, Any]:
    base = {
        "email": "ana.silva@example.com",
        "event": event,
        "sg_event_id": f"{event}-evt-1",
        "sg_message_id": MESSAGE_ID,
        "smtp-id": "<Lq9Ry0fDSPy3-cHOYbMhfQ@geopod-ismtpd-3>",
        "timestamp": 1740993304,
    }
    base.update(fields)
    return base


one = partial(one_event, FORMAT)


def test_delivered_with_custom_args_is_fully_mapped() -> None:
    data = record("delivered", category=["welcome"], user_id="u_1001", plan="pro", tls=1)
    assert one(data) == EmailEvent(
        name=EventName.DELIVERED,
        timestamp=datetime(2025, 3, 3, 9, 15, 4, tzinfo=UTC),
        provider="sendgrid",
        recipient="ana.silva@example.com",
        user_id="u_1001",
        email_id=MESSAGE_ID,
        event_id="delivered-evt-1",
        properties={"plan": "pro", "campaign_name": "welcome", "tags": ["welcome"]},
    )


def test_open_flags_machine_opens() -> None:
    assert one(record("open", sg_machine_open=True)).machine_open is True
    assert one(record("open", sg_machine_open=False)).machine_open is False
    assert one(record("open")).machine_open is False


def test_click_carries_the_url_outside_properties() -> None:
    event = one(record("click", url="https://app.example.com/a", url_offset={"index": 0}))
    assert event.name is EventName.CLICKED
    assert event.link_url == "https://app.example.com/a"
    assert "link_url" not in event.properties and "url" not in event.properties


@pytest.mark.parametrize(
    ("bounce_kind", "expected"),
    [("bounce", "hard"), ("blocked", "block"), ("expired", "soft"), ("other", "undetermined")],
)
def test_bounce_type_comes_from_the_type_field(bounce_kind: str, expected: str) -> None:
    data = record(
        "bounce",
        type=bounce_kind,
        bounce_classification="Invalid Address",
        status="5.1.1",
        reason="550 5.1.1 user unknown",
    )
    event = one(data)
    assert event.name is EventName.BOUNCED
    assert event.properties == {
        "bounce_type": expected,
        "bounce_subtype": "Invalid Address",
        "reason": "550 5.1.1 user unknown",
        "smtp_status": "5.1.1",
    }


def test_bounce_without_type_is_a_hard_bounce() -> None:
    assert one(record("bounce", reason="550")).properties["bounce_type"] == "hard"


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("spamreport", EventName.SPAM),
        ("unsubscribe", EventName.UNSUBSCRIBED),
        ("delivered", EventName.DELIVERED),
    ],
)
def test_simple_events(kind: str, name: EventName) -> None:
    assert one(record(kind)).name is name


def test_group_unsubscribe_names_the_group_as_list() -> None:
    event = one(record("group_unsubscribe", asm_group_id=4821, url="https://example.com/asm"))
    assert event.name is EventName.UNSUBSCRIBED
    assert event.properties == {"list_id": "4821"}
    assert event.link_url is None


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("processed", "not an email event: processed"),
        ("deferred", "deferral: deferred"),
        ("dropped", "suppressed before sending: dropped"),
        ("group_resubscribe", "person-level subscription change: group_resubscribe"),
        ("account_status_change", "not an email event: account_status_change"),
    ],
)
def test_skips(kind: str, reason: str) -> None:
    assert FORMAT.convert(record(kind, reason="Bounced Address")) == Skip(reason)


def test_unknown_event_is_rejected_with_its_name() -> None:
    with pytest.raises(RecordRejected, match=r"^unknown event type: surprise$"):
        FORMAT.convert(record("surprise"))


def test_record_without_event_is_rejected() -> None:
    with pytest.raises(RecordRejected, match=r"^unknown record shape"):
        FORMAT.convert({"email": "a@example.com", "sg_event_id": "x"})


def test_no_recipient_and_no_user_id_is_rejected() -> None:
    with pytest.raises(RecordRejected, match="no recipient and no user id"):
        FORMAT.convert(record("delivered", email=""))


def test_user_id_alone_is_enough_identity() -> None:
    event = one(record("delivered", email=None, userId="u_9"))
    assert (event.recipient, event.user_id) == (None, "u_9")


@pytest.mark.parametrize(
    ("key", "value"),
    [("user_id", "u_1"), ("userId", "u_1"), ("customer_id", "u_1"), ("person_id", "u_1")],
)
def test_user_id_keys(key: str, value: str) -> None:
    event = one(record("delivered", **{key: value}))
    assert event.user_id == value
    assert event.properties == {}


def test_custom_args_never_shadow_builder_or_reserved_names() -> None:
    data = record("delivered", email_id="mine", id="42", orderNumber="A-1", timestamp_ms=5)
    data["provider"] = "billing"
    event = one(data)
    assert event.properties == {
        "custom_email_id": "mine",
        "custom_id": "42",
        "order_number": "A-1",
        "timestamp_ms": 5,
        "custom_provider": "billing",
    }


def test_nested_unique_args_from_old_exports() -> None:
    event = one(record("delivered", unique_args={"user_id": "u_7", "plan": "team"}))
    assert event.user_id == "u_7"
    assert event.properties == {"plan": "team"}


def test_campaign_fields_win_over_categories() -> None:
    data = record(
        "open",
        category=["newsletter", "march"],
        marketing_campaign_id=12345,
        marketing_campaign_name="March news",
        template_id="d-1",
    )
    assert one(data).properties == {
        "campaign_id": "12345",
        "campaign_name": "March news",
        "tags": ["newsletter", "march"],
        "template_id": "d-1",
    }


def test_several_categories_name_no_campaign() -> None:
    assert "campaign_name" not in one(record("open", category=["a", "b"])).properties


def test_email_id_falls_back_to_smtp_id() -> None:
    data = record("delivered")
    del data["sg_message_id"]
    data["sg_event_id"] = "e-2"
    assert one(data).email_id == "Lq9Ry0fDSPy3-cHOYbMhfQ@geopod-ismtpd-3"


def test_matches_only_sendgrid_events() -> None:
    assert FORMAT.matches(record("delivered"), None)
    assert not FORMAT.matches(record("delivered"), ["email", "event", "sg_event_id"])
    assert not FORMAT.matches({"event": "delivered", "email": "a@example.com"}, None)
    assert not FORMAT.matches({"event": "opened", "time": 1, "MessageID": 2}, None)


def test_mapping_table_names_every_event_type() -> None:
    values = {row.value for row in FORMAT.mapping_table()}
    for kind in (
        "delivered",
        "open",
        "click",
        "spamreport",
        "unsubscribe",
        "group_unsubscribe",
        "processed",
        "deferred",
        "dropped",
        "group_resubscribe",
        "account_status_change",
    ):
        assert kind in values
    assert {"bounce (type bounce)", "bounce (type blocked)", "bounce (type expired)"} <= values


# --- the sample export -------------------------------------------------------------------


def test_sample_export_summary() -> None:
    run = convert_file(FORMAT, SAMPLE)
    events = run.events
    assert Counter(event.name.value for event in events) == {
        "Email Delivered": 5,
        "Email Opened": 3,
        "Email Link Clicked": 2,
        "Email Bounced": 2,
        "Email Unsubscribed": 2,
        "Email Marked as Spam": 1,
    }
    # The webhook's retried batch repeats one delivery: its sg_event_id makes it one key.
    assert len({event.key() for event in events}) == len(events) - 1
    assert run.skips == {
        "not an email event: processed": 2,
        "deferral: deferred": 1,
        "suppressed before sending: dropped": 1,
        "person-level subscription change: group_resubscribe": 1,
        "not an email event: account_status_change": 1,
    }
    assert run.rejects == {"unreadable line: malformed JSON": 1, "no recipient and no user id": 1}


def test_sample_export_events_in_full() -> None:
    events = convert_file(FORMAT, SAMPLE).events
    machine_open = next(e for e in events if e.machine_open)
    assert machine_open == EmailEvent(
        name=EventName.OPENED,
        timestamp=datetime(2025, 3, 3, 9, 15, 41, tzinfo=UTC),
        provider="sendgrid",
        recipient="ben.okafor@example.com",
        user_id="u_1002",
        email_id="p3XcQ0eRTnWm8vYk2Lh6Aw.recvd-7b9c5d5c5-mk2xt-1-67C5A1B2-20.0",
        event_id="b3Blbi0xMjM0NTY3OTAtcDNYY1EwZVItMA",
        machine_open=True,
        properties={"plan": "free", "campaign_name": "welcome", "tags": ["welcome"]},
    )
    blocked = next(e for e in events if e.properties.get("bounce_type") == "block")
    assert blocked == EmailEvent(
        name=EventName.BOUNCED,
        timestamp=datetime(2025, 3, 4, 15, 2, 55, tzinfo=UTC),
        provider="sendgrid",
        recipient="dora.nagy@example.com",
        email_id="Vb2mR8kLTfa0qXw3NsE7Jg.recvd-5f54b5d587-pczjm-1-67C5A1B3-4.0",
        event_id="Ym91bmNlLTEtMTIzNDU2NzkyLVZiMm1SOGtM",
        properties={
            "campaign_name": "password-reset",
            "tags": ["password-reset"],
            "bounce_type": "block",
            "bounce_subtype": "Reputation",
            "reason": "554 5.7.1 Service unavailable; Client host [149.72.123.24] blocked "
            "using zen.example.org",
            "smtp_status": "5.7.1",
        },
    )
    unsubscribe = next(e for e in events if e.properties.get("list_id"))
    assert unsubscribe == EmailEvent(
        name=EventName.UNSUBSCRIBED,
        timestamp=datetime(2025, 3, 6, 19, 12, 44, tzinfo=UTC),
        provider="sendgrid",
        recipient="fay.dubois@example.com",
        email_id="Yt6gK3vBSkm9eRp1LcD5Wn.recvd-7b9c5d5c5-x8r2q-1-67C8F0A1-A.0",
        event_id="Z3JvdXBfdW5zdWJzY3JpYmUtMjM0NTY3ODky",
        properties={
            "campaign_id": "4d1c9a6e-2f4b-11f0-9c1e-0a58a9feac02",
            "campaign_name": "March 2025 newsletter",
            "template_id": "d-8f2c1e9a4b7d4c6a9e3f1b2a5c7d9e0f",
            "list_id": "4821",
        },
    )
