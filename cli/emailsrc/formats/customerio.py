"""Customer.io: reporting webhooks, legacy webhooks, message records and CSV exports.

Four shapes, told apart by their content:

1. reporting-webhook bodies: `metric` + `object_type` + `data` (one event each);
2. the older webhook format: `event_type` such as `email_opened` + `data`;
3. message (delivery) records, as the App API's GET /v1/messages returns them: a `metrics`
   map of per-metric times, one record giving one event per metric that matters. The CSV
   form has one row per delivery and one time column per metric (`delivered_at`, ...);
4. CSV with one row per metric event (`metric`, `timestamp`, `delivery_id`, ...).

Decisions where Customer.io's documents leave room:

- userId is the person's `id` (`identifiers.id`, else the deprecated `customer_id`), never
  `cio_id`: that one is Customer.io's internal key, unknown to every other system, and a
  person with only a `cio_id` left has usually been deleted; it stays a property instead.
- The recipient is the address the message went to (`recipient` / `email_address`) before
  the profile's current `identifiers.email`, which may have changed since.
- An open is a machine open when Customer.io says it was prefetched (the webhook's
  `data.prefetched`, or a metrics map whose only open signal is `prefetch_opened`); a
  `proxied` open alone is a person reading through a privacy proxy.
- A `synthetic` open (inferred from a click) is still the one open of that email.
- A metric this module does not know is skipped, not rejected: Customer.io adds metrics
  over time and a new one must not fail a backfill. The summary still shows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache, partial
from typing import Any

from ..events import EmailEvent, EventName, RecordRejected, Skip
from ..timestamps import parse_timestamp
from .base import (
    Conversion,
    Converter,
    Format,
    FormatError,
    MappingRow,
    clean_email,
    compact,
    require_identity,
    text,
)

PROVIDER = "customerio"

EVENT_FOR_METRIC: Mapping[str, EventName] = {
    "delivered": EventName.DELIVERED,
    "opened": EventName.OPENED,
    "clicked": EventName.CLICKED,
    "unsubscribed": EventName.UNSUBSCRIBED,
    "bounced": EventName.BOUNCED,
    "spammed": EventName.SPAM,
}
# Customer.io records every open as `opened` and classifies it again as human or prefetch;
# the classification is a second signal of the same open, not another open. Same for clicks.
OPEN_SIGNALS = ("opened", "human_opened", "prefetch_opened")
CLICK_SIGNALS = ("clicked", "human_clicked", "prefetch_clicked")
SUPPRESSED = ("dropped", "suppressed")
NOT_EMAIL_EVENTS = (
    "created",
    "drafted",
    "attempted",
    "sent",
    "deferred",
    "converted",
    "failed",
    "undeliverable",
)
PERSON_LEVEL = ("subscribed", "unsubscribed", "cio_subscription_preferences_changed")
# These two never concern one delivery; `unsubscribed` does when a delivery caused it.
_PERSON_ONLY = ("subscribed", "cio_subscription_preferences_changed")
OTHER_CHANNELS = ("push", "sms", "in_app", "webhook", "slack", "whatsapp")
KNOWN_METRICS = frozenset(
    (
        *EVENT_FOR_METRIC,
        *OPEN_SIGNALS,
        *CLICK_SIGNALS,
        *SUPPRESSED,
        *NOT_EMAIL_EVENTS,
        *PERSON_LEVEL,
    )
)

# Older `event_type` values are "<channel>_<metric>"; in_app first, it holds an underscore.
_LEGACY_CHANNELS = ("in_app", "email", "customer", *OTHER_CHANNELS)
# Customer.io's own semantic event names ("Email Link Clicked"...) reduce to these.
_METRIC_SPELLINGS = {"link_clicked": "clicked", "marked_as_spam": "spammed"}
_TRUTHY = frozenset({"true", "1", "yes", "y", "t"})
_SHOWN_KEYS = 8


@dataclass(slots=True)
class _Record:
    """One record's fields, whatever shape it came in; ids are text, recipient unchecked."""

    metric: str | None = None
    timestamp: object = None
    channel: str | None = None
    event_id: str | None = None
    delivery_id: str | None = None
    user_id: str | None = None
    cio_id: str | None = None
    recipient: str | None = None
    subject: str | None = None
    campaign_id: str | None = None
    campaign_name: str | None = None
    broadcast_id: str | None = None
    newsletter_id: str | None = None
    action_id: str | None = None
    parent_action_id: str | None = None
    content_id: str | None = None
    journey_id: str | None = None
    trigger_event_id: str | None = None
    transactional_message_id: str | None = None
    template_id: str | None = None
    href: str | None = None
    link_id: str | None = None
    failure_message: str | None = None
    list_id: str | None = None
    list_name: str | None = None
    machine: bool = False


# Properties every event of a record carries besides the subject; all are Customer.io ids
# or names, none collides with Segment's reserved columns.
_SHARED_PROPERTIES = (
    "campaign_id",
    "campaign_name",
    "broadcast_id",
    "newsletter_id",
    "action_id",
    "parent_action_id",
    "content_id",
    "journey_id",
    "trigger_event_id",
    "transactional_message_id",
    "template_id",
    "cio_id",
)

# CSV headers (and flat JSON keys) are compared lower-cased with everything but letters and
# digits removed, so "Delivery ID", "deliveryId" and "delivery_id" are one name.
_EVENT_ALIASES: Mapping[str, tuple[str, ...]] = {
    "metric": ("metric", "metricname", "event", "eventtype", "eventname"),
    "timestamp": (
        "timestamp",
        "time",
        "eventtime",
        "eventtimestamp",
        "occurredat",
        "datetime",
        "date",
        "createdat",
    ),
    "channel": ("objecttype", "channel", "type", "messagetype", "deliverytype"),
    "event_id": ("eventid", "cioeventid"),
    "delivery_id": ("deliveryid", "ciodeliveryid", "messageid", "emailid"),
    "user_id": ("customerid", "identifiersid", "customeridentifiersid", "userid", "personid"),
    "cio_id": ("cioid", "identifierscioid", "customeridentifierscioid"),
    "recipient": (
        "recipient",
        "emailaddress",
        "email",
        "recipientemail",
        "to",
        "identifiersemail",
        "customeridentifiersemail",
    ),
    "subject": ("subject", "emailsubject", "messagesubject"),
    "campaign_id": ("campaignid",),
    "campaign_name": ("campaignname", "campaign"),
    "broadcast_id": ("broadcastid",),
    "newsletter_id": ("newsletterid",),
    "action_id": ("actionid",),
    "parent_action_id": ("parentactionid",),
    "content_id": ("contentid",),
    "journey_id": ("journeyid", "workflowid"),
    "trigger_event_id": ("triggereventid",),
    "transactional_message_id": ("transactionalmessageid", "transactionalid"),
    "template_id": ("templateid", "messagetemplateid"),
    "href": ("linkurl", "href", "url", "link", "clickedurl"),
    "link_id": ("linkid",),
    "failure_message": ("failuremessage", "failurereason", "reason", "bouncereason", "error"),
    "list_id": ("listid",),
    "list_name": ("listname",),
    "machine": ("prefetched", "machine", "machineopen", "ismachine"),
}

# A delivery row has no metric/timestamp columns: its times are one column per metric.
_DELIVERY_ALIASES: Mapping[str, tuple[str, ...]] = {
    **{k: v for k, v in _EVENT_ALIASES.items() if k not in ("metric", "timestamp", "machine")},
    "delivery_id": (*_EVENT_ALIASES["delivery_id"], "id"),
}
_TIME_SUFFIXES = ("", "at", "time", "timestamp", "date")
_TIME_METRICS = tuple(m for m in sorted(KNOWN_METRICS) if m not in _PERSON_ONLY)
_IDENTITY_FIELDS = ("recipient", "user_id")
_SIGNATURE_COLUMNS = frozenset({"deliveryid", "customerid", "cioid"})


class CustomerIO(Format):
    name = "customerio"
    title = "Customer.io"
    detection = (
        "JSON: reporting webhooks (metric + object_type + data), legacy webhooks (event_type "
        "like email_opened + data), App API messages (a metrics map); CSV: a metric column "
        "(one row per event) or one time column per metric (one row per delivery), with "
        "delivery or customer ids"
    )

    def matches(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> bool:
        if columns is not None:
            return _csv_signature(columns)
        if isinstance(sample, list):
            return bool(sample) and isinstance(sample[0], Mapping) and _json_signature(sample[0])
        page = sample.get("messages")
        if isinstance(page, list) and page and isinstance(page[0], Mapping):
            return _json_signature(page[0])
        return _json_signature(sample)

    def explode(self, data: Mapping[str, Any] | Sequence[Any]) -> Iterator[Any]:
        # A line may hold a JSON array of webhook bodies, or an App API page of messages.
        if isinstance(data, list):
            yield from data
            return
        page = data.get("messages")
        if isinstance(page, list) and "metrics" not in data:
            yield from page
            return
        yield data

    def bind(self, sample: Mapping[str, Any], columns: Sequence[str] | None) -> Converter:
        if columns is None:
            return self.convert
        return _bind_csv(tuple(columns))

    def convert(self, data: Mapping[str, Any]) -> Conversion:
        if not isinstance(data, Mapping):
            raise RecordRejected("unknown record shape: not a JSON object")
        if isinstance(data.get("metrics"), Mapping):
            return _convert_message(data)
        if "metric" in data and ("object_type" in data or isinstance(data.get("data"), Mapping)):
            return _convert_webhook(data)
        if isinstance(data.get("event_type"), str) and isinstance(data.get("data"), Mapping):
            return _convert_legacy(data)
        if "metric" in data:
            return _convert_flat(data)
        raise RecordRejected(f"unknown record shape: keys {_show_keys(data)}")

    def mapping_table(self) -> list[MappingRow]:
        return [*_metric_rows(), *_legacy_rows()]


# --- detection -----------------------------------------------------------------------------


def _json_signature(sample: Mapping[str, Any]) -> bool:
    data = sample.get("data")
    if isinstance(sample.get("metric"), str) and isinstance(data, Mapping):
        return "event_id" in sample or "object_type" in sample
    if isinstance(sample.get("event_type"), str) and isinstance(data, Mapping):
        return _is_legacy_type(sample["event_type"]) and (
            "email_id" in data or "customer_id" in data
        )
    if isinstance(sample.get("metrics"), Mapping):
        has_id = "id" in sample or "delivery_id" in sample
        return has_id and any(k in sample for k in ("customer_identifiers", "customer_id"))
    return isinstance(sample.get("metric"), str) and "delivery_id" in sample


def _is_legacy_type(event_type: str) -> bool:
    return any(event_type.startswith(f"{channel}_") for channel in _LEGACY_CHANNELS)


def _csv_signature(columns: Sequence[str]) -> bool:
    names = {_loose(c) for c in columns if isinstance(c, str)}
    if not names & _SIGNATURE_COLUMNS:
        return False
    if names & set(_EVENT_ALIASES["metric"]):
        return True
    return len(_map_metric_times(tuple(columns))) >= 2


# --- CSV binding ---------------------------------------------------------------------------


def _bind_csv(columns: tuple[str, ...]) -> Converter:
    by_field = _map_columns(columns, "event")
    if "metric" in by_field:
        _require(columns, by_field, need_timestamp=True)
        return partial(_convert_event_row, by_field)
    times = _map_metric_times(columns)
    by_field = _map_columns(columns, "delivery")
    if times:
        _require(columns, by_field, need_timestamp=False)
        return partial(_convert_delivery_row, by_field, times)
    missing = ["metric (one row per event) or one time column per metric such as delivered_at"]
    raise FormatError(_columns_message(columns, missing + _missing_identity(by_field)))


def _require(
    columns: tuple[str, ...], by_field: Mapping[str, str], *, need_timestamp: bool
) -> None:
    missing = _missing_identity(by_field)
    if need_timestamp and "timestamp" not in by_field:
        missing.insert(0, "timestamp")
    if missing:
        raise FormatError(_columns_message(columns, missing))


def _missing_identity(by_field: Mapping[str, str]) -> list[str]:
    if any(f in by_field for f in _IDENTITY_FIELDS):
        return []
    return ["recipient (email) or customer_id"]


def _columns_message(columns: Sequence[str], missing: Sequence[str]) -> str:
    found = ", ".join(str(c) for c in columns[:30]) or "(none)"
    if len(columns) > 30:
        found += f", ... ({len(columns) - 30} more)"
    return f"Customer.io CSV columns not understood: found {found}; missing {'; '.join(missing)}"


@lru_cache(maxsize=256)
def _map_columns(columns: tuple[str, ...], shape: str) -> Mapping[str, str]:
    """Each field the header has, to the header's own name (the first alias found wins)."""
    aliases = _EVENT_ALIASES if shape == "event" else _DELIVERY_ALIASES
    by_loose = _by_loose_name(columns)
    found: dict[str, str] = {}
    for field_name, names in aliases.items():
        header = next((by_loose[n] for n in names if n in by_loose), None)
        if header is not None:
            found[field_name] = header
    return found


@lru_cache(maxsize=256)
def _map_metric_times(columns: tuple[str, ...]) -> Mapping[str, str]:
    """Each metric with a time column ("delivered", "delivered_at", "Delivered At"...)."""
    by_loose = _by_loose_name(columns)
    found: dict[str, str] = {}
    for metric in _TIME_METRICS:
        base = _loose(metric)
        header = next((by_loose[base + s] for s in _TIME_SUFFIXES if base + s in by_loose), None)
        if header is not None:
            found[metric] = header
    return found


def _by_loose_name(columns: Sequence[object]) -> dict[str, str]:
    by_loose: dict[str, str] = {}
    for column in columns:
        if isinstance(column, str):
            by_loose.setdefault(_loose(column), column)
    return by_loose


def _loose(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


# --- one record per event ------------------------------------------------------------------


def _convert_webhook(body: Mapping[str, Any]) -> Conversion:
    data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
    record = _record_from_data(data)
    record.metric = _metric_name(body.get("metric"))
    record.channel = _channel(body.get("object_type") or body.get("object_type_type"))
    record.event_id = text(body.get("event_id"))
    record.timestamp = body.get("timestamp")
    if record.metric in PERSON_LEVEL and record.delivery_id is None:
        # A subscription change that no delivery caused belongs to the person, whichever
        # channel Customer.io names as its trigger.
        record.channel = "customer"
    return _convert_event(record)


def _convert_legacy(body: Mapping[str, Any]) -> Conversion:
    record = _record_from_data(body["data"])
    record.channel, record.metric = _split_event_type(body["event_type"])
    record.event_id = text(body.get("event_id"))
    record.timestamp = body.get("timestamp")
    return _convert_event(record)


def _convert_flat(body: Mapping[str, Any]) -> Conversion:
    """A metric record without a `data` object, e.g. a JSON export of the metrics CSV."""
    by_field = _map_columns(tuple(k for k in body if isinstance(k, str)), "event")
    return _convert_event(_record_from_columns(body, by_field))


def _convert_event_row(by_field: Mapping[str, str], row: Mapping[Any, Any]) -> Conversion:
    _check_ragged(row)
    return _convert_event(_record_from_columns(row, by_field))


def _convert_event(record: _Record) -> Conversion:
    outcome = _classify(record)
    if isinstance(outcome, Skip):
        return outcome
    recipient, user_id = _identity(record)
    when = parse_timestamp(record.timestamp)
    machine_open = outcome is EventName.OPENED and record.machine
    return [_email_event(record, outcome, when, recipient, user_id, machine_open=machine_open)]


def _classify(record: _Record) -> EventName | Skip:
    metric = record.metric
    if not metric:
        raise RecordRejected("missing metric")
    channel = record.channel or "email"
    if channel == "customer" or metric in _PERSON_ONLY:
        return Skip(f"person-level subscription change: {metric}")
    if channel != "email":
        return Skip(f"channel is not email: {channel}")
    if metric in EVENT_FOR_METRIC:
        return EVENT_FOR_METRIC[metric]
    return _skip_for_metric(metric)


def _skip_for_metric(metric: str) -> Skip:
    if metric in OPEN_SIGNALS:
        return Skip(f"second signal for the same open: {metric}")
    if metric in CLICK_SIGNALS:
        return Skip(f"second signal for the same click: {metric}")
    if metric in SUPPRESSED:
        return Skip(f"suppressed before sending: {metric}")
    if metric in NOT_EMAIL_EVENTS:
        return Skip(f"metric is not an email event: {metric}")
    return Skip(f"unknown metric: {metric[:80]}")


# --- one record per delivery ---------------------------------------------------------------


def _convert_message(message: Mapping[str, Any]) -> Conversion:
    record = _record_from_data(message)
    if record.delivery_id is None:
        record.delivery_id = text(message.get("id"))
    record.channel = _channel(message.get("type"))
    metrics = message["metrics"]
    times = {name: v for k, v in metrics.items() if (name := _metric_name(k)) and not _blank(v)}
    return _convert_delivery(record, times)


def _convert_delivery_row(
    by_field: Mapping[str, str], times: Mapping[str, str], row: Mapping[Any, Any]
) -> Conversion:
    _check_ragged(row)
    record = _record_from_columns(row, by_field)
    present = {metric: row.get(header) for metric, header in times.items()}
    return _convert_delivery(record, {m: v for m, v in present.items() if not _blank(v)})


def _convert_delivery(record: _Record, times: Mapping[str, object]) -> Conversion:
    if record.channel not in (None, "email"):
        return Skip(f"channel is not email: {record.channel}")
    if not times:
        return Skip("delivery has no metric times")
    plans = _delivery_plan(times)
    if not plans:
        return _idle_delivery(times)
    recipient, user_id = _identity(record)
    events = [
        _email_event(record, name, when, recipient, user_id, machine_open=machine)
        for name, when, machine in plans
    ]
    return sorted(events, key=lambda e: (e.timestamp, list(EventName).index(e.name)))


def _delivery_plan(times: Mapping[str, object]) -> list[tuple[EventName, datetime, bool]]:
    """The events a delivery's metric times stand for: (event, time, machine open)."""
    plans = [
        (name, parse_timestamp(times[metric]), False)
        for metric, name in EVENT_FOR_METRIC.items()
        if metric in times and metric not in ("opened", "clicked")
    ]
    opened = _first_signal(times, OPEN_SIGNALS)
    if opened is not None:
        machine = "prefetch_opened" in times and "human_opened" not in times
        plans.append((EventName.OPENED, opened, machine))
    clicked = _first_signal(times, CLICK_SIGNALS)
    if clicked is not None:
        plans.append((EventName.CLICKED, clicked, False))
    return plans


def _first_signal(times: Mapping[str, object], signals: Sequence[str]) -> datetime | None:
    """The main signal's time, else the earliest of its human/prefetch classifications."""
    if signals[0] in times:
        return parse_timestamp(times[signals[0]])
    found = [parse_timestamp(times[s]) for s in signals[1:] if s in times]
    return min(found) if found else None


def _idle_delivery(times: Mapping[str, object]) -> Skip:
    suppressed = sorted(m for m in times if m in SUPPRESSED)
    if suppressed:
        return Skip(f"suppressed before sending: {', '.join(suppressed)}")
    known = sorted(m for m in times if m in KNOWN_METRICS)
    if known:
        return Skip(f"metric is not an email event: {', '.join(known)}")
    return Skip(f"unknown metric: {', '.join(sorted(times))[:80]}")


# --- shared pieces -------------------------------------------------------------------------


def _record_from_data(data: Mapping[str, Any]) -> _Record:
    """The fields of a webhook's `data` object or of an App API message."""
    ids = data.get("identifiers") or data.get("customer_identifiers")
    ids = ids if isinstance(ids, Mapping) else {}
    return _Record(
        delivery_id=_first_text(data, "delivery_id", "email_id"),
        user_id=text(ids.get("id")) or text(data.get("customer_id")),
        cio_id=text(ids.get("cio_id")),
        recipient=_first_text(data, "recipient", "email_address") or text(ids.get("email")),
        subject=text(data.get("subject")),
        campaign_id=text(data.get("campaign_id")),
        campaign_name=text(data.get("campaign_name")),
        broadcast_id=text(data.get("broadcast_id")),
        newsletter_id=text(data.get("newsletter_id")),
        action_id=text(data.get("action_id")),
        parent_action_id=text(data.get("parent_action_id")),
        content_id=text(data.get("content_id")),
        journey_id=text(data.get("journey_id")),
        trigger_event_id=text(data.get("trigger_event_id")),
        transactional_message_id=text(data.get("transactional_message_id")),
        template_id=_first_text(data, "template_id", "message_template_id"),
        href=_first_text(data, "href", "link"),
        link_id=text(data.get("link_id")),
        failure_message=_first_text(data, "failure_message", "reason"),
        # Opens say `prefetched`, clicks say `machine`; each only appears on its own metric.
        machine=_truthy(data.get("prefetched")) or _truthy(data.get("machine")),
    )


def _record_from_columns(row: Mapping[Any, Any], by_field: Mapping[str, str]) -> _Record:
    values = {name: row.get(header) for name, header in by_field.items()}
    record = _Record(**{k: text(v) for k, v in values.items() if k not in ("timestamp", "machine")})
    return replace(
        record,
        metric=_metric_name(values.get("metric")),
        channel=_channel(values.get("channel")),
        timestamp=values.get("timestamp"),
        machine=_truthy(values.get("machine")),
    )


def _identity(record: _Record) -> tuple[str | None, str | None]:
    recipient = clean_email(record.recipient)
    require_identity(recipient, record.user_id)
    return recipient, record.user_id


def _email_event(
    record: _Record,
    name: EventName,
    when: datetime,
    recipient: str | None,
    user_id: str | None,
    *,
    machine_open: bool,
) -> EmailEvent:
    return EmailEvent(
        name=name,
        timestamp=when,
        provider=PROVIDER,
        recipient=recipient,
        user_id=user_id,
        email_id=record.delivery_id,
        event_id=record.event_id,
        link_url=record.href if name is EventName.CLICKED else None,
        machine_open=machine_open,
        properties=_properties(record, name),
    )


def _properties(record: _Record, name: EventName) -> dict[str, Any]:
    properties: dict[str, Any] = {"email_subject": record.subject}
    properties.update((key, getattr(record, key)) for key in _SHARED_PROPERTIES)
    if name is EventName.CLICKED:
        properties["link_id"] = record.link_id
        properties["machine_click"] = True if record.machine else None
    elif name is EventName.UNSUBSCRIBED:
        properties["list_id"] = record.list_id
        properties["list_name"] = record.list_name
    elif name is EventName.BOUNCED:
        properties["reason"] = record.failure_message
    return compact(properties)


def _check_ragged(row: Mapping[Any, Any]) -> None:
    # csv.DictReader files surplus fields under the key None and pads short rows with None;
    # either way the values no longer line up with the header.
    if None in row:
        raise RecordRejected("ragged row: more fields than the header")
    if any(value is None for value in row.values()):
        raise RecordRejected("ragged row: fewer fields than the header")


def _metric_name(value: object) -> str | None:
    """ "Email Opened", "email_opened" and "opened" all name the metric `opened`."""
    name = text(value)
    if name is None:
        return None
    name = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_").removeprefix("email_")
    return _METRIC_SPELLINGS.get(name, name)


def _channel(value: object) -> str | None:
    name = text(value)
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") if name else None


def _split_event_type(event_type: str) -> tuple[str, str | None]:
    name = event_type.strip().lower()
    for channel in _LEGACY_CHANNELS:
        if name.startswith(f"{channel}_"):
            return channel, _metric_name(name.removeprefix(f"{channel}_"))
    return "email", _metric_name(name)


def _first_text(data: Mapping[str, Any], *keys: str) -> str | None:
    return next((found for key in keys if (found := text(data.get(key))) is not None), None)


def _truthy(value: object) -> bool:
    if isinstance(value, bool):
        return value
    shown = text(value)
    return shown is not None and shown.lower() in _TRUTHY


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _show_keys(data: Mapping[Any, Any]) -> str:
    keys = sorted(str(k)[:40] for k in data)
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (", ..." if len(keys) > _SHOWN_KEYS else "") if keys else "(none)"


# --- documentation -------------------------------------------------------------------------


def _metric_rows() -> list[MappingRow]:
    rows = [
        MappingRow(f"{metric} (of a delivery)" if metric in PERSON_LEVEL else metric, name.value)
        for metric, name in EVENT_FOR_METRIC.items()
    ]
    rows += [
        MappingRow(", ".join(OPEN_SIGNALS[1:]), "skipped: second signal for the same open"),
        MappingRow(", ".join(CLICK_SIGNALS[1:]), "skipped: second signal for the same click"),
        MappingRow(", ".join(SUPPRESSED), "skipped: suppressed before sending"),
        MappingRow(", ".join(NOT_EMAIL_EVENTS), "skipped: metric is not an email event"),
        MappingRow(
            "subscribed, unsubscribed (no delivery), cio_subscription_preferences_changed",
            "skipped: person-level subscription change",
        ),
        MappingRow(f"object_type {', '.join(OTHER_CHANNELS)}", "skipped: channel is not email"),
        MappingRow("any other metric", "skipped: unknown metric"),
    ]
    return rows


def _legacy_rows() -> list[MappingRow]:
    rows = [MappingRow(f"email_{m}", n.value) for m, n in EVENT_FOR_METRIC.items()]
    rows += [
        MappingRow("email_dropped", "skipped: suppressed before sending"),
        MappingRow(
            ", ".join(f"email_{m}" for m in NOT_EMAIL_EVENTS if m != "created"),
            "skipped: metric is not an email event",
        ),
        MappingRow(
            "customer_subscribed, customer_unsubscribed",
            "skipped: person-level subscription change",
        ),
        MappingRow("push_*, sms_*, slack_*, webhook_*, ...", "skipped: channel is not email"),
    ]
    return rows


FORMATS = [CustomerIO()]
