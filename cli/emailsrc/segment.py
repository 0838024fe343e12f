"""How an EmailEvent becomes a Segment Track call: identity, messageId, payload bytes."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import orjson

from . import __version__
from .events import EmailEvent, EventName
from .secrets import WriteKey
from .timestamps import format_timestamp

LIBRARY = {"name": "emailsrc", "version": __version__}

# Segment's documented limits; Segment answers 200 and silently drops what breaks them.
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 475_000  # under the 500 KB request limit, with room for the envelope
MAX_BATCH_EVENTS = 2_500

# Names the Customer.io destinations answer to in the integrations object (classic and
# Actions, with the aliases Segment's catalog lists). Backfilled email events reaching them
# could trigger campaigns a second time.
CUSTOMERIO_DESTINATIONS = (
    "Customer.io",
    "Customer.io (Actions)",
    "Actions Customerio",
    "Customer.io Actions",
)

_BASE_NAMESPACE = uuid.UUID("6c1e4c55-3f0b-5d6a-9a57-2b9f5e0d1a7e")
DRY_RUN_NAMESPACE_LABEL = "no write key (dry run): messageIds will differ from a real run"


def message_namespace(write_key: WriteKey | None, override: str | None) -> uuid.UUID:
    """The UUIDv5 namespace: --id-namespace, else a fingerprint of the write key.

    Segment's duplicate filter is global across sources, so two sources must never share
    messageIds; the same source must always get the same ones.
    """
    if override:
        try:
            return uuid.UUID(override)
        except ValueError:
            return uuid.uuid5(_BASE_NAMESPACE, "namespace:" + override)
    if write_key is not None:
        return uuid.uuid5(_BASE_NAMESPACE, "source:" + write_key.fingerprint)
    return uuid.uuid5(_BASE_NAMESPACE, "dry-run")


def message_id(namespace: uuid.UUID, key: str) -> str:
    """str(uuid.uuid5(namespace, key)), without building a UUID object: once per event,
    UUID's pure-Python constructor and __str__ cost more than the SHA-1 itself."""
    digest = bytearray(hashlib.sha1(namespace.bytes + key.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def track_payload(event: EmailEvent) -> dict[str, Any]:
    """The Track call for an event, without messageId and integrations (per destination)."""
    properties: dict[str, Any] = {}
    if event.email_id:
        properties["email_id"] = event.email_id
    properties.update(event.properties)
    if event.link_url and event.name is EventName.CLICKED:
        properties["link_url"] = event.link_url
    if event.machine_open:
        properties["machine_open"] = True
    properties["provider"] = event.provider
    payload: dict[str, Any] = {"type": "track", "event": event.name.value}
    if event.user_id:
        payload["userId"] = event.user_id
    else:
        payload["anonymousId"] = event.recipient
    payload["timestamp"] = format_timestamp(event.timestamp)
    payload["properties"] = properties
    context: dict[str, Any] = {"library": LIBRARY}
    if event.recipient:
        context["traits"] = {"email": event.recipient}
    payload["context"] = context
    return payload


def encode_payload(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)


def finish_body(stored: bytes, message_id_value: str, integrations_json: bytes) -> bytes:
    """Splice messageId and integrations into a stored payload without re-encoding it."""
    return b"".join(
        (
            stored[:-1],
            b',"messageId":"',
            message_id_value.encode(),
            b'","integrations":',
            integrations_json,
            b"}",
        )
    )


def build_integrations(
    only: list[str], exclude: list[str], raw: dict[str, Any] | None, keep_customerio: bool
) -> dict[str, Any]:
    """The integrations object: --integrations JSON, then --only-destination, then
    --exclude-destination, and Customer.io off unless asked to keep it."""
    integrations: dict[str, Any] = dict(raw or {})
    if only:
        integrations["All"] = False
        for name in only:
            integrations[name] = True
    for name in exclude:
        integrations[name] = False
    if not keep_customerio:
        for name in CUSTOMERIO_DESTINATIONS:
            if not (only and name in only) and name not in (raw or {}):
                integrations[name] = False
    return integrations
