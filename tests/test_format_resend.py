"""Resend webhooks mapped to the six events, one per recipient."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from emailsrc.events import EmailEvent, EventName, RecordRejected
from emailsrc.formats.resend import ResendFormat
from format_samples import SAMPLES, categories, convert_file, events_of, one_event, skip_reason

SAMPLE = SAMPLES / "resend_webhooks.jsonl"
FMT = ResendFormat()
EMAIL_ID = "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"


def record(kind: str, created_at: str = "2025-07-14T09:00:02.104Z", **data: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "created_at": "2025-07-14T09:00:00.412Z",
        "email_id": EMAIL_ID,
        "from": "Acme <hello@acme.example.com>",
        "to": ["zoe@example.com"],
        "subject": "Welcome to Acme",
    }
    payload.update(data)
    return {"type": kind, "created_at": created_at, "data": payload}


convert = partial(events_of, FMT)
one = partial(one_event, FMT)
skipped = partial(skip_reason, FMT)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("email.delivered", EventName.DELIVERED),
        ("email.opened", EventName.OPENED),
        ("email.clicked", EventName.CLICKED),
        ("email.bounced", EventName.BOUNCED),
        ("email.complained", EventName.SPAM),
    ],
)
def test_event_types_map_to_the_six(kind: str, name: EventName) -> None:
    assert one(record(kind)).name is name


def test_delivered_fields() -> None:
    event = one(record("email.delivered", tags={"user_id": "u-1", "category": "welcome"}))
    assert event.provider == "resend"
    # the event's own created_at, not data.created_at (when the email was created)
    assert event.timestamp == datetime(2025, 7, 14, 9, 0, 2, 104000, tzinfo=UTC)
    assert event.recipient == "zoe@example.com"
    assert event.user_id == "u-1"
    assert event.email_id == EMAIL_ID
    assert event.event_id is None
    assert event.properties == {"category": "welcome", "email_subject": "Welcome to Acme"}


def test_click_link() -> None:
    click = {"link": "https://acme.example.com/start", "timestamp": "2025-07-14T09:31:10.250Z"}
    event = one(record("email.clicked", click=click))
    assert event.link_url == "https://acme.example.com/start"
    assert "click" not in event.properties


def test_click_time_is_a_fallback_for_created_at() -> None:
    click = {"link": "https://acme.example.com/", "timestamp": "2025-07-14T09:31:10.250Z"}
    event = one(record("email.clicked", created_at="", click=click))
    assert event.timestamp == datetime(2025, 7, 14, 9, 31, 10, 250000, tzinfo=UTC)


def test_broadcast_id_is_the_campaign() -> None:
    assert one(record("email.delivered", broadcast_id="b-1")).properties["campaign_id"] == "b-1"


@pytest.mark.parametrize(
    ("bounce_type", "expected"),
    [
        ("Permanent", "hard"),
        ("Transient", "soft"),
        ("Undetermined", "undetermined"),
        (None, "undetermined"),
    ],
)
def test_bounce_types(bounce_type: str | None, expected: str) -> None:
    bounce = {"type": bounce_type, "subType": "General", "message": "The provider said no."}
    event = one(record("email.bounced", bounce=bounce))
    assert event.properties["bounce_type"] == expected
    assert event.properties["bounce_subtype"] == "General"
    assert event.properties["reason"] == "The provider said no."


@pytest.mark.parametrize(
    "bounce",
    [
        {"type": "Permanent", "subType": "Suppressed", "message": "x"},
        {"type": "Permanent", "subType": "OnAccountSuppressionList", "message": "x"},
        {"type": "Permanent", "message": "Resend has suppressed sending to this address."},
    ],
)
def test_suppressed_bounces_are_skipped(bounce: dict[str, str]) -> None:
    assert skipped(record("email.bounced", bounce=bounce)).startswith("suppressed before sending")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("email.sent", "not an email event: email.sent"),
        ("email.scheduled", "not an email event: email.scheduled"),
        ("email.delivery_delayed", "deferral: email.delivery_delayed"),
        ("email.failed", "not an email event: email.failed"),
        ("email.suppressed", "suppressed before sending: email.suppressed"),
        ("email.received", "not an email event: email.received"),
        ("contact.created", "not an email event: contact.created"),
        ("domain.updated", "not an email event: domain.updated"),
    ],
)
def test_skipped_types(kind: str, expected: str) -> None:
    assert skipped(record(kind)) == expected


def test_one_event_per_recipient() -> None:
    data = record("email.delivered", to=["Yan Lee <yan@example.com>", "xia@example.com"])
    found = convert(data)
    assert [event.recipient for event in found] == ["yan@example.com", "xia@example.com"]
    assert len({event.key() for event in found}) == 2
    assert found[0].properties is not found[1].properties


def test_a_tagged_user_id_is_not_spread_over_several_recipients() -> None:
    data = record(
        "email.delivered", to=["yan@example.com", "xia@example.com"], tags={"user_id": "u-1"}
    )
    assert [event.user_id for event in convert(data)] == [None, None]
    assert one(record("email.delivered", tags={"user_id": "u-1"})).user_id == "u-1"


def test_recipients_as_a_string_and_repeated() -> None:
    found = convert(record("email.opened", to='"Lee, Yan" <yan@example.com>, xia@example.com'))
    assert [event.recipient for event in found] == ["yan@example.com", "xia@example.com"]
    repeated = convert(record("email.opened", to=["xia@example.com", "XIA@example.com"]))
    assert [event.recipient for event in repeated] == ["xia@example.com"]


@pytest.mark.parametrize(
    ("tags", "user_id"),
    [
        ({"user_id": "u-1"}, "u-1"),
        ({"userId": "u-2"}, "u-2"),
        ([{"name": "customer_id", "value": "c-3"}, {"name": "category", "value": "x"}], "c-3"),
        ({"category": "welcome"}, None),
    ],
)
def test_user_id_from_tags(tags: object, user_id: str | None) -> None:
    assert one(record("email.opened", tags=tags)).user_id == user_id


def test_user_id_alone_gives_one_event_without_recipient() -> None:
    event = one(record("email.delivered", to=[], tags={"user_id": "u-9"}))
    assert (event.recipient, event.user_id) == (None, "u-9")


def test_bad_records_are_rejected() -> None:
    with pytest.raises(RecordRejected, match="no recipient and no user id"):
        FMT.convert(record("email.opened", to=[]))
    with pytest.raises(RecordRejected, match="unparseable timestamp"):
        FMT.convert(record("email.opened", created_at="in a while"))
    with pytest.raises(RecordRejected, match="no event type"):
        FMT.convert({"created_at": "2025-07-14T09:00:00Z", "data": {}})
    with pytest.raises(RecordRejected, match="data is not an object"):
        FMT.convert({"type": "email.opened", "created_at": "2025-07-14T09:00:00Z", "data": []})
    with pytest.raises(RecordRejected, match="not an email address"):
        FMT.convert(record("email.opened", to=["nobody"]))


@pytest.mark.parametrize("kind", ["email.forwarded", "broadcast.sent"])
def test_unknown_types_are_rejected(kind: str) -> None:
    with pytest.raises(RecordRejected, match=f"^unknown event type: {kind}$"):
        FMT.convert(record(kind))


def test_matches_resend_records_only() -> None:
    assert FMT.matches(record("email.opened"), None)
    assert not FMT.matches({"type": "email.opened", "data": {"email_id": "x"}}, None)
    assert not FMT.matches({"type": "open", "created_at": "x", "data": {"email_id": "x"}}, None)
    assert not FMT.matches({"msys": {}}, None)


def test_mapping_table() -> None:
    table = {row.value: row.outcome for row in FMT.mapping_table()}
    assert table["email.delivered"] == "Email Delivered"
    assert table["email.sent"] == "skipped: not an email event"
    assert table["email.bounced (Transient)"] == "Email Bounced (soft)"
    assert table["email.bounced (Undetermined)"] == "Email Bounced (undetermined)"


# --- golden sample ------------------------------------------------------------------------


def test_golden_sample() -> None:
    run = convert_file(FMT, SAMPLE)
    found = run.events
    assert run.read == 20  # and one broken line, among the rejects
    assert Counter(event.name.value for event in found) == {
        "Email Delivered": 6,
        "Email Opened": 3,
        "Email Link Clicked": 1,
        "Email Bounced": 2,
        "Email Marked as Spam": 1,
    }
    assert len({event.key() for event in found}) == 12  # the repeated delivery is one event
    assert categories(run.skips) == {
        "not an email event": 4,  # two sends, a failed send, a contact change
        "deferral": 1,
        "suppressed before sending": 2,
    }
    assert categories(run.rejects) == {
        "unreadable line": 1,
        "no recipient and no user id": 1,
        "unparseable timestamp": 1,
    }

    click = next(event for event in found if event.name is EventName.CLICKED)
    assert click == EmailEvent(
        name=EventName.CLICKED,
        timestamp=datetime(2025, 7, 14, 9, 31, 10, 250000, tzinfo=UTC),
        provider="resend",
        recipient="zoe@example.com",
        user_id="u-4001",
        email_id=EMAIL_ID,
        event_id=None,
        link_url="https://acme.example.com/get-started",
        properties={"category": "welcome", "email_subject": "Welcome to Acme"},
    )
    invite = [event for event in found if event.email_id.startswith("a1b2c3d4")]
    assert [(event.name.value, event.recipient) for event in invite] == [
        ("Email Delivered", "yan@example.com"),
        ("Email Delivered", "xia@example.com"),
        ("Email Opened", "yan@example.com"),
        ("Email Opened", "xia@example.com"),
    ]
    assert invite[0] == EmailEvent(
        name=EventName.DELIVERED,
        timestamp=datetime(2025, 7, 14, 10, 0, 3, tzinfo=UTC),
        provider="resend",
        recipient="yan@example.com",
        email_id="a1b2c3d4-1111-4a2b-9c3d-5e6f7a8b9c0d",
        properties={"category": "invite", "email_subject": "Team invite"},
    )
