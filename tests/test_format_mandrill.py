"""Mailchimp Transactional (Mandrill) format: mandrill_events bodies, events, sample export."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from emailsrc.events import EmailEvent, EventName, RecordRejected, Skip
from emailsrc.formats import get_format
from format_samples import SAMPLES, convert_file, one_event

FORMAT = get_format("mandrill")
SAMPLE = SAMPLES / "mandrill_webhooks_2025-07.jsonl"
MESSAGE_ID = "5d0a1f8e2c7b4a3996e1d2c3b4a5f607"


def event(kind: str, msg: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    message = {
        "ts": 1752051600,
        "_id": MESSAGE_ID,
        "state": "sent",
        "subject": "Your trial ends in 3 days",
        "email": "abby.ross@example.com",
        "sender": "hello@example.com",
        "tags": ["trial"],
        "metadata": {"user_id": "org_4101"},
        "template": "trial-ending",
        "subaccount": None,
    }
    message.update(msg or {})
    data = {"event": kind, "_id": MESSAGE_ID, "msg": message, "ts": 1752071117}
    data.update(fields)
    return data


one = partial(one_event, FORMAT)


def test_open_is_fully_mapped() -> None:
    data = event("open", ip="203.0.113.45", user_agent_parsed={"type": "Email client"})
    assert one(data) == EmailEvent(
        name=EventName.OPENED,
        timestamp=datetime(2025, 7, 9, 14, 25, 17, tzinfo=UTC),
        provider="mandrill",
        recipient="abby.ross@example.com",
        user_id="org_4101",
        email_id=MESSAGE_ID,
        event_id=None,
        machine_open=False,
        properties={
            "email_subject": "Your trial ends in 3 days",
            "campaign_name": "trial",
            "tags": ["trial"],
            "template_name": "trial-ending",
        },
    )


@pytest.mark.parametrize(
    ("parsed", "machine"),
    [
        ({"type": "Robot"}, True),
        ({"type": "robot"}, True),
        ({"type": "Browser"}, False),
        (None, False),
    ],
)
def test_robot_user_agents_are_machine_opens(parsed: dict[str, str] | None, machine: bool) -> None:
    assert one(event("open", user_agent_parsed=parsed)).machine_open is machine


def test_click_carries_the_url() -> None:
    result = one(event("click", url="https://app.example.com/upgrade"))
    assert (result.name, result.link_url) == (EventName.CLICKED, "https://app.example.com/upgrade")


@pytest.mark.parametrize(
    ("kind", "bounce_type"), [("hard_bounce", "hard"), ("soft_bounce", "soft")]
)
def test_bounces(kind: str, bounce_type: str) -> None:
    msg = {"state": "bounced", "bounce_description": "mailbox_full", "diag": "smtp;452 4.2.2 full"}
    result = one(event(kind, msg))
    assert result.name is EventName.BOUNCED
    assert result.properties["bounce_type"] == bounce_type
    assert result.properties["bounce_subtype"] == "mailbox_full"
    assert result.properties["reason"] == "smtp;452 4.2.2 full"


@pytest.mark.parametrize(
    ("kind", "name"), [("spam", EventName.SPAM), ("unsub", EventName.UNSUBSCRIBED)]
)
def test_spam_and_unsubscribe(kind: str, name: EventName) -> None:
    assert one(event(kind)).name is name


def smtp(ts: int, diag: str | None, kind: str = "sent") -> dict[str, Any]:
    """One entry of msg.smtp_events: Mandrill's log of the receiving server's replies."""
    return {"ts": ts, "type": kind, "diag": diag, "source_ip": "198.2.128.4", "size": 24310}


def test_send_with_an_accepting_reply_is_a_delivery() -> None:
    data = event("send", {"smtp_events": [smtp(1752051603, "250 2.0.0 OK  1752051603 x")]})
    assert one(data) == EmailEvent(
        name=EventName.DELIVERED,
        # the receiving server's reply, not the webhook's own time
        timestamp=datetime(2025, 7, 9, 9, 0, 3, tzinfo=UTC),
        provider="mandrill",
        recipient="abby.ross@example.com",
        user_id="org_4101",
        email_id=MESSAGE_ID,
        properties={
            "email_subject": "Your trial ends in 3 days",
            "campaign_name": "trial",
            "tags": ["trial"],
            "template_name": "trial-ending",
        },
    )


def test_the_last_smtp_event_decides() -> None:
    attempts = [smtp(1752051601, "451 4.7.1 Greylisted", "deferred"), smtp(1752051700, "250 OK")]
    delivered = one(event("send", {"smtp_events": attempts}))
    assert delivered.timestamp == datetime(2025, 7, 9, 9, 1, 40, tzinfo=UTC)
    assert FORMAT.convert(event("send", {"smtp_events": attempts[::-1]})) == Skip(
        "not an email event: send (no delivery confirmation)"
    )


@pytest.mark.parametrize(
    ("attempts", "delivered"),
    [
        ([smtp(1752051603, "smtp;250 2.0.0 OK")], True),
        ([smtp(1752051603, None, "sent")], True),  # no reply text: Mandrill's reading counts
        ([smtp(1752051603, "Message accepted", "sent")], True),
        ([smtp(1752051603, "250 OK", "deferred")], True),  # the reply code wins
        ([smtp(1752051603, "451 4.7.1 Try again later", "deferred")], False),
        ([smtp(1752051603, "smtp;550 5.1.1 User unknown", "bounced")], False),
        ([smtp(1752051603, "421 4.7.0 Try again", "sent")], False),
        ([smtp(1752051603, None, "deferred")], False),
        ([], False),
        (None, False),
        ("250 OK", False),
        (["250 OK"], False),
    ],
)
def test_send_needs_a_2xx_reply(attempts: object, delivered: bool) -> None:
    msg = {} if attempts is None else {"smtp_events": attempts}
    result = FORMAT.convert(event("send", msg))
    if delivered:
        assert isinstance(result, list) and [e.name for e in result] == [EventName.DELIVERED]
    else:
        assert result == Skip("not an email event: send (no delivery confirmation)")


def test_an_unconfirmed_send_needs_no_identity() -> None:
    data = event("send", {"email": None, "metadata": {}, "smtp_events": []})
    assert FORMAT.convert(data) == Skip("not an email event: send (no delivery confirmation)")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("deferral", "deferral: deferral"),
        ("reject", "suppressed before sending: reject"),
        ("inbound", "not an email event: inbound"),
    ],
)
def test_skips(kind: str, reason: str) -> None:
    assert FORMAT.convert(event(kind)) == Skip(reason)


def test_sync_events_are_skipped() -> None:
    sync = {"type": "blacklist", "action": "add", "reject": {"email": "a@example.com"}, "ts": 1}
    assert FORMAT.convert(sync) == Skip("not an email event: blacklist sync")


def test_unknown_event_and_shapes_are_rejected() -> None:
    with pytest.raises(RecordRejected, match=r"^unknown event type: teleport$"):
        FORMAT.convert(event("teleport"))
    with pytest.raises(RecordRejected, match=r"^unknown record shape: no Mandrill msg object$"):
        FORMAT.convert({"event": "open", "ts": 1752071117})
    with pytest.raises(RecordRejected, match=r"^unknown record shape"):
        FORMAT.convert({"ts": 1752071117})


def test_numeric_metadata_user_id_and_other_metadata() -> None:
    result = one(event("open", {"metadata": {"user_id": 111, "plan": "trial", "event": "x"}}))
    assert result.user_id == "111"
    assert (result.properties["plan"], result.properties["custom_event"]) == ("trial", "x")


def test_no_recipient_and_no_user_id_is_rejected() -> None:
    with pytest.raises(RecordRejected, match="no recipient and no user id"):
        FORMAT.convert(event("open", {"email": None, "metadata": {}}))


def test_explode_a_json_string_body() -> None:
    body = {"mandrill_events": json.dumps([event("send"), event("open"), "junk"])}
    items = list(FORMAT.explode(body))
    assert [i.get("event") for i in items] == ["send", "open", None]


def test_explode_an_already_parsed_body() -> None:
    assert list(FORMAT.explode({"mandrill_events": [event("open")]})) == [event("open")]
    assert list(FORMAT.explode(event("open"))) == [event("open")]


def test_explode_rejects_a_broken_body() -> None:
    with pytest.raises(RecordRejected, match=r"^unreadable embedded JSON: mandrill_events$"):
        list(FORMAT.explode({"mandrill_events": '[{"event": "open", '}))
    with pytest.raises(RecordRejected, match=r"^unknown record shape: mandrill_events is not"):
        list(FORMAT.explode({"mandrill_events": '{"event": "open"}'}))


def test_matches() -> None:
    assert FORMAT.matches({"mandrill_events": "[]"}, None)
    assert FORMAT.matches(event("open"), None)
    assert FORMAT.matches({"type": "whitelist", "action": "add", "entry": {}}, None)
    assert not FORMAT.matches(event("open"), ["event", "msg", "ts"])
    assert not FORMAT.matches({"event": "open", "ts": 1, "email": "a@example.com"}, None)


def test_mapping_table_names_every_event_type() -> None:
    rows = FORMAT.mapping_table()
    values = {row.value.split(" (")[0] for row in rows}
    kinds = ("send", "deferral", "hard_bounce", "soft_bounce", "open", "click", "spam", "unsub")
    assert set(kinds) | {"reject", "inbound"} <= values
    sends = {row.outcome for row in rows if row.value.startswith("send ")}
    assert sends == {"Email Delivered", "skipped: not an email event"}


# --- the sample export -------------------------------------------------------------------


def test_sample_export_summary() -> None:
    run = convert_file(FORMAT, SAMPLE)
    events = run.events
    assert Counter(e.name.value for e in events) == {
        "Email Delivered": 2,
        "Email Opened": 4,
        "Email Link Clicked": 1,
        "Email Bounced": 2,
        "Email Unsubscribed": 1,
        "Email Marked as Spam": 1,
    }
    # A later batch repeats an open: same message, recipient and time, so the same key.
    assert len({e.key() for e in events}) == len(events) - 1
    assert run.skips == {
        # the third send's webhook came before Mandrill had talked to the receiving server
        "not an email event: send (no delivery confirmation)": 1,
        "deferral: deferral": 1,
        "suppressed before sending: reject": 1,
        "not an email event: blacklist sync": 1,
    }
    # The third line was cut off mid-body, so it is not JSON at all.
    assert run.rejects == {"unreadable line: malformed JSON": 1}


def test_sample_export_events_in_full() -> None:
    events = convert_file(FORMAT, SAMPLE).events
    robot = next(e for e in events if e.machine_open)
    assert robot == EmailEvent(
        name=EventName.OPENED,
        timestamp=datetime(2025, 7, 9, 9, 0, 40, tzinfo=UTC),
        provider="mandrill",
        recipient="bruno.silva@example.com",
        user_id="org_4102",
        email_id="6e1b2a9f3d8c4b4aa7f2e3d4c5b6a718",
        machine_open=True,
        properties={
            "plan": "trial",
            "email_subject": "Your trial ends in 3 days",
            "campaign_name": "trial",
            "tags": ["trial"],
            "template_name": "trial-ending",
        },
    )
    soft = next(e for e in events if e.properties.get("bounce_type") == "soft")
    assert soft == EmailEvent(
        name=EventName.BOUNCED,
        timestamp=datetime(2025, 7, 10, 9, 0, 7, tzinfo=UTC),
        provider="mandrill",
        recipient="cleo.hart@example.com",
        user_id="org_4103",
        email_id="7f2c3b0a4e9d4c5bb8a3f4e5d6c7b829",
        properties={
            "email_subject": "Your trial ends in 3 days",
            "campaign_name": "trial",
            "tags": ["trial"],
            "template_name": "trial-ending",
            "bounce_type": "soft",
            "bounce_subtype": "mailbox_full",
            "reason": "smtp;452 4.2.2 The email account that you tried to reach is over quota.",
        },
    )
    # Greylisted first, then taken: the delivery is the accepting reply.
    delivered = next(e for e in events if e.recipient == "bruno.silva@example.com")
    assert (delivered.name, delivered.timestamp) == (
        EventName.DELIVERED,
        datetime(2025, 7, 9, 9, 0, 4, tzinfo=UTC),
    )
    unsubscribed = next(e for e in events if e.name is EventName.UNSUBSCRIBED)
    assert (unsubscribed.user_id, unsubscribed.properties["template_name"]) == (
        "org_4106",
        "release-notes",
    )
