"""The Customer.io format: its four shapes, the mapping rules, identity, keys and samples."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from emailsrc.events import RESERVED_PROPERTY_NAMES, EmailEvent, EventName, RecordRejected, Skip
from emailsrc.formats.base import Conversion, Converter, FormatError
from emailsrc.formats.customerio import FORMATS, CustomerIO
from format_samples import SAMPLES, SampleRun, convert_file, first_data, read_records

FMT = CustomerIO()
T0 = 1749027605  # 2025-06-04T09:00:05Z
SHARED_DELIVERY = "RPILAgqdotpy43rk7e8YvBsCwnaU"  # in both the messages and the deliveries sample

METRICS_HEADER = [
    "Event ID", "Metric", "Timestamp", "Customer ID", "Recipient", "Delivery ID",
    "Campaign ID", "Campaign Name", "Subject", "Link URL", "Link ID", "Failure Message",
]  # fmt: skip


# --- builders ------------------------------------------------------------------------------


def webhook(
    metric: str, *, object_type: str = "email", timestamp: object = T0, **data: Any
) -> dict[str, Any]:
    body_data: dict[str, Any] = {
        "identifiers": {"id": "user-1042", "email": "ana.silva@example.com", "cio_id": "be8d4e"},
        "customer_id": "user-1042",
        "delivery_id": "RPILAgP7DCDM",
        "recipient": "ana.silva@example.com",
        "broadcast_id": 7,
        "action_id": 131,
        "subject": "What's new in June",
    }
    body_data.update(data)
    return {
        "event_id": "01JWX2PJT1JAH83JCV1DNRYMBF",
        "object_type": object_type,
        "metric": metric,
        "timestamp": timestamp,
        "data": body_data,
    }


def legacy(event_type: str, **data: Any) -> dict[str, Any]:
    body_data: dict[str, Any] = {
        "campaign_id": 21,
        "campaign_name": "Trial ending reminder",
        "customer_id": "user-1043",
        "email_address": "ben.okafor@example.com",
        "email_id": "ODAAAAbcdef",
        "subject": "Your trial ends in 3 days",
        "template_id": 44,
    }
    body_data.update(data)
    return {"data": body_data, "event_id": "4cf155d1d1", "event_type": event_type, "timestamp": T0}


def message(metrics: Mapping[str, object], **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "RPILAgMSG1",
        "customer_id": "user-1051",
        "customer_identifiers": {"id": "user-1051", "email": "chloe@example.org", "cio_id": "c1"},
        "recipient": "chloe@example.org",
        "subject": "3 tips",
        "metrics": dict(metrics),
        "campaign_id": 12,
        "action_id": 119,
        "type": "email",
    }
    record.update(fields)
    return record


def metric_row(**values: str) -> dict[str, str]:
    row = dict.fromkeys(METRICS_HEADER, "")
    row.update(
        {
            "Event ID": "01JZ55TJG88XE6SZAEAVSNTCPM",
            "Metric": "delivered",
            "Timestamp": "2025-07-02T09:00:04Z",
            "Customer ID": "user-1042",
            "Recipient": "ana.silva@example.com",
            "Delivery ID": "RPILAgpTy",
            "Campaign ID": "27",
            "Campaign Name": "July newsletter",
            "Subject": "Tips, tricks and a July surprise",
        }
    )
    row.update({k.replace("_", " "): v for k, v in values.items()})
    return row


def events_of(result: Conversion) -> list[EmailEvent]:
    assert isinstance(result, list), result
    return result


def one(result: Conversion) -> EmailEvent:
    found = events_of(result)
    assert len(found) == 1, found
    return found[0]


def rejected(convert: Converter, record: Mapping[str, Any]) -> str:
    with pytest.raises(RecordRejected) as caught:
        convert(record)
    return caught.value.reason


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# --- registry, detection, containers -------------------------------------------------------


def test_the_module_registers_one_format() -> None:
    assert [type(f) for f in FORMATS] == [CustomerIO]
    assert (FMT.name, FMT.title) == ("customerio", "Customer.io")


@pytest.mark.parametrize(
    "sample",
    [
        webhook("opened"),
        legacy("email_opened"),
        message({"delivered": T0}),
        {"messages": [message({"delivered": T0})], "next": ""},
        [webhook("opened"), webhook("clicked")],
        {"metric": "delivered", "delivery_id": "RPILAg", "recipient": "a@example.com"},
    ],
    ids=["reporting", "legacy", "message", "api-page", "json-array", "flat-metric"],
)
def test_matches_every_json_shape(sample: Any) -> None:
    assert FMT.matches(sample, None)


@pytest.mark.parametrize(
    "sample",
    [
        {"event": "open", "email": "a@example.com", "sg_event_id": "x", "timestamp": T0},
        {"event-data": {"event": "opened", "recipient": "a@example.com"}},
        {"RecordType": "Open", "MessageID": "m", "Recipient": "a@example.com"},
        {"type": "email.opened", "created_at": "2025-06-01T00:00:00Z", "data": {"email_id": "e"}},
        {"event_type": "opened", "data": {"email_id": "e"}},
        {"metric": "opened"},
        [],
    ],
    ids=["sendgrid", "mailgun", "postmark", "resend", "bare-event-type", "bare-metric", "empty"],
)
def test_does_not_match_other_json(sample: Any) -> None:
    assert not FMT.matches(sample, None)


@pytest.mark.parametrize(
    "columns",
    [
        METRICS_HEADER,
        ["metric", "timestamp", "delivery_id", "recipient"],
        ["delivery_id", "customer_id", "recipient", "delivered_at", "opened_at", "clicked_at"],
        ["Delivery ID", "Recipient", "Delivered", "Opened"],
    ],
)
def test_matches_customerio_csv_headers(columns: list[str]) -> None:
    assert FMT.matches({}, columns)


@pytest.mark.parametrize(
    "columns",
    [
        ["email", "event", "timestamp", "sg_message_id", "sg_event_id"],
        ["event", "recipient", "message-id", "timestamp"],
        ["id", "recipient", "delivered_at", "opened_at"],  # no Customer.io id column
        ["delivery_id", "recipient", "delivered_at"],  # one time column is not a signature
    ],
)
def test_does_not_match_other_csv_headers(columns: list[str]) -> None:
    assert not FMT.matches({}, columns)


def test_explode_splits_arrays_and_api_pages_and_passes_the_rest() -> None:
    first, second = webhook("delivered"), webhook("opened")
    assert list(FMT.explode([first, second])) == [first, second]
    page = {"messages": [message({"sent": T0}), message({"delivered": T0})], "next": "abc"}
    assert list(FMT.explode(page)) == page["messages"]
    assert list(FMT.explode(first)) == [first]


def test_json_input_binds_to_convert() -> None:
    assert FMT.bind(webhook("opened"), None) == FMT.convert


def test_unknown_shapes_are_rejected_with_their_keys() -> None:
    assert rejected(FMT.convert, {"event": "open", "foo": 1}) == (
        "unknown record shape: keys event, foo"
    )
    assert rejected(FMT.convert, {}) == "unknown record shape: keys (none)"
    assert rejected(FMT.convert, ["not", "an", "object"]) == (
        "unknown record shape: not a JSON object"
    )


# --- reporting webhooks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "name"),
    [
        ("delivered", EventName.DELIVERED),
        ("opened", EventName.OPENED),
        ("clicked", EventName.CLICKED),
        ("unsubscribed", EventName.UNSUBSCRIBED),
        ("bounced", EventName.BOUNCED),
        ("spammed", EventName.SPAM),
    ],
)
def test_email_metrics_become_the_six_events(metric: str, name: EventName) -> None:
    event = one(FMT.convert(webhook(metric)))
    assert event.name is name
    assert event.timestamp == at("2025-06-04T09:00:05+00:00")
    assert (event.provider, event.email_id) == ("customerio", "RPILAgP7DCDM")
    assert event.event_id == "01JWX2PJT1JAH83JCV1DNRYMBF"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (webhook("sent"), "not an email event: sent"),
        (webhook("drafted"), "not an email event: drafted"),
        (webhook("attempted"), "not an email event: attempted"),
        (webhook("converted"), "not an email event: converted"),
        (webhook("failed"), "not an email event: failed"),
        (webhook("undeliverable"), "not an email event: undeliverable"),
        (webhook("deferred"), "deferral: deferred"),
        (webhook("dropped"), "suppressed before sending: dropped"),
        (webhook("human_opened"), "second signal for the same open: human_opened"),
        (webhook("prefetch_opened"), "second signal for the same open: prefetch_opened"),
        (webhook("human_clicked"), "second signal for the same click: human_clicked"),
        (webhook("opened", object_type="push"), "channel is not email: push"),
        (webhook("delivered", object_type="sms"), "channel is not email: sms"),
        (webhook("clicked", object_type="in_app"), "channel is not email: in_app"),
        (webhook("sent", object_type="webhook"), "channel is not email: webhook"),
        (webhook("sent", object_type="slack"), "channel is not email: slack"),
        (webhook("opened", object_type="whatsapp"), "channel is not email: whatsapp"),
        (
            webhook("unsubscribed", object_type="customer", delivery_id=None),
            "person-level subscription change: unsubscribed",
        ),
        (
            webhook("subscribed", object_type="customer", delivery_id=None),
            "person-level subscription change: subscribed",
        ),
        (
            webhook("cio_subscription_preferences_changed", content='{"topics":{"topic_1":false}}'),
            "person-level subscription change: cio_subscription_preferences_changed",
        ),
        (
            # triggered from an email, but tied to no delivery: a change of the person
            webhook("unsubscribed", object_type="email", delivery_id=None),
            "person-level subscription change: unsubscribed",
        ),
    ],
)
def test_everything_else_is_skipped_with_its_reason(record: dict[str, Any], reason: str) -> None:
    assert FMT.convert(record) == Skip(reason)


@pytest.mark.parametrize(
    "record",
    [
        webhook("surveyed"),
        webhook("surveyed", timestamp=None, identifiers={}, customer_id="", recipient=None),
        legacy("email_surveyed"),
        message({"surveyed": T0}),
    ],
)
def test_an_unknown_metric_is_rejected(record: dict[str, Any]) -> None:
    assert rejected(FMT.convert, record) == "unknown event type: surveyed"


def test_skips_need_neither_timestamp_nor_identity() -> None:
    record = webhook("sent", timestamp=None, identifiers={}, customer_id="", recipient=None)
    assert FMT.convert(record) == Skip("not an email event: sent")


def test_prefetched_opens_are_machine_opens_and_proxied_ones_are_not() -> None:
    assert one(FMT.convert(webhook("opened", prefetched=True, proxied=True))).machine_open
    assert not one(FMT.convert(webhook("opened", proxied=True, prefetched=False))).machine_open
    assert not one(FMT.convert(webhook("opened"))).machine_open


def test_a_synthetic_open_is_still_the_emails_open() -> None:
    event = one(FMT.convert(webhook("opened", synthetic=True)))
    assert (event.name, event.machine_open) == (EventName.OPENED, False)


def test_clicks_carry_link_url_link_id_and_the_machine_flag() -> None:
    record = webhook("clicked", href="https://northwind.example.com/pricing", link_id=5)
    event = one(FMT.convert(record))
    assert event.link_url == "https://northwind.example.com/pricing"
    assert event.properties["link_id"] == "5"
    assert "machine_click" not in event.properties
    machine = one(FMT.convert({**record, "data": {**record["data"], "machine": True}}))
    assert machine.properties["machine_click"] is True
    assert not machine.machine_open


def test_only_clicks_have_a_link_url() -> None:
    event = one(FMT.convert(webhook("opened", href="https://example.com/x", link_id=1)))
    assert event.link_url is None
    assert "link_id" not in event.properties


def test_bounce_reason_comes_from_failure_message() -> None:
    reason = "550 5.1.1 The email account that you tried to reach does not exist"
    event = one(FMT.convert(webhook("bounced", failure_message=reason)))
    assert event.properties["reason"] == reason
    assert "reason" not in one(FMT.convert(webhook("delivered", failure_message="x"))).properties


def test_properties_follow_the_email_spec_and_keep_clear_of_reserved_names() -> None:
    record = webhook(
        "delivered",
        campaign_id=12,
        newsletter_id=31,
        content_id=3,
        journey_id="01JWE3ZK9Q4M7T2V8XN5RBC6HD",
        parent_action_id=4,
        trigger_event_id="21E4C3CT6",
        transactional_message_id=4,
    )
    properties = one(FMT.convert(record)).properties
    assert properties == {
        "email_subject": "What's new in June",
        "campaign_id": "12",
        "broadcast_id": "7",
        "newsletter_id": "31",
        "action_id": "131",
        "parent_action_id": "4",
        "content_id": "3",
        "journey_id": "01JWE3ZK9Q4M7T2V8XN5RBC6HD",
        "trigger_event_id": "21E4C3CT6",
        "transactional_message_id": "4",
        "cio_id": "be8d4e",
    }
    assert not set(properties) & RESERVED_PROPERTY_NAMES
    assert not set(properties) & {"email_id", "link_url", "provider", "machine_open"}


def test_string_timestamps_are_read() -> None:
    event = one(FMT.convert(webhook("opened", timestamp=str(T0))))
    assert event.timestamp == at("2025-06-04T09:00:05+00:00")


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        (None, "missing timestamp"),
        ("", "missing timestamp"),
        ("yesterday", "unparseable timestamp: 'yesterday'"),
        (True, "unparseable timestamp: True"),
    ],
)
def test_bad_timestamps_reject_the_record(timestamp: object, reason: str) -> None:
    assert rejected(FMT.convert, webhook("opened", timestamp=timestamp)) == reason


def test_a_missing_metric_rejects_the_record() -> None:
    assert rejected(FMT.convert, webhook("")) == "no event type"


def test_the_reporting_webhook_shape_survives_a_missing_data_object() -> None:
    record = {"event_id": "01J", "object_type": "email", "metric": "delivered", "timestamp": T0}
    assert rejected(FMT.convert, record) == "no recipient and no user id"


# --- identity ------------------------------------------------------------------------------


def test_user_id_prefers_identifiers_id_over_customer_id() -> None:
    event = one(FMT.convert(webhook("opened", customer_id="legacy-42")))
    assert event.user_id == "user-1042"
    fallback = one(FMT.convert(webhook("opened", identifiers={}, customer_id="legacy-42")))
    assert fallback.user_id == "legacy-42"


def test_cio_id_is_never_the_user_id() -> None:
    ids = {"id": None, "email": "isla.brown@example.com", "cio_id": "2fe87bdf4802"}
    event = one(FMT.convert(webhook("opened", identifiers=ids, customer_id="", recipient=None)))
    assert (event.user_id, event.recipient) == (None, "isla.brown@example.com")
    assert event.properties["cio_id"] == "2fe87bdf4802"
    only_cio = webhook("opened", identifiers={"cio_id": "2fe8"}, customer_id="", recipient=None)
    assert rejected(FMT.convert, only_cio) == "no recipient and no user id"


def test_recipient_is_the_delivery_address_before_the_profile_email() -> None:
    event = one(FMT.convert(webhook("opened", recipient="Ana Silva <ana@work.example.com>")))
    assert event.recipient == "ana@work.example.com"
    no_recipient = webhook("opened", recipient=None, email_address="ana.s@example.org")
    assert one(FMT.convert(no_recipient)).recipient == "ana.s@example.org"


def test_a_recipient_that_is_not_an_address_rejects_the_record() -> None:
    reason = rejected(FMT.convert, webhook("opened", recipient="ana.silva(at)example.com"))
    assert reason == "recipient is not an email address: 'ana.silva(at)example.com'"


# --- legacy webhooks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "outcome"),
    [
        ("email_delivered", EventName.DELIVERED),
        ("email_opened", EventName.OPENED),
        ("email_clicked", EventName.CLICKED),
        ("email_unsubscribed", EventName.UNSUBSCRIBED),
        ("email_bounced", EventName.BOUNCED),
        ("email_spammed", EventName.SPAM),
        ("email_sent", Skip("not an email event: sent")),
        ("email_drafted", Skip("not an email event: drafted")),
        ("email_converted", Skip("not an email event: converted")),
        ("email_failed", Skip("not an email event: failed")),
        ("email_dropped", Skip("suppressed before sending: dropped")),
        ("customer_subscribed", Skip("person-level subscription change: subscribed")),
        ("customer_unsubscribed", Skip("person-level subscription change: unsubscribed")),
        ("push_sent", Skip("channel is not email: push")),
        ("in_app_opened", Skip("channel is not email: in_app")),
    ],
)
def test_legacy_event_types(event_type: str, outcome: EventName | Skip) -> None:
    result = FMT.convert(legacy(event_type))
    if isinstance(outcome, Skip):
        assert result == outcome
    else:
        assert one(result).name is outcome


def test_legacy_fields() -> None:
    record = legacy("email_clicked", href="https://northwind.example.com/upgrade", link_id=1)
    event = one(FMT.convert(record))
    assert (event.user_id, event.recipient) == ("user-1043", "ben.okafor@example.com")
    assert (event.email_id, event.event_id) == ("ODAAAAbcdef", "4cf155d1d1")
    assert event.link_url == "https://northwind.example.com/upgrade"
    assert event.properties == {
        "email_subject": "Your trial ends in 3 days",
        "campaign_id": "21",
        "campaign_name": "Trial ending reminder",
        "template_id": "44",
        "link_id": "1",
    }


# --- message records (metrics maps) --------------------------------------------------------


def _opens(metrics: Mapping[str, object]) -> list[EmailEvent]:
    found = events_of(FMT.convert(message(metrics)))
    return [e for e in found if e.name is EventName.OPENED]


@pytest.mark.parametrize(
    ("metrics", "when", "machine"),
    [
        ({"opened": T0, "human_opened": T0}, T0, False),
        ({"opened": T0, "prefetch_opened": T0}, T0, True),
        ({"prefetch_opened": T0 + 5}, T0 + 5, True),
        ({"human_opened": T0 + 5}, T0 + 5, False),
        ({"opened": T0, "prefetch_opened": T0, "human_opened": T0 + 900}, T0, False),
        ({"human_opened": T0 + 900, "prefetch_opened": T0}, T0, False),
        ({"opened": T0}, T0, False),
    ],
    ids=["human", "prefetch", "prefetch-only", "human-only", "both", "both-no-opened", "plain"],
)
def test_a_metrics_map_gives_one_open(
    metrics: Mapping[str, object], when: int, machine: bool
) -> None:
    opens = _opens({"delivered": T0 - 60, **metrics})
    assert len(opens) == 1
    assert (opens[0].timestamp.timestamp(), opens[0].machine_open) == (when, machine)


def test_a_metrics_map_gives_one_event_per_relevant_metric_in_time_order() -> None:
    metrics = {
        "sent": T0 - 4,
        "delivered": T0,
        "opened": T0 + 100,
        "human_opened": T0 + 100,
        "clicked": T0 + 160,
        "human_clicked": T0 + 160,
        "converted": T0 + 3600,
        "unsubscribed": T0 + 200,
        "spammed": T0 + 300,
    }
    found = events_of(FMT.convert(message(metrics)))
    assert [e.name for e in found] == [
        EventName.DELIVERED,
        EventName.OPENED,
        EventName.CLICKED,
        EventName.UNSUBSCRIBED,
        EventName.SPAM,
    ]
    assert {(e.email_id, e.event_id, e.user_id) for e in found} == {
        ("RPILAgMSG1", None, "user-1051")
    }
    assert found[2].link_url is None  # a metrics map knows when, not which link


def test_a_metrics_map_bounce_carries_the_failure_message() -> None:
    record = message({"sent": T0 - 2, "bounced": T0}, failure_message="552 mailbox full")
    event = one(FMT.convert(record))
    assert (event.name, event.properties["reason"]) == (EventName.BOUNCED, "552 mailbox full")


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (message({"dropped": T0}), "suppressed before sending: dropped"),
        (message({"sent": T0}), "not an email event: sent"),
        (
            message({"sent": T0, "converted": T0 + 9}),
            "not an email event: converted, sent",
        ),
        (message({"drafted": T0, "failed": T0}), "not an email event: drafted, failed"),
        # still being retried: the deferral is what matters, not the earlier "sent"
        (message({"sent": T0, "deferred": T0 + 5}), "deferral: deferred"),
        (message({"dropped": T0, "deferred": T0}), "suppressed before sending: dropped"),
        # beside a known metric, an unknown one does not change what the delivery is
        (message({"sent": T0, "teleported": T0}), "not an email event: sent"),
        (message({"subscribed": T0}), "person-level subscription change: subscribed"),
        (message({"sent": None, "delivered": ""}), "delivery has no metric times"),
        (message({"delivered": T0}, type="push"), "channel is not email: push"),
    ],
)
def test_deliveries_without_an_email_event_are_skipped(record: dict[str, Any], reason: str) -> None:
    assert FMT.convert(record) == Skip(reason)


def test_a_delivery_with_an_unknown_metric_keeps_its_known_events() -> None:
    event = one(FMT.convert(message({"delivered": T0, "teleported": T0 + 5})))
    assert (event.name, event.timestamp) == (EventName.DELIVERED, datetime.fromtimestamp(T0, UTC))


def test_a_delivery_whose_metrics_are_all_unknown_is_rejected() -> None:
    record = message({"teleported": T0, "beamed": T0 + 1})
    assert rejected(FMT.convert, record) == "unknown event type: beamed, teleported"


def test_a_bad_time_for_a_relevant_metric_rejects_the_delivery() -> None:
    record = message({"sent": T0, "delivered": "2025-06-31T09:00:07Z"})
    assert rejected(FMT.convert, record) == "unparseable timestamp: '2025-06-31T09:00:07Z'"


def test_a_delivery_of_a_deleted_person_is_rejected() -> None:
    ids = {"id": None, "email": None, "cio_id": "39c0b4"}
    record = message({"delivered": T0}, customer_id=None, customer_identifiers=ids, recipient=None)
    assert rejected(FMT.convert, record) == "no recipient and no user id"


# --- CSV: one row per delivery -------------------------------------------------------------


def test_delivery_rows_use_one_time_column_per_metric() -> None:
    columns = ["id", "Customer ID", "Email", "Subject", "Delivered At", "Opened", "Prefetch Opened"]
    convert = FMT.bind({}, columns)
    row = {
        "id": "RPILAgROW1",
        "Customer ID": "user-1060",
        "Email": "dev.patel@example.com",
        "Subject": "3 tips",
        "Delivered At": "2025-06-15T09:00:05Z",
        "Opened": "2025-06-15 09:00:37",
        "Prefetch Opened": "2025-06-15T09:00:37Z",
    }
    delivered, opened = events_of(convert(row))
    assert (delivered.name, delivered.email_id) == (EventName.DELIVERED, "RPILAgROW1")
    assert (opened.name, opened.machine_open) == (EventName.OPENED, True)
    assert opened.timestamp == at("2025-06-15T09:00:37+00:00")


def test_delivery_rows_read_channel_and_list_columns() -> None:
    columns = ["delivery_id", "recipient", "type", "list_id", "list_name", "unsubscribed_at"]
    convert = FMT.bind({}, columns)
    row = dict(
        zip(columns, ["D1", "a@example.com", "email", "L7", "Product news", str(T0)], strict=True)
    )
    event = one(convert(row))
    assert event.name is EventName.UNSUBSCRIBED
    assert event.properties == {"list_id": "L7", "list_name": "Product news"}
    push = dict(row, type="push")
    assert convert(push) == Skip("channel is not email: push")


def test_delivery_rows_without_identity_columns_do_not_bind() -> None:
    with pytest.raises(FormatError) as caught:
        FMT.bind({}, ["delivery_id", "delivered_at", "opened_at"])
    assert str(caught.value) == (
        "Customer.io CSV columns not understood: found delivery_id, delivered_at, opened_at; "
        "missing recipient (email) or customer_id"
    )


# --- CSV: one row per metric event ---------------------------------------------------------


def test_metric_rows_map_every_column() -> None:
    convert = FMT.bind({}, METRICS_HEADER)
    row = metric_row(
        Metric="clicked",
        Link_URL="https://northwind.example.com/blog/july-tips",
        Link_ID="6",
    )
    event = one(convert(row))
    assert event.name is EventName.CLICKED
    assert (event.event_id, event.email_id) == ("01JZ55TJG88XE6SZAEAVSNTCPM", "RPILAgpTy")
    assert (event.user_id, event.recipient) == ("user-1042", "ana.silva@example.com")
    assert event.link_url == "https://northwind.example.com/blog/july-tips"
    assert event.properties == {
        "email_subject": "Tips, tricks and a July surprise",
        "campaign_id": "27",
        "campaign_name": "July newsletter",
        "link_id": "6",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-07-02T11:15:00+02:00", "2025-07-02T09:15:00+00:00"),
        ("1751446805000", "2025-07-02T09:00:05+00:00"),
        ("1751446805", "2025-07-02T09:00:05+00:00"),
        ("Wed, 02 Jul 2025 09:30:00 +0000", "2025-07-02T09:30:00+00:00"),
    ],
    ids=["iso-offset", "unix-ms", "unix-s", "rfc2822"],
)
def test_metric_rows_read_every_timestamp_shape(value: str, expected: str) -> None:
    event = one(FMT.bind({}, METRICS_HEADER)(metric_row(Timestamp=value)))
    assert event.timestamp == at(expected)


@pytest.mark.parametrize(
    "columns",
    [
        ["event_id", "metric", "timestamp", "customer_id", "recipient", "delivery_id", "href"],
        ["eventId", "Metric", "time", "customerId", "email_address", "deliveryId", "linkUrl"],
        ["EVENT ID", "Event Type", "Occurred At", "Customer Id", "Email", "Message ID", "URL"],
        ["Event-ID", "metric", "Timestamp", "user_id", "Recipient", "Email ID", "Link URL"],
    ],
)
def test_metric_columns_are_matched_loosely(columns: list[str]) -> None:
    convert = FMT.bind({}, columns)
    values = ["e-1", "clicked", str(T0), "user-9", "kim@example.org", "D-9", "https://x.example"]
    event = one(convert(dict(zip(columns, values, strict=True))))
    assert (event.event_id, event.user_id, event.recipient) == ("e-1", "user-9", "kim@example.org")
    assert (event.email_id, event.link_url) == ("D-9", "https://x.example")


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Email Opened", EventName.OPENED),
        ("email_delivered", EventName.DELIVERED),
        ("Email Link Clicked", EventName.CLICKED),
        ("Email Marked as Spam", EventName.SPAM),
        ("BOUNCED", EventName.BOUNCED),
    ],
)
def test_metric_values_are_matched_loosely(value: str, name: EventName) -> None:
    assert one(FMT.bind({}, METRICS_HEADER)(metric_row(Metric=value))).name is name


def test_metric_rows_skip_like_webhooks() -> None:
    convert = FMT.bind({}, [*METRICS_HEADER, "Object Type"])
    assert convert(metric_row(Metric="Email Suppressed")) == Skip(
        "suppressed before sending: suppressed"
    )
    assert convert({**metric_row(), "Object Type": "sms"}) == Skip("channel is not email: sms")
    assert convert({**metric_row(Metric="unsubscribed"), "Object Type": "customer"}) == Skip(
        "person-level subscription change: unsubscribed"
    )


def test_metric_rows_read_a_machine_flag_column() -> None:
    convert = FMT.bind({}, [*METRICS_HEADER, "Prefetched"])
    assert one(convert({**metric_row(Metric="opened"), "Prefetched": "true"})).machine_open
    assert not one(convert({**metric_row(Metric="opened"), "Prefetched": "false"})).machine_open


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({**metric_row(), None: ["surprise"]}, "ragged row: more fields than the header"),
        ({**metric_row(), "Failure Message": None}, "ragged row: fewer fields than the header"),
        (metric_row(Metric=""), "no event type"),
        (metric_row(Metric="Email Surveyed", Timestamp=""), "unknown event type: surveyed"),
        (metric_row(Timestamp=""), "missing timestamp"),
        (metric_row(Customer_ID="", Recipient=""), "no recipient and no user id"),
    ],
)
def test_metric_rows_that_cannot_be_read_are_rejected(row: dict[Any, Any], reason: str) -> None:
    assert rejected(FMT.bind({}, METRICS_HEADER), row) == reason


def test_metric_rows_fall_back_to_the_recipient_alone() -> None:
    event = one(FMT.bind({}, METRICS_HEADER)(metric_row(Customer_ID="")))
    assert (event.user_id, event.recipient) == (None, "ana.silva@example.com")


@pytest.mark.parametrize(
    ("columns", "missing"),
    [
        (["Metric", "Customer ID"], "missing timestamp"),
        (["Metric", "Timestamp", "Subject"], "missing recipient (email) or customer_id"),
        (
            ["Name", "Notes"],
            "missing metric (one row per event) or one time column per metric such as "
            "delivered_at; recipient (email) or customer_id",
        ),
    ],
)
def test_columns_that_cannot_be_understood_raise_format_error(
    columns: list[str], missing: str
) -> None:
    with pytest.raises(FormatError) as caught:
        FMT.bind({}, columns)
    message = str(caught.value)
    assert (
        message == f"Customer.io CSV columns not understood: found {', '.join(columns)}; {missing}"
    )
    assert "\n" not in message


def test_flat_json_metric_records_read_like_metric_rows() -> None:
    record = {
        "delivery_id": "RPILAgFLAT",
        "metric": "bounced",
        "recipient": "ben.okafor@example.com",
        "reason": "550 5.1.1 User unknown",
        "timestamp": T0,
    }
    event = one(FMT.convert(record))
    assert (event.name, event.email_id) == (EventName.BOUNCED, "RPILAgFLAT")
    assert event.properties == {"reason": "550 5.1.1 User unknown"}


# --- event keys ----------------------------------------------------------------------------


def test_webhook_events_are_keyed_by_customerio_event_id() -> None:
    assert one(FMT.convert(webhook("opened"))).key() == "customerio:01JWX2PJT1JAH83JCV1DNRYMBF"


def test_records_without_an_event_id_get_a_composite_key() -> None:
    event = one(FMT.convert(message({"opened": T0})))
    assert event.event_id is None
    assert event.key() == f"customerio|RPILAgMSG1|Email Opened|chloe@example.org|{T0 * 1000}||"


def test_the_same_open_in_a_messages_record_and_a_delivery_row_has_one_key() -> None:
    from_api = events_of(FMT.convert(message({"opened": T0, "human_opened": T0})))
    columns = ["Delivery ID", "Recipient", "opened_at", "human_opened_at"]
    row = dict(
        zip(columns, ["RPILAgMSG1", "Chloe@Example.org", "2025-06-04T09:00:05Z", ""], strict=True)
    )
    from_csv = events_of(FMT.bind({}, columns)(row))
    assert [e.key() for e in from_api] == [e.key() for e in from_csv]


def test_the_shared_delivery_in_two_sample_exports_has_the_same_keys() -> None:
    from_messages = [e for e in _sample_events("customerio_messages.jsonl")]
    from_csv = [e for e in _sample_events("customerio_deliveries.csv")]
    keys_api = sorted(e.key() for e in from_messages if e.email_id == SHARED_DELIVERY)
    keys_csv = sorted(e.key() for e in from_csv if e.email_id == SHARED_DELIVERY)
    assert len(keys_api) == 2
    assert keys_api == keys_csv


# --- mapping table -------------------------------------------------------------------------


def test_the_mapping_table_covers_every_event_and_skip() -> None:
    rows = FMT.mapping_table()
    outcomes = {row.outcome for row in rows}
    assert {name.value for name in EventName} <= outcomes
    assert all(o in {n.value for n in EventName} or o.startswith("skipped: ") for o in outcomes)
    values = " ".join(row.value for row in rows)
    for known in ("human_opened", "dropped", "sent", "email_opened", "customer_unsubscribed"):
        assert known in values
    # An unknown metric is rejected, so no row maps "any other metric" to a skip.
    assert not any("unknown event type" in o for o in outcomes)


# --- golden tests over the sample exports --------------------------------------------------

SKIP_CATEGORIES = {
    "not an email event",
    "suppressed before sending",
    "channel is not email",
    "person-level subscription change",
    "second signal for the same open",
    "second signal for the same click",
    "deferral",
    "delivery has no metric times",
}


def _run(name: str) -> SampleRun:
    """The file converted as a run converts it: the project's reader, then the format."""
    path = SAMPLES / name
    records, columns = read_records(path)
    assert FMT.matches(first_data(records), columns)
    return convert_file(FMT, path)


def _sample_events(name: str) -> list[EmailEvent]:
    return _run(name).events


def _summary(name: str) -> dict[str, Any]:
    run = _run(name)
    for skipped in run.skips:
        assert skipped.partition(": ")[0] in SKIP_CATEGORIES, skipped
    events = Counter(e.name.value + (" (machine)" if e.machine_open else "") for e in run.events)
    return {
        "records": run.items + run.unreadable,
        "events": dict(events),
        "skips": dict(run.skips),
        "rejects": dict(run.rejects),
        "unique keys": len({event.key() for event in run.events}),
    }


def test_golden_reporting_webhooks() -> None:
    assert _summary("customerio_reporting_webhooks.jsonl") == {
        "records": 37,  # 35 lines, one of them an array of three bodies
        "events": {
            "Email Delivered": 7,
            "Email Opened": 5,
            "Email Opened (machine)": 1,
            "Email Link Clicked": 4,
            "Email Bounced": 1,
            "Email Marked as Spam": 1,
            "Email Unsubscribed": 1,
        },
        "skips": {
            "not an email event: sent": 1,
            "not an email event: converted": 1,
            "not an email event: failed": 1,
            "not an email event: attempted": 1,
            "not an email event: undeliverable": 1,
            "second signal for the same open: human_opened": 1,
            "suppressed before sending: dropped": 1,
            "channel is not email: push": 2,
            "channel is not email: sms": 1,
            "person-level subscription change: unsubscribed": 2,
            "person-level subscription change: subscribed": 1,
            "person-level subscription change: cio_subscription_preferences_changed": 1,
        },
        "rejects": {
            "unreadable line: malformed JSON": 1,
            "missing timestamp": 1,
            "no recipient and no user id": 1,
        },
        "unique keys": 19,  # the retried delivery has its twin's event_id
    }


def test_golden_reporting_webhooks_details() -> None:
    found = _sample_events("customerio_reporting_webhooks.jsonl")
    future = [e for e in found if e.timestamp.year == 2099]
    assert len(future) == 1  # the pipeline, not the format, rejects future timestamps
    isla = [e for e in found if e.recipient == "isla.brown@example.com"]
    assert [e.name for e in isla] == [EventName.DELIVERED, EventName.OPENED, EventName.CLICKED]
    assert {e.user_id for e in isla} == {None}
    machine_click = [e for e in found if e.properties.get("machine_click")]
    assert [e.link_url for e in machine_click] == ["https://northwind.example.com/pricing"]


def test_golden_legacy_webhooks() -> None:
    assert _summary("customerio_webhooks_legacy.jsonl") == {
        "records": 22,
        "events": {
            "Email Delivered": 5,
            "Email Opened": 4,
            "Email Link Clicked": 2,
            "Email Bounced": 1,
            "Email Marked as Spam": 1,
            "Email Unsubscribed": 1,
        },
        "skips": {
            "not an email event: drafted": 1,
            "not an email event: sent": 1,
            "not an email event: converted": 1,
            "not an email event: failed": 1,
            "suppressed before sending: dropped": 1,
            "person-level subscription change: subscribed": 1,
            "person-level subscription change: unsubscribed": 1,
        },
        "rejects": {"no recipient and no user id": 1},
        "unique keys": 14,
    }


def test_golden_messages() -> None:
    assert _summary("customerio_messages.jsonl") == {
        "records": 22,  # 21 lines, one of them an App API page of two messages
        "events": {
            "Email Delivered": 14,
            "Email Opened": 9,
            "Email Opened (machine)": 3,
            "Email Link Clicked": 3,
            "Email Bounced": 1,
            "Email Marked as Spam": 1,
            "Email Unsubscribed": 1,
        },
        "skips": {
            "suppressed before sending: dropped": 1,
            "not an email event: sent": 1,
            "not an email event: drafted": 1,
            "not an email event: failed": 1,
            "channel is not email: push": 1,
        },
        "rejects": {
            "no recipient and no user id": 1,
            "unparseable timestamp: '2025-06-31T09:00:07Z'": 1,
        },
        "unique keys": 32,
    }


def test_golden_deliveries_csv() -> None:
    assert _summary("customerio_deliveries.csv") == {
        "records": 20,
        "events": {
            "Email Delivered": 13,
            "Email Opened": 8,
            "Email Opened (machine)": 3,
            "Email Link Clicked": 3,
            "Email Bounced": 1,
            "Email Marked as Spam": 1,
            "Email Unsubscribed": 2,
        },
        "skips": {
            "suppressed before sending: dropped": 2,
            "not an email event: sent": 1,
            "channel is not email: push": 1,
        },
        "rejects": {
            "no recipient and no user id": 1,
            "unparseable timestamp: 'n/a'": 1,
        },
        "unique keys": 31,
    }


def test_golden_metrics_csv() -> None:
    assert _summary("customerio_metrics.csv") == {
        "records": 24,
        "events": {
            "Email Delivered": 6,
            "Email Opened": 4,
            "Email Link Clicked": 3,
            "Email Bounced": 1,
            "Email Marked as Spam": 1,
            "Email Unsubscribed": 1,
        },
        "skips": {
            "second signal for the same open: human_opened": 1,
            "second signal for the same open: prefetch_opened": 1,
            "not an email event: sent": 1,
            "not an email event: converted": 1,
            "suppressed before sending: dropped": 1,
        },
        "rejects": {
            "unreadable line: wrong number of fields": 1,
            "missing timestamp": 1,
            "recipient is not an email address: 'noah.kim(at)example.org'": 1,
        },
        "unique keys": 16,
    }


def test_golden_metrics_csv_details() -> None:
    found = {(e.name, e.recipient): e for e in _sample_events("customerio_metrics.csv")}
    jonas = found[(EventName.OPENED, "jonas.berg@example.com")]
    assert jonas.properties["email_subject"] == "Your July invoice\nis ready"
    ana = found[(EventName.OPENED, "ana.silva@example.com")]
    assert ana.timestamp == at("2025-07-02T09:15:00+00:00")
    ben = found[(EventName.DELIVERED, "ben.okafor@example.com")]
    assert ben.timestamp == at("2025-07-02T09:00:05+00:00")
    bounce = found[(EventName.BOUNCED, "dev.patel@example.com")]
    assert bounce.properties["reason"].startswith("550 5.1.1")
