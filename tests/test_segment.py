import uuid
from datetime import UTC, datetime

import orjson
import pytest

from emailsrc.events import EmailEvent, EventName, snake_case
from emailsrc.secrets import WriteKey
from emailsrc.segment import (
    CUSTOMERIO_DESTINATIONS,
    build_integrations,
    encode_payload,
    finish_body,
    message_id,
    message_namespace,
    track_payload,
)

WHEN = datetime(2025, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)


def click(**overrides: object) -> EmailEvent:
    fields: dict[str, object] = {
        "name": EventName.CLICKED,
        "timestamp": WHEN,
        "provider": "customerio",
        "recipient": "Ada@Example.com",
        "user_id": "user-1",
        "email_id": "dlv-1",
        "link_url": "https://example.com/a",
        "properties": {"email_subject": "Hi", "link_id": "7"},
    }
    fields.update(overrides)
    return EmailEvent(**fields)  # type: ignore[arg-type]


def test_track_payload_follows_the_email_spec() -> None:
    payload = track_payload(click())
    assert payload == {
        "type": "track",
        "event": "Email Link Clicked",
        "userId": "user-1",
        "timestamp": "2025-06-01T12:00:00.250Z",
        "properties": {
            "email_id": "dlv-1",
            "email_subject": "Hi",
            "link_id": "7",
            "link_url": "https://example.com/a",
            "provider": "customerio",
        },
        "context": {
            "library": {"name": "emailsrc", "version": payload["context"]["library"]["version"]},
            "traits": {"email": "Ada@Example.com"},
        },
    }


def test_anonymous_id_is_the_recipient_when_there_is_no_user_id() -> None:
    payload = track_payload(click(user_id=None, machine_open=True, name=EventName.OPENED))
    assert payload["anonymousId"] == "Ada@Example.com"
    assert "userId" not in payload
    assert payload["properties"]["machine_open"] is True
    assert "link_url" not in payload["properties"]


def test_message_ids_are_deterministic_per_source_and_differ_between_sources() -> None:
    key = click().key()
    first = message_namespace(WriteKey("key-one-abcdefgh"), None)
    again = message_namespace(WriteKey("key-one-abcdefgh"), None)
    other = message_namespace(WriteKey("key-two-abcdefgh"), None)
    assert message_id(first, key) == message_id(again, key)
    assert message_id(first, key) != message_id(other, key)
    assert uuid.UUID(message_id(first, key)).version == 5


@pytest.mark.parametrize("key", ["customerio:01JZ55TJG88XE6SZAEAVSNTCPM", "", "é|€|𝄞|ADA@x"])
def test_message_id_is_exactly_uuid5_of_the_key(key: str) -> None:
    # Computed without uuid.UUID for speed; it must stay the documented UUIDv5.
    namespace = message_namespace(WriteKey("key-one-abcdefgh"), None)
    assert message_id(namespace, key) == str(uuid.uuid5(namespace, key))


def test_id_namespace_overrides_the_write_key() -> None:
    named = message_namespace(WriteKey("key-one-abcdefgh"), "shared")
    assert named == message_namespace(WriteKey("key-two-abcdefgh"), "shared")
    explicit = "12345678-1234-5678-1234-567812345678"
    assert message_namespace(None, explicit) == uuid.UUID(explicit)


def test_event_key_uses_the_provider_event_id_or_a_composite() -> None:
    assert click(event_id="ev-9").key() == "customerio:ev-9"
    composite = click().key()
    assert "dlv-1" in composite and "ada@example.com" in composite
    assert click(recipient="ADA@example.COM").key() == composite


def test_finish_body_splices_without_reencoding() -> None:
    stored = encode_payload(track_payload(click()))
    body = finish_body(stored, "mid-1", orjson.dumps({"All": True}))
    decoded = orjson.loads(body)
    assert decoded["messageId"] == "mid-1"
    assert decoded["integrations"] == {"All": True}
    assert decoded["event"] == "Email Link Clicked"


def test_integrations_exclude_customerio_by_default() -> None:
    default = build_integrations([], [], None, keep_customerio=False)
    assert all(default[name] is False for name in CUSTOMERIO_DESTINATIONS)
    assert build_integrations([], [], None, keep_customerio=True) == {}


def test_only_and_exclude_destinations() -> None:
    only = build_integrations(["Amplitude"], ["Mixpanel"], None, keep_customerio=False)
    assert only["All"] is False and only["Amplitude"] is True and only["Mixpanel"] is False
    raw = build_integrations([], [], {"Customer.io": True}, keep_customerio=False)
    assert raw["Customer.io"] is True  # what the user wrote explicitly wins


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("campaignName", "campaign_name"),
        ("User ID", "custom_user_id"),
        ("id", "custom_id"),
        ("event", "custom_event"),
        ("9lives", "_9lives"),
        ("a-b.c", "a_b_c"),
    ],
)
def test_snake_case_avoids_reserved_columns(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def test_write_key_is_never_shown_whole() -> None:
    key = WriteKey("sk_live_abcdefghijklmnop")
    for text in (repr(key), str(key), key.masked, f"{key}"):
        assert "abcdefghijklmnop" not in text
    assert key.redact("key=sk_live_abcdefghijklmnop!") == f"key={key.masked}!"
    assert len(key.fingerprint) == 16
