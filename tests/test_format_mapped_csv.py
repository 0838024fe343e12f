"""The generic CSV format: a user-given column and event mapping."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from emailsrc.events import EmailEvent, EventName, RecordRejected, Skip
from emailsrc.formats import FormatError, all_formats, detect_format, get_format
from emailsrc.formats.mapped_csv import FIELDS, MappedCsvFormat, parse_assignments

SAMPLES = Path(__file__).resolve().parents[1] / "sample_exports"
COLUMNS = ["Kind", "When", "Email", "Uid", "Msg", "Link", "MPP", "List", "Why"]
FIELD_MAP = {
    "event": "Kind",
    "timestamp": "When",
    "recipient": "Email",
    "user_id": "Uid",
    "message_id": "Msg",
    "link_url": "Link",
    "machine_open": "MPP",
    "list_name": "List",
    "reason": "Why",
}
EVENT_MAP = {
    "deliv": "delivered",
    "open": "Email Opened",
    "click": "email_link_clicked",
    "unsub": "unsubscribed",
    "bounce": "Email Bounced",
}


def build(**overrides: str) -> MappedCsvFormat:
    return MappedCsvFormat.from_options({**FIELD_MAP, **overrides}, dict(EVENT_MAP))


def row(kind: str, **values: str) -> dict[str, str]:
    data = dict.fromkeys(COLUMNS, "")
    data.update(Kind=kind, When="2025-08-04T08:00:01Z", Email="nora@example.com", Msg="m-1")
    data.update(values)
    return data


def convert(fmt: MappedCsvFormat, data: Mapping[str, Any]) -> Any:
    return fmt.bind(data, COLUMNS)(data)


def one(fmt: MappedCsvFormat, data: Mapping[str, Any]) -> EmailEvent:
    result = convert(fmt, data)
    assert isinstance(result, list), result
    (event,) = result
    return event


# --- parse_assignments --------------------------------------------------------------------


def test_parse_assignments() -> None:
    items = ["event = Activity", "timestamp=Occurred At", "reason=a=b", "event=Kind"]
    assert parse_assignments(items, "--map") == {
        "event": "Kind",  # a later item overrides an earlier one
        "timestamp": "Occurred At",
        "reason": "a=b",  # split at the first "="
    }
    assert parse_assignments([], "--map") == {}


@pytest.mark.parametrize("item", ["event", "=Kind", "event=", " = "])
def test_parse_assignments_rejects_malformed_items(item: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_assignments([item], "--event-map")
    message = str(caught.value)
    assert message == f"--event-map expects NAME=VALUE, got {item!r}"
    assert "\n" not in message


# --- from_options -------------------------------------------------------------------------


def test_from_options_builds_the_mapping() -> None:
    fmt = build()
    assert fmt.name == "mapped-csv"
    assert fmt.provider == "csv"
    assert dict(fmt.field_map) == FIELD_MAP
    assert dict(fmt.event_map) == {
        "deliv": EventName.DELIVERED,
        "open": EventName.OPENED,
        "click": EventName.CLICKED,
        "unsub": EventName.UNSUBSCRIBED,
        "bounce": EventName.BOUNCED,
    }


def test_provider_is_a_constant_name() -> None:
    fmt = build(provider="legacy-esp")
    assert fmt.provider == "legacy-esp"
    assert "provider" not in fmt.field_map
    event = one(fmt, row("deliv"))
    assert event.provider == "legacy-esp"
    assert "provider" not in event.properties


@pytest.mark.parametrize("provider", ["", "two words", "a:b", "x|y"])
def test_provider_must_be_a_plain_token(provider: str) -> None:
    with pytest.raises(ValueError, match="provider name"):
        build(provider=provider)


def test_unknown_field_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as caught:
        MappedCsvFormat.from_options({**FIELD_MAP, "email": "E", "when": "W"}, EVENT_MAP)
    message = str(caught.value)
    assert message.startswith("unknown field(s) for --map: email, when; valid fields: event, ")
    for field in FIELDS:
        assert field in message


@pytest.mark.parametrize(
    ("drop", "missing"),
    [
        (("event",), "event"),
        (("timestamp",), "timestamp"),
        (("recipient", "user_id"), "recipient or user_id"),
        (("event", "timestamp"), "event, timestamp"),
    ],
)
def test_required_fields(drop: tuple[str, ...], missing: str) -> None:
    fields = {key: value for key, value in FIELD_MAP.items() if key not in drop}
    with pytest.raises(ValueError) as caught:
        MappedCsvFormat.from_options(fields, EVENT_MAP)
    assert str(caught.value) == f"mapped-csv needs --map for: {missing} (e.g. --map event=COLUMN)"


def test_user_id_alone_is_enough_identity() -> None:
    fields = {key: value for key, value in FIELD_MAP.items() if key != "recipient"}
    fmt = MappedCsvFormat.from_options(fields, EVENT_MAP)
    event = one(fmt, row("deliv", Uid="c-1"))
    assert (event.recipient, event.user_id) == (None, "c-1")


def test_event_names_are_loose() -> None:
    events = {"a": "opened", "b": "Email Opened", "c": "email_opened", "d": "OPENED"}
    fmt = MappedCsvFormat.from_options(FIELD_MAP, events)
    assert set(fmt.event_map.values()) == {EventName.OPENED}


def test_event_mapped_to_something_else_is_an_error() -> None:
    with pytest.raises(ValueError) as caught:
        MappedCsvFormat.from_options(FIELD_MAP, {"Sent": "sent"})
    message = str(caught.value)
    assert message.startswith("--event-map Sent=sent: 'sent' is not one of the six events (")
    assert "Email Marked as Spam" in message


def test_event_map_is_required() -> None:
    with pytest.raises(ValueError, match="at least one --event-map VALUE=EVENT"):
        MappedCsvFormat.from_options(FIELD_MAP, {})


def test_the_same_value_mapped_two_ways_is_an_error() -> None:
    with pytest.raises(ValueError, match="to different events"):
        MappedCsvFormat.from_options(FIELD_MAP, {"Open": "opened", "open ": "clicked"})
    same = MappedCsvFormat.from_options(FIELD_MAP, {"Open": "opened", "OPEN": "Email Opened"})
    assert one(same, row("open")).name is EventName.OPENED


# --- mapping file -------------------------------------------------------------------------


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "mapping.toml"
    path.write_text(body, encoding="utf-8")
    return path


MAPPING_FILE = """
[fields]
event = "Kind"
timestamp = "When"
recipient = "Email"
message_id = "Msg"
provider = "from-file"

[events]
deliv = "delivered"
open = "opened"
"""


def test_mapping_file(tmp_path: Path) -> None:
    fmt = MappedCsvFormat.from_options({}, {}, write(tmp_path, MAPPING_FILE))
    assert fmt.provider == "from-file"
    assert fmt.field_map["event"] == "Kind"
    assert dict(fmt.event_map) == {"deliv": EventName.DELIVERED, "open": EventName.OPENED}


def test_options_override_the_mapping_file(tmp_path: Path) -> None:
    fmt = MappedCsvFormat.from_options(
        {"recipient": "Mail", "provider": "cli"},
        {"open": "clicked", "bounce": "bounced"},
        write(tmp_path, MAPPING_FILE),
    )
    assert fmt.field_map["recipient"] == "Mail"
    assert fmt.field_map["event"] == "Kind"  # from the file
    assert fmt.provider == "cli"
    assert dict(fmt.event_map) == {
        "deliv": EventName.DELIVERED,
        "open": EventName.CLICKED,
        "bounce": EventName.BOUNCED,
    }


def test_mapping_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mapping file not found: "):
        MappedCsvFormat.from_options({}, {}, tmp_path / "nope.toml")
    with pytest.raises(ValueError, match=r"mapping file .*mapping\.toml: ") as caught:
        MappedCsvFormat.from_options({}, {}, write(tmp_path, "[fields\nevent = 1"))
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match=r"unknown table\(s\) columns; expected \[fields\]"):
        MappedCsvFormat.from_options({}, {}, write(tmp_path, '[columns]\nevent = "Kind"'))
    with pytest.raises(ValueError, match=r"\[fields\] event must be a non-empty string"):
        MappedCsvFormat.from_options({}, {}, write(tmp_path, "[fields]\nevent = 3"))
    with pytest.raises(ValueError, match=r"\[events\] must be a table"):
        MappedCsvFormat.from_options({}, {}, write(tmp_path, 'events = "x"'))
    with pytest.raises(ValueError, match="unknown field"):
        MappedCsvFormat.from_options({}, {}, write(tmp_path, '[fields]\ncolour = "C"'))


# --- bind ---------------------------------------------------------------------------------


def test_bind_names_missing_columns_and_the_columns_found() -> None:
    fmt = build(subject="Subject Line")
    with pytest.raises(FormatError) as caught:
        fmt.bind(row("deliv"), COLUMNS)
    message = str(caught.value)
    assert message.startswith("mapped-csv: column(s) not in the file: subject=Subject Line;")
    assert "columns found: 'Kind', 'When', 'Email'" in message


def test_bind_matches_columns_ignoring_case_spaces_and_bom() -> None:
    columns = ["\ufeffkind", "WHEN", " email ", "Msg"]
    fields = {"event": "Kind", "timestamp": "When", "recipient": "Email", "message_id": "Msg"}
    fmt = MappedCsvFormat.from_options(fields, {"deliv": "delivered"})
    data = {"\ufeffkind": "deliv", "WHEN": "1754294401", " email ": "a@example.com", "Msg": "m"}
    (event,) = fmt.bind(data, columns)(data)
    assert (event.name, event.recipient, event.email_id) == (
        EventName.DELIVERED,
        "a@example.com",
        "m",
    )


def test_bind_uses_the_record_keys_for_json_input() -> None:
    fields = {"event": "kind", "timestamp": "ts", "recipient": "to"}
    fmt = MappedCsvFormat.from_options(fields, {"deliv": "delivered"})
    data = {"kind": "deliv", "ts": 1754294401, "to": "a@example.com"}
    (event,) = fmt.bind(data, None)(data)
    assert event.timestamp == datetime(2025, 8, 4, 8, 0, 1, tzinfo=UTC)
    with pytest.raises(FormatError, match="recipient=to"):
        fmt.bind({"kind": "deliv", "ts": 1}, None)


def test_the_registered_instance_needs_a_mapping() -> None:
    registered = get_format("mapped-csv")
    assert isinstance(registered, MappedCsvFormat)
    with pytest.raises(FormatError, match="needs a column mapping"):
        registered.bind({"a": "b"}, ["a"])


# --- convert ------------------------------------------------------------------------------


def test_delivered_fields() -> None:
    fmt = build(event_id="Msg", subject="Why")
    event = one(fmt, row("deliv", Uid="c-1", Why="Hello"))
    assert event == EmailEvent(
        name=EventName.DELIVERED,
        timestamp=datetime(2025, 8, 4, 8, 0, 1, tzinfo=UTC),
        provider="csv",
        recipient="nora@example.com",
        user_id="c-1",
        email_id="m-1",
        event_id="m-1",
        properties={"email_subject": "Hello", "reason": "Hello"},
    )
    assert event.key() == "csv:m-1"


def test_unmapped_values_are_skipped_with_their_value() -> None:
    result = convert(build(), row("Forwarded"))
    assert result == Skip("unmapped event value: Forwarded")


def test_event_values_match_without_case_or_spaces() -> None:
    assert one(build(), row("  DELIV ")).name is EventName.DELIVERED


def test_empty_event_value_is_rejected() -> None:
    with pytest.raises(RecordRejected, match=r"^no event type$"):
        convert(build(), row(""))


@pytest.mark.parametrize(
    ("flag", "machine"),
    [("true", True), ("1", True), ("yes", True), ("TRUE", True), ("false", False), ("", False)],
)
def test_machine_opens(flag: str, machine: bool) -> None:
    assert one(build(), row("open", MPP=flag)).machine_open is machine


def test_machine_flag_only_on_opens_and_link_only_on_clicks() -> None:
    delivered = one(build(), row("deliv", MPP="true", Link="https://x.example.com/"))
    assert (delivered.machine_open, delivered.link_url) == (False, None)
    clicked = one(build(link_id="Why"), row("click", Link="https://x.example.com/", Why="cta"))
    assert clicked.link_url == "https://x.example.com/"
    assert clicked.properties["link_id"] == "cta"
    assert "link_url" not in clicked.properties


def test_list_fields_only_on_unsubscribes() -> None:
    fmt = build(list_id="Msg")
    unsub = one(fmt, row("unsub", List="Monthly digest"))
    assert unsub.properties["list_name"] == "Monthly digest"
    assert unsub.properties["list_id"] == "m-1"
    assert "list_name" not in one(fmt, row("deliv", List="Monthly digest")).properties


def test_bounce_reason() -> None:
    event = one(build(), row("bounce", Why="550 5.1.1 unknown user"))
    assert event.properties == {"reason": "550 5.1.1 unknown user"}


def test_rejections() -> None:
    with pytest.raises(RecordRejected, match="no recipient and no user id"):
        convert(build(), row("deliv", Email=""))
    with pytest.raises(RecordRejected, match="missing timestamp"):
        convert(build(), row("deliv", When=""))
    with pytest.raises(RecordRejected, match="unparseable timestamp"):
        convert(build(), row("deliv", When="tomorrow-ish"))
    with pytest.raises(RecordRejected, match="not an email address"):
        convert(build(), row("deliv", Email="nobody"))


def test_convert_without_bind_uses_exact_column_names() -> None:
    (event,) = build().convert(row("deliv"))
    assert event.name is EventName.DELIVERED


# --- registry -----------------------------------------------------------------------------


def test_listed_but_never_detected() -> None:
    fmt = build()
    assert fmt.detectable is False
    assert not fmt.matches(row("deliv"), COLUMNS)
    assert "mapped-csv" in [found.name for found in all_formats()]
    found = detect_format(row("deliv"), COLUMNS)
    assert found is None or found.name != "mapped-csv"


def test_mapping_table() -> None:
    table = [(item.value, item.outcome) for item in build().mapping_table()]
    assert ("open", "Email Opened") in table
    assert table[-1] == ("any other value", "skipped: unmapped event value")
    assert get_format("mapped-csv").mapping_table()


# --- golden sample ------------------------------------------------------------------------


def test_golden_sample() -> None:
    fmt = MappedCsvFormat.from_options({}, {}, SAMPLES / "generic_mapping.toml")
    with (SAMPLES / "generic_events.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        converter = fmt.bind(rows[0], reader.fieldnames)
    found: list[EmailEvent] = []
    skips: Counter[str] = Counter()
    rejects: Counter[str] = Counter()
    for data in rows:
        try:
            result = converter(data)
        except RecordRejected as exc:
            rejects[exc.reason.split(":")[0]] += 1
            continue
        if isinstance(result, Skip):
            skips[result.reason] += 1
        else:
            found.extend(result)
    assert len(rows) == 17
    assert Counter(event.name.value for event in found) == {
        "Email Delivered": 2,
        "Email Opened": 3,
        "Email Link Clicked": 3,
        "Email Bounced": 1,
        "Email Marked as Spam": 1,
        "Email Unsubscribed": 1,
    }
    assert len({event.key() for event in found}) == 10  # act-0005 appears twice
    assert skips == {
        "unmapped event value: Sent": 1,
        "unmapped event value: Deferred": 1,
        "unmapped event value: Forwarded": 1,
    }
    assert rejects == {
        "missing timestamp": 1,
        "no recipient and no user id": 1,
        "recipient is not an email address": 1,
    }
    assert {event.provider for event in found} == {"inhouse-mailer"}

    machine = next(event for event in found if event.machine_open)
    assert machine == EmailEvent(
        name=EventName.OPENED,
        timestamp=datetime(2025, 8, 4, 8, 0, 9, tzinfo=UTC),
        provider="inhouse-mailer",
        recipient="nora@example.com",
        user_id="c-5001",
        email_id="msg-70001",
        event_id="act-0003",
        machine_open=True,
        properties={
            "email_subject": "August digest",
            "campaign_id": "cmp-88",
            "campaign_name": "August digest 2025",
        },
    )
    unsub = next(event for event in found if event.name is EventName.UNSUBSCRIBED)
    assert unsub == EmailEvent(
        name=EventName.UNSUBSCRIBED,
        timestamp=datetime(2025, 8, 5, 12, 30, tzinfo=UTC),
        provider="inhouse-mailer",
        recipient="rosa@example.com",
        user_id="c-5005",
        email_id="msg-70005",
        event_id="act-0010",
        properties={
            "email_subject": "August digest",
            "campaign_id": "cmp-88",
            "campaign_name": "August digest 2025",
            "list_id": "lst-3",
            "list_name": "Monthly digest",
        },
    )
    offset = next(event for event in found if event.recipient == "omar@example.com")
    assert offset.timestamp == datetime(2025, 8, 4, 6, 0, 3, tzinfo=UTC)
