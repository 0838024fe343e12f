"""Mailgun format: webhook bodies, Events API pages, failures, bots, and the sample export."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from emailsrc.events import EmailEvent, EventName, RecordRejected, Skip
from emailsrc.formats import get_format
from format_samples import SAMPLES, convert_file, one_event

FORMAT = get_format("mailgun")
SAMPLE = SAMPLES / "mailgun_events_2025-04.jsonl"
MESSAGE_ID = "20250407091500.1.A4C2E9F0B1D37E55@mg.example.com"


def item(event: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event": event,
        "id": "bY4lR0n2Uz3y8cXdO1wS5h",
        "timestamp": 1744017303.501872,
        "log-level": "info",
        "recipient": "hana.ito@example.com",
        "message": {
            "headers": {
                "to": "hana.ito@example.com",
                "message-id": MESSAGE_ID,
                "from": "billing@example.com",
                "subject": "Your April invoice",
            }
        },
        "tags": [],
        "user-variables": {},
    }
    base.update(fields)
    return base


def webhook(event: str, **fields: Any) -> dict[str, Any]:
    return {
        "signature": {"timestamp": "1744017303", "token": "a8ce0edb2dd8", "signature": "d227"},
        "event-data": item(event, **fields),
    }


one = partial(one_event, FORMAT)


def test_delivered_webhook_is_fully_mapped() -> None:
    data = webhook(
        "delivered",
        tags=["invoice"],
        **{"user-variables": {"user_id": "acct-2001", "invoice": "INV-1"}},
    )
    assert one(data) == EmailEvent(
        name=EventName.DELIVERED,
        timestamp=datetime(2025, 4, 7, 9, 15, 3, 501872, tzinfo=UTC),
        provider="mailgun",
        recipient="hana.ito@example.com",
        user_id="acct-2001",
        email_id=MESSAGE_ID,
        event_id=None,
        properties={
            "invoice": "INV-1",
            "email_subject": "Your April invoice",
            "campaign_name": "invoice",
            "tags": ["invoice"],
        },
    )


def test_event_id_is_not_used_because_mailgun_ids_repeat_across_days() -> None:
    event = one(webhook("delivered"))
    assert event.event_id is None
    assert event.key().startswith(f"mailgun|{MESSAGE_ID}|Email Delivered|hana.ito@example.com|")


def test_bare_items_convert_like_webhook_bodies() -> None:
    assert one(item("delivered")) == one(webhook("delivered"))


def test_message_id_brackets_are_dropped() -> None:
    data = item("delivered")
    data["message"]["headers"]["message-id"] = f"<{MESSAGE_ID}>"
    assert one(data).email_id == MESSAGE_ID


@pytest.mark.parametrize(("bot", "machine"), [("apple", True), ("gmail", True), ("", False)])
def test_opened_bots_are_machine_opens(bot: str, machine: bool) -> None:
    event = one(webhook("opened", **{"client-info": {"bot": bot, "user-agent": "Mozilla/5.0"}}))
    assert event.name is EventName.OPENED
    assert event.machine_open is machine
    assert event.properties.get("bot") == (bot or None)


def test_clicked_by_a_bot_is_kept_and_labelled() -> None:
    data = webhook("clicked", url="https://example.com/x", **{"client-info": {"bot": "generic"}})
    event = one(data)
    assert (event.name, event.link_url, event.machine_open) == (
        EventName.CLICKED,
        "https://example.com/x",
        False,
    )
    assert event.properties["bot"] == "generic"


def test_unsubscribed_from_a_mailing_list() -> None:
    data = webhook("unsubscribed", **{"mailing-list": {"address": "news@mg.example.com"}})
    event = one(data)
    assert event.name is EventName.UNSUBSCRIBED
    assert event.properties["list_id"] == "news@mg.example.com"


def test_complained_is_spam() -> None:
    assert one(webhook("complained")).name is EventName.SPAM


def failed(severity: str | None, reason: str, **status: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"reason": reason, "delivery-status": status}
    if severity is not None:
        fields["severity"] = severity
    return webhook("failed", **fields)


@pytest.mark.parametrize(
    ("reason", "status", "bounce_type"),
    [
        ("bounce", {"code": 550, "message": "5.1.1 no such user"}, "hard"),
        ("generic", {"code": 554, "description": "rejected"}, "hard"),
        ("old", {"code": 452, "message": "4.2.2 over quota"}, "soft"),
        ("espblock", {"code": 554, "message": "blocked"}, "block"),
        ("generic", {"code": 452, "bounce-type": "soft", "message": "x"}, "soft"),
    ],
)
def test_permanent_failures_are_bounces(
    reason: str, status: dict[str, Any], bounce_type: str
) -> None:
    event = one(failed("permanent", reason, **status))
    assert event.name is EventName.BOUNCED
    assert event.properties["bounce_type"] == bounce_type
    assert event.properties["bounce_subtype"] == reason
    assert event.properties["smtp_status"] == str(status["code"])
    assert event.properties["reason"] == (status.get("message") or status.get("description"))


def test_failure_without_severity_is_permanent() -> None:
    assert one(failed(None, "bounce", code=550)).properties["bounce_type"] == "hard"


def test_temporary_failure_is_a_deferral() -> None:
    assert FORMAT.convert(failed("temporary", "generic", code=452)) == Skip(
        "deferral: temporary failure"
    )


@pytest.mark.parametrize(
    "reason", ["suppress-bounce", "suppress-unsubscribe", "suppress-complaint"]
)
def test_suppressions_never_reached_a_server(reason: str) -> None:
    assert FORMAT.convert(failed("permanent", reason, code=605)) == Skip(
        f"suppressed before sending: {reason}"
    )


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("accepted", "not an email event: accepted"),
        ("stored", "not an email event: stored"),
        ("list_member_uploaded", "not an email event: list_member_uploaded"),
        ("rejected", "suppressed before sending: rejected"),
    ],
)
def test_skips(kind: str, reason: str) -> None:
    assert FORMAT.convert(webhook(kind)) == Skip(reason)


def test_unknown_event_is_rejected() -> None:
    with pytest.raises(RecordRejected, match=r"^unknown event type: teleported$"):
        FORMAT.convert(webhook("teleported"))


def test_webhook_without_event_data_is_rejected() -> None:
    with pytest.raises(RecordRejected, match=r"^unknown record shape"):
        FORMAT.convert({"signature": {"token": "x"}})


def test_no_recipient_and_no_user_id_is_rejected() -> None:
    with pytest.raises(RecordRejected, match="no recipient and no user id"):
        FORMAT.convert(webhook("delivered", recipient=None))


def test_user_id_from_user_variables() -> None:
    data = webhook("opened", recipient=None, **{"user-variables": {"customerId": "c-9", "x": 1}})
    event = one(data)
    assert (event.recipient, event.user_id, event.properties["x"]) == (None, "c-9", 1)
    assert "customer_id" not in event.properties


def test_single_legacy_campaign_names_the_campaign() -> None:
    data = webhook("delivered", campaigns=[{"id": "c1", "name": "Spring"}], tags=["a", "b"])
    properties = one(data).properties
    assert (properties["campaign_id"], properties["campaign_name"]) == ("c1", "Spring")
    assert properties["tags"] == ["a", "b"]


def test_events_api_page_explodes_into_items() -> None:
    page = {
        "items": [item("delivered"), "not an object", item("opened")],
        "paging": {"next": "https://api.mailgun.net/v3/mg.example.com/events/x"},
    }
    items = list(FORMAT.explode(page))
    assert [i.get("event") for i in items] == ["delivered", None, "opened"]
    with pytest.raises(RecordRejected):
        FORMAT.convert(items[1])


def test_webhook_body_is_not_exploded() -> None:
    body = webhook("delivered")
    assert list(FORMAT.explode(body)) == [body]


def test_matches() -> None:
    assert FORMAT.matches(webhook("delivered"), None)
    assert FORMAT.matches({"items": [item("opened")], "paging": {}}, None)
    assert FORMAT.matches(item("opened"), None)
    assert not FORMAT.matches(item("opened"), ["event", "id", "timestamp"])
    assert not FORMAT.matches({"event": "opened", "id": 1, "timestamp": 2}, None)
    assert not FORMAT.matches({"items": [{"x": 1}], "paging": {}}, None)


def test_mapping_table_names_every_event_type() -> None:
    values = " ".join(row.value for row in FORMAT.mapping_table())
    for kind in ("delivered", "opened", "clicked", "unsubscribed", "complained", "failed"):
        assert kind in values
    for kind in ("accepted", "rejected", "stored", "temporary", "suppress-"):
        assert kind in values


# --- the sample export -------------------------------------------------------------------


def test_sample_export_summary() -> None:
    run = convert_file(FORMAT, SAMPLE)
    events = run.events
    assert Counter(event.name.value for event in events) == {
        "Email Delivered": 3,
        "Email Opened": 3,
        "Email Link Clicked": 1,
        "Email Bounced": 2,
        "Email Unsubscribed": 2,
        "Email Marked as Spam": 1,
    }
    # The Events API page repeats the unsubscribe the webhook delivered: one key for both.
    assert len({event.key() for event in events}) == len(events) - 1
    assert run.skips == {
        "not an email event: accepted": 1,
        "deferral: temporary failure": 1,
        "suppressed before sending: suppress-bounce": 1,
        "suppressed before sending: rejected": 1,
        "not an email event: stored": 1,
    }
    assert run.rejects == {"unreadable line: malformed JSON": 1}


def test_sample_export_events_in_full() -> None:
    events = convert_file(FORMAT, SAMPLE).events
    apple = next(e for e in events if e.properties.get("bot") == "apple")
    assert apple == EmailEvent(
        name=EventName.OPENED,
        timestamp=datetime(2025, 4, 7, 9, 15, 40, 8811, tzinfo=UTC),
        provider="mailgun",
        recipient="hana.ito@example.com",
        user_id="acct-2001",
        email_id=MESSAGE_ID,
        machine_open=True,
        properties={
            "invoice": "INV-2025-0412",
            "email_subject": "Your April invoice",
            "campaign_name": "invoice",
            "tags": ["invoice"],
            "bot": "apple",
        },
    )
    retry_limit = next(e for e in events if e.properties.get("bounce_subtype") == "old")
    assert retry_limit == EmailEvent(
        name=EventName.BOUNCED,
        timestamp=datetime(2025, 4, 8, 9, 20, 15, 118200, tzinfo=UTC),
        provider="mailgun",
        recipient="jade.wong@example.com",
        email_id="20250407091501.1.C9E2A4B6D8F01A73@mg.example.com",
        properties={
            "email_subject": "Your April invoice",
            "campaign_name": "invoice",
            "tags": ["invoice"],
            "bounce_type": "soft",
            "bounce_subtype": "old",
            "reason": "4.2.2 The email account that you tried to reach is over quota.",
            "smtp_status": "452",
        },
    )
