"""Brevo transactional webhooks mapped to the six events."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from emailsrc.events import EmailEvent, EventName, RecordRejected
from emailsrc.formats.brevo import BrevoFormat
from format_samples import SAMPLES, categories, convert_file, one_event, skip_reason

SAMPLE = SAMPLES / "brevo_transactional.jsonl"
FMT = BrevoFormat()
MESSAGE_ID = "<202506021000.11111111111@smtp-relay.mailin.fr>"


def record(kind: str, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event": kind,
        "email": "ana@example.com",
        "id": 918273,
        "date": "2025-06-02 10:00:03",
        "ts": 1748851203,
        "message-id": MESSAGE_ID,
        "ts_event": 1748851203,
        "subject": "Your order",
        "ts_epoch": 1748851203217,
        "template_id": 12,
        "tags": ["order-confirmation"],
    }
    data.update(fields)
    return data


one = partial(one_event, FMT)
skipped = partial(skip_reason, FMT)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("delivered", EventName.DELIVERED),
        ("opened", EventName.OPENED),
        ("proxy_open", EventName.OPENED),
        ("click", EventName.CLICKED),
        ("hard_bounce", EventName.BOUNCED),
        ("soft_bounce", EventName.BOUNCED),
        ("spam", EventName.SPAM),
        ("complaint", EventName.SPAM),
        ("unsubscribed", EventName.UNSUBSCRIBED),
        # the camelCase spellings some Brevo exports use
        ("hardBounce", EventName.BOUNCED),
        ("proxyOpen", EventName.OPENED),
    ],
)
def test_event_types_map_to_the_six(kind: str, name: EventName) -> None:
    assert one(record(kind)).name is name


def test_delivered_fields() -> None:
    event = one(record("delivered", contact_id=58))
    assert event.provider == "brevo"
    assert event.timestamp == datetime(2025, 6, 2, 8, 0, 3, 217000, tzinfo=UTC)
    assert event.recipient == "ana@example.com"
    assert event.email_id == MESSAGE_ID
    assert event.event_id is None  # "id" is the webhook's id, not the event's
    assert event.machine_open is False
    assert event.properties == {
        "email_subject": "Your order",
        "template_id": "12",
        "tags": ["order-confirmation"],
        "brevo_contact_id": "58",
    }


@pytest.mark.parametrize(
    ("kind", "bounce_type"), [("hard_bounce", "hard"), ("soft_bounce", "soft")]
)
def test_bounce_type_and_reason(kind: str, bounce_type: str) -> None:
    event = one(record(kind, reason="550 5.1.1 User unknown"))
    assert event.properties["bounce_type"] == bounce_type
    assert event.properties["reason"] == "550 5.1.1 User unknown"


def test_proxy_open_is_a_machine_open() -> None:
    assert one(record("proxy_open")).machine_open is True
    assert one(record("opened")).machine_open is False


def test_click_link() -> None:
    event = one(record("click", link="https://shop.example.com/orders/A-1"))
    assert event.link_url == "https://shop.example.com/orders/A-1"
    assert "link" not in event.properties


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("unique_opened", "second signal for the same open: unique_opened"),
        ("uniqueOpened", "second signal for the same open: unique_opened"),
        ("unique_proxy_open", "second signal for the same open: unique_proxy_open"),
        ("request", "not an email event: request"),
        ("deferred", "deferral: deferred"),
        ("blocked", "suppressed before sending: blocked"),
        ("invalid_email", "suppressed before sending: invalid_email"),
        ("error", "not an email event: error"),
        ("list_addition", "person-level subscription change: list_addition"),
        ("contact_updated", "not an email event: contact_updated"),
        ("contact_deleted", "not an email event: contact_deleted"),
    ],
)
def test_skipped_types(kind: str, expected: str) -> None:
    assert skipped(record(kind)) == expected


def test_skips_do_not_need_a_valid_recipient() -> None:
    assert skipped(record("invalid_email", email="not-an-address@")).startswith("suppressed")


@pytest.mark.parametrize(
    ("custom", "user_id"),
    [
        ('{"user_id": "u-1", "order_id": "A-1"}', "u-1"),
        ('{"userId": 7}', "7"),
        ("customer_id=c-3;source=checkout", "c-3"),
        ("userId:u-4", "u-4"),
        ("some_custom_header", None),
    ],
)
def test_user_id_from_x_mailin_custom(custom: str, user_id: str | None) -> None:
    assert one(record("opened", **{"X-Mailin-custom": custom})).user_id == user_id


def test_user_id_from_a_key_value_tag() -> None:
    event = one(record("spam", tags=["order-confirmation", "user_id:u-7"]))
    assert event.user_id == "u-7"
    assert one(record("spam", tag="customer_id=c-8", tags=None)).user_id == "c-8"


def test_custom_header_becomes_properties() -> None:
    structured = one(record("opened", **{"X-Mailin-custom": '{"user_id": "u", "orderId": "A"}'}))
    assert structured.properties["order_id"] == "A"
    assert "x_mailin_custom" not in structured.properties
    plain = one(record("opened", **{"X-Mailin-custom": "some_custom_header"}))
    assert plain.properties["x_mailin_custom"] == "some_custom_header"


def test_timestamp_preference_and_fallbacks() -> None:
    # ts_epoch (ms, UTC) first
    assert one(record("opened")).timestamp == datetime(2025, 6, 2, 8, 0, 3, 217000, tzinfo=UTC)
    # then ts_event
    no_epoch = record("opened", ts_epoch=None)
    assert one(no_epoch).timestamp == datetime(2025, 6, 2, 8, 0, 3, tzinfo=UTC)
    # last, "date", which is Brevo's CET/CEST wall clock (CEST in June: UTC+2)
    date_only = record("opened", ts_epoch=None, ts_event=None, ts=None)
    assert one(date_only).timestamp == datetime(2025, 6, 2, 8, 0, 3, tzinfo=UTC)
    winter = record("opened", ts_epoch=None, ts_event=None, ts=None, date="2025-01-15 10:00:00")
    assert one(winter).timestamp == datetime(2025, 1, 15, 9, 0, 0, tzinfo=UTC)
    with_offset = record(
        "opened", ts_epoch=None, ts_event=None, ts=None, date="2025-01-15T10:00:00Z"
    )
    assert one(with_offset).timestamp == datetime(2025, 1, 15, 10, 0, 0, tzinfo=UTC)


def test_bad_records_are_rejected() -> None:
    with pytest.raises(RecordRejected, match="missing timestamp"):
        FMT.convert(record("opened", ts_epoch=None, ts_event=None, ts=None, date=None))
    with pytest.raises(RecordRejected, match="unparseable timestamp"):
        FMT.convert(record("opened", ts_epoch="later"))
    with pytest.raises(RecordRejected, match="no recipient and no user id"):
        FMT.convert(record("opened", email=""))
    with pytest.raises(RecordRejected, match="no event type"):
        FMT.convert(record(""))


def test_unknown_event_is_rejected() -> None:
    with pytest.raises(RecordRejected, match=r"^unknown event type: reply$"):
        FMT.convert(record("reply"))


def test_matches_brevo_records_only() -> None:
    assert FMT.matches(record("delivered"), None)
    assert FMT.matches({"event": "opened", "email": "a@x", "ts_epoch": 1}, None)
    assert not FMT.matches({"event": "open", "email": "a@x", "time": 1, "MessageID": 1}, None)
    assert not FMT.matches({"event": "delivered", "email": "a@x", "sg_event_id": "x"}, None)
    assert FMT.matches({}, ["event", "email", "message-id", "ts_event"])


def test_mapping_table() -> None:
    table = {row.value: row.outcome for row in FMT.mapping_table()}
    assert table["opened"] == "Email Opened"
    assert table["proxy_open"] == "Email Opened (machine open)"
    assert table["soft_bounce"] == "Email Bounced (soft)"
    assert table["unique_opened"] == "skipped: second signal for the same open"
    assert not any("any other" in value for value in table)  # unknown events are rejected


# --- golden sample ------------------------------------------------------------------------


def test_golden_sample() -> None:
    run = convert_file(FMT, SAMPLE)
    found = run.events
    assert run.read == 19  # and one broken line, among the rejects
    assert Counter(event.name.value for event in found) == {
        "Email Delivered": 3,
        "Email Opened": 3,
        "Email Link Clicked": 1,
        "Email Bounced": 2,
        "Email Marked as Spam": 1,
        "Email Unsubscribed": 1,
    }
    assert len({event.key() for event in found}) == 10  # the repeated "opened" is one event
    assert categories(run.skips) == {
        "not an email event": 2,  # a request and a send error
        "second signal for the same open": 2,
        "deferral": 1,
        "suppressed before sending": 2,
    }
    assert categories(run.rejects) == {"unreadable line": 1, "no recipient and no user id": 1}

    proxy = next(event for event in found if event.machine_open)
    assert proxy == EmailEvent(
        name=EventName.OPENED,
        timestamp=datetime(2025, 6, 2, 8, 0, 40, 217000, tzinfo=UTC),
        provider="brevo",
        recipient="bart@example.com",
        user_id="u-3002",
        email_id="<202506021000.22222222222@smtp-relay.mailin.fr>",
        event_id=None,
        machine_open=True,
        properties={
            "source": "checkout",
            "email_subject": "Your order #A-1042 is confirmed",
            "template_id": "12",
            "tags": ["order-confirmation"],
        },
    )
    soft = next(event for event in found if event.recipient == "cara@example.com")
    assert soft == EmailEvent(
        name=EventName.BOUNCED,
        timestamp=datetime(2025, 6, 2, 14, 0, 5, 217000, tzinfo=UTC),
        provider="brevo",
        recipient="cara@example.com",
        email_id="<202506021000.33333333333@smtp-relay.mailin.fr>",
        properties={
            "email_subject": "Your order #A-1042 is confirmed",
            "template_id": "12",
            "tags": ["order-confirmation"],
            "bounce_type": "soft",
            "reason": "452 4.2.2 Mailbox full",
        },
    )
    # the record exported with only Brevo's local "date" (CEST) lands on the right UTC time
    late = next(event for event in found if event.recipient == "iris@example.com")
    assert late.timestamp == datetime(2025, 6, 3, 11, 0, 0, tzinfo=UTC)
