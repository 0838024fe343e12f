"""Mailjet Event API records mapped to the six events."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from emailsrc.events import EmailEvent, EventName, RecordRejected
from emailsrc.formats.mailjet import MailjetFormat
from format_samples import SAMPLES, categories, convert_file, one_event, skip_reason

SAMPLE = SAMPLES / "mailjet_events.jsonl"
FMT = MailjetFormat()


def record(kind: str, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event": kind,
        "time": 1746518402,
        "MessageID": 288230376151711001,
        "Message_GUID": "1ab23cd4-5e6f-4a7b-8c9d-000000000001",
        "email": "amy@example.com",
        "mj_campaign_id": 7311,
        "mj_contact_id": 5120,
        "customcampaign": "may-newsletter",
        "CustomID": "",
        "Payload": "",
    }
    data.update(fields)
    return data


one = partial(one_event, FMT)
skipped = partial(skip_reason, FMT)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("sent", EventName.DELIVERED),  # dispatched when the receiving server accepted it
        ("open", EventName.OPENED),
        ("click", EventName.CLICKED),
        ("spam", EventName.SPAM),
        ("unsub", EventName.UNSUBSCRIBED),
    ],
)
def test_event_types_map_to_the_six(kind: str, name: EventName) -> None:
    assert one(record(kind)).name is name


def test_sent_fields() -> None:
    event = one(record("sent", smtp_reply="250 OK"))
    assert event.provider == "mailjet"
    assert event.timestamp == datetime(2025, 5, 6, 8, 0, 2, tzinfo=UTC)
    assert event.recipient == "amy@example.com"
    assert event.email_id == "288230376151711001"  # big integer ids kept exact
    assert event.event_id is None
    assert event.properties == {
        "campaign_id": "7311",
        "campaign_name": "may-newsletter",
        "message_guid": "1ab23cd4-5e6f-4a7b-8c9d-000000000001",
    }


def test_message_id_fallbacks() -> None:
    assert one(record("sent", MessageID=None, mj_message_id="1942")).email_id == "1942"
    guid_only = record("sent", MessageID=None)
    assert one(guid_only).email_id == "1ab23cd4-5e6f-4a7b-8c9d-000000000001"


def test_click_link_and_unsub_list() -> None:
    click = one(record("click", url="https://news.example.com/a", agent="Mozilla/5.0"))
    assert click.link_url == "https://news.example.com/a"
    assert "url" not in click.properties
    unsub = one(record("unsub", mj_list_id=1842))
    assert unsub.properties["list_id"] == "1842"
    assert "list_id" not in one(record("open", mj_list_id=1842)).properties


def test_zero_campaign_and_list_mean_none() -> None:
    event = one(record("unsub", mj_campaign_id=0, mj_list_id=0, customcampaign=""))
    assert "campaign_id" not in event.properties
    assert "list_id" not in event.properties
    assert "campaign_name" not in event.properties


def test_spam_source() -> None:
    assert one(record("spam", source="JMRPP")).properties["source"] == "JMRPP"


@pytest.mark.parametrize(
    ("hard", "bounce_type"),
    [(True, "hard"), (False, "soft"), ("true", "hard"), ("false", "soft")],
)
def test_bounces(hard: object, bounce_type: str) -> None:
    event = one(
        record(
            "bounce",
            hard_bounce=hard,
            blocked=True,
            error_related_to="recipient",
            error="user unknown",
        )
    )
    assert event.name is EventName.BOUNCED
    assert event.properties["bounce_type"] == bounce_type
    assert event.properties["reason"] == "recipient: user unknown"
    assert event.properties["blocked"] is True


@pytest.mark.parametrize("error", ["greylisted", "system issue", "connection issue"])
def test_temporary_bounce_errors_are_deferrals(error: str) -> None:
    data = record("bounce", hard_bounce=False, error_related_to="domain", error=error)
    assert skipped(data) == f"deferral: {error}"


def test_hard_greylisting_is_still_a_bounce() -> None:
    data = record("bounce", hard_bounce=True, error_related_to="domain", error="greylisted")
    assert one(data).properties["bounce_type"] == "hard"


def test_mailjet_side_bounce_and_blocked_are_suppressions() -> None:
    data = record("bounce", hard_bounce=False, error_related_to="mailjet", error="preblocked")
    assert skipped(data) == "suppressed before sending: preblocked"
    blocked = record("blocked", error_related_to="mailjet", error="duplicate in campaign")
    assert skipped(blocked) == "suppressed before sending: duplicate in campaign"
    assert skipped(record("blocked")) == "suppressed before sending"


def test_unknown_or_missing_event_is_rejected() -> None:
    with pytest.raises(RecordRejected, match=r"^unknown event type: forward$"):
        FMT.convert(record("forward"))
    with pytest.raises(RecordRejected, match="no event type"):
        FMT.convert(record(""))


@pytest.mark.parametrize(
    ("payload", "custom_id", "user_id"),
    [
        ('{"user_id": "u-1", "plan": "free"}', "", "u-1"),
        ('{"userId": 77}', "", "77"),
        ("", '{"customer_id": "c-31"}', "c-31"),
        ("", "user_id=u-5", "u-5"),
        ("customer_id:c-9;tier=gold", "order-1", "c-9"),
        ("", "welcome-series-2", None),  # a plain CustomID is a tracking id, not a user
    ],
)
def test_user_id_from_payload_and_custom_id(
    payload: str, custom_id: str, user_id: str | None
) -> None:
    assert one(record("open", Payload=payload, CustomID=custom_id)).user_id == user_id


def test_custom_fields_become_properties() -> None:
    event = one(record("open", Payload='{"user_id": "u-1", "planTier": "pro"}', CustomID="c-1"))
    assert event.properties["plan_tier"] == "pro"
    assert event.properties["custom_id"] == "c-1"
    assert "user_id" not in event.properties
    plain = one(record("open", Payload="order 1182"))
    assert plain.properties["payload"] == "order 1182"


def test_identity_is_required() -> None:
    with pytest.raises(RecordRejected, match="no recipient and no user id"):
        FMT.convert(record("open", email=""))
    assert one(record("open", email="", Payload='{"user_id": "u-1"}')).recipient is None


def test_bad_timestamp_is_rejected() -> None:
    with pytest.raises(RecordRejected, match="unparseable timestamp"):
        FMT.convert(record("open", time="yesterday"))


def test_matches_mailjet_records_only() -> None:
    assert FMT.matches(record("open"), None)
    assert FMT.matches({"event": "sent", "time": 1, "mj_message_id": "1", "email": "a@x"}, None)
    assert FMT.matches({"event": "open", "time": 1, "MessageID": 1, "email": "a@x"}, None)
    assert not FMT.matches({"event": "open", "timestamp": 1, "sg_event_id": "x"}, None)
    assert not FMT.matches({"event": "opened", "email": "a@x", "ts_epoch": 1}, None)
    assert FMT.matches({}, ["event", "time", "email", "MessageID", "mj_campaign_id"])


def test_mapping_table() -> None:
    values = [row.value for row in FMT.mapping_table()]
    assert {"sent", "open", "click", "spam", "unsub", "blocked"} <= set(values)
    assert any(value.startswith("bounce") for value in values)


# --- golden sample ------------------------------------------------------------------------


def test_golden_sample() -> None:
    run = convert_file(FMT, SAMPLE)
    found = run.events
    assert run.read == 19  # and one broken line, among the rejects
    assert Counter(event.name.value for event in found) == {
        "Email Delivered": 4,
        "Email Opened": 3,
        "Email Link Clicked": 1,
        "Email Bounced": 4,
        "Email Marked as Spam": 1,
        "Email Unsubscribed": 1,
    }
    assert len({event.key() for event in found}) == 13  # the repeated open is one event
    assert categories(run.skips) == {"deferral": 1, "suppressed before sending": 2}
    assert categories(run.rejects) == {
        "unreadable line": 1,
        "no recipient and no user id": 1,
        "unparseable timestamp": 1,
    }

    click = next(event for event in found if event.name is EventName.CLICKED)
    assert click == EmailEvent(
        name=EventName.CLICKED,
        timestamp=datetime(2025, 5, 6, 8, 32, 0, tzinfo=UTC),
        provider="mailjet",
        recipient="amy@example.com",
        user_id="u-2001",
        email_id="288230376151711001",
        event_id=None,
        link_url="https://news.example.com/may/feature",
        properties={
            "plan": "free",
            "campaign_id": "7311",
            "campaign_name": "may-newsletter",
            "message_guid": "1ab23cd4-5e6f-4a7b-8c9d-376151711001",
        },
    )
    unsub = next(event for event in found if event.name is EventName.UNSUBSCRIBED)
    assert unsub == EmailEvent(
        name=EventName.UNSUBSCRIBED,
        timestamp=datetime(2025, 5, 7, 9, 5, 0, tzinfo=UTC),
        provider="mailjet",
        recipient="ida@example.com",
        user_id="c-31",
        email_id="288230376151711009",
        properties={
            "campaign_id": "7311",
            "campaign_name": "may-newsletter",
            "custom_id": '{"customer_id": "c-31"}',
            "message_guid": "1ab23cd4-5e6f-4a7b-8c9d-376151711009",
            "list_id": "1842",
        },
    )
