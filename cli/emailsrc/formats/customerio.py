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
- A metric this module does not know is rejected, like an unknown event type in every
  other format: the run goes on, and the record is kept in the rejects file so a metric
  Customer.io adds later is seen rather than silently lost. A delivery record (a metrics
  map) is rejected only when none of its metrics is known; beside known metrics, an
  unknown one is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache, partial
from operator import attrgetter
from typing import Any

from ..events import EmailEvent, EventName, Skip
from ..timestamps import parse_timestamp
from .base import (
    DEFERRAL,
    NO_EVENT_TYPE,
    NON_EMAIL_CHANNEL,
    NOT_EMAIL_EVENT,
    PERSON_LEVEL,
    SECOND_CLICK,
    SECOND_OPEN,
    SUPPRESSED,
    UNKNOWN_EVENT,
    UNKNOWN_SHAPE,
    Conversion,
    Converter,
    Format,
    FormatError,
    MappingRow,
    clean_email,
    compact,
    loose_key,
    reject,
    require_identity,
    skip,
    skipped_outcome,
    text,
    truthy,
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
SUPPRESSED_METRICS = ("dropped", "suppressed")
DEFERRED_METRICS = ("deferred",)
NOT_EMAIL_METRICS = (
    "created",
    "drafted",
    "attempted",
    "sent",
    "converted",
    "failed",
    "undeliverable",
)
PERSON_LEVEL_METRICS = ("subscribed", "unsubscribed", "cio_subscription_preferences_changed")
# These two never concern one delivery; `unsubscribed` does when a delivery caused it.
_PERSON_ONLY = ("subscribed", "cio_subscription_preferences_changed")
OTHER_CHANNELS = ("push", "sms", "in_app", "webhook", "slack", "whatsapp")
KNOWN_METRICS = frozenset(
    (
        *EVENT_FOR_METRIC,
        *OPEN_SIGNALS,
        *CLICK_SIGNALS,
        *SUPPRESSED_METRICS,
        *DEFERRED_METRICS,
        *NOT_EMAIL_METRICS,
        *PERSON_LEVEL_METRICS,
    )
)
# A delivery record whose metric columns are all empty: nothing happened to it yet.
_NO_METRIC_TIMES = "delivery has no metric times"

# Older `event_type` values are "<channel>_<metric>"; in_app first, it holds an underscore.
_LEGACY_CHANNELS = ("in_app", "email", "customer", *OTHER_CHANNELS)
# Customer.io's own semantic event names ("Email Link Clicked"...) reduce to these.
_METRIC_SPELLINGS = {"link_clicked": "clicked", "marked_as_spam": "spammed"}
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

# One C call for the dozen attributes every event copies, instead of a getattr each.
_shared_values = attrgetter(*_SHARED_PROPERTIES)

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
            raise reject(UNKNOWN_SHAPE, "not a JSON object")
        if isinstance(data.get("metrics"), Mapping):
            return _convert_message(data)
        if "metric" in data and ("object_type" in data or isinstance(data.get("data"), Mapping)):
            return _convert_webhook(data)
        if isinstance(data.get("event_type"), str) and isinstance(data.get("data"), Mapping):
            return _convert_legacy(data)
        if "metric" in data:
            return _convert_flat(data)
        raise reject(UNKNOWN_SHAPE, f"keys {_show_keys(data)}")

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
    names = {loose_key(c) for c in columns if isinstance(c, str)}
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
        base = loose_key(metric)
        header = next((by_loose[base + s] for s in _TIME_SUFFIXES if base + s in by_loose), None)
        if header is not None:
            found[metric] = header
    return found


def _by_loose_name(columns: Sequence[object]) -> dict[str, str]:
    by_loose: dict[str, str] = {}
    for column in columns:
        if isinstance(column, str):
            by_loose.setdefault(loose_key(column), column)
    return by_loose


# --- one record per event ------------------------------------------------------------------


def _convert_webhook(body: Mapping[str, Any]) -> Conversion:
    data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
    record = _record_from_data(data)
    record.metric = _metric_name(body.get("metric"))
    record.channel = _channel(body.get("object_type") or body.get("object_type_type"))
    record.event_id = text(body.get("event_id"))
    record.timestamp = body.get("timestamp")
    if record.metric in PERSON_LEVEL_METRICS and record.delivery_id is None:
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
    # Half the rows of a metrics export yield no event (sent, an open's second signal...):
    # decide from the metric and channel columns before reading the other columns.
    channel = by_field.get("channel")
    outcome = _classify_metric(
        _metric_name(row.get(by_field.get("metric"))),
        _channel(row.get(channel)) if channel is not None else None,
    )
    if isinstance(outcome, Skip):
        return outcome
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
    return _classify_metric(record.metric, record.channel)


def _classify_metric(metric: str | None, channel: str | None) -> EventName | Skip:
    if not metric:
        raise reject(NO_EVENT_TYPE)
    return _outcome(metric, channel or "email")


# Once per record, over a handful of distinct (metric, channel) pairs; bounded because
# hostile input can hold any number of them. Skip is frozen, so sharing one is safe.
@lru_cache(maxsize=4096)
def _outcome(metric: str, channel: str) -> EventName | Skip:
    if channel == "customer" or metric in _PERSON_ONLY:
        return skip(PERSON_LEVEL, metric)
    if channel != "email":
        return skip(NON_EMAIL_CHANNEL, channel)
    if metric in EVENT_FOR_METRIC:
        return EVENT_FOR_METRIC[metric]
    category = _skip_category(metric)
    if category is None:
        # lru_cache does not keep a raise: each record of an unknown metric gets here.
        raise reject(UNKNOWN_EVENT, metric[:80])
    return skip(category, metric[:80])


def _skip_category(metric: str) -> str | None:
    for category, metrics in _SKIPPED_METRICS:
        if metric in metrics:
            return category
    return None


# Metrics that yield no event, by skip category. A delivery record with several of them is
# skipped under the first category that applies: one suppressed or deferred is what
# matters about a delivery that was also "sent".
_SKIPPED_METRICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (SUPPRESSED, SUPPRESSED_METRICS),
    (DEFERRAL, DEFERRED_METRICS),
    (NOT_EMAIL_EVENT, NOT_EMAIL_METRICS),
    (SECOND_OPEN, OPEN_SIGNALS[1:]),
    (SECOND_CLICK, CLICK_SIGNALS[1:]),
)


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
        return skip(NON_EMAIL_CHANNEL, record.channel)
    if not times:
        return skip(_NO_METRIC_TIMES)
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
    """A delivery none of whose metrics is an event: suppressed, deferred, only sent...

    Metric times that are all unknown are not "no metric times": the record says something
    happened and this module cannot tell what, so it is rejected and kept.
    """
    for category, metrics in _SKIPPED_METRICS:
        found = sorted(m for m in times if m in metrics)
        if found:
            return skip(category, ", ".join(found))
    found = sorted(m for m in times if m in PERSON_LEVEL_METRICS)
    if found:
        return skip(PERSON_LEVEL, ", ".join(found))
    raise reject(UNKNOWN_EVENT, ", ".join(sorted(times))[:80])


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
        machine=truthy(data.get("prefetched")) or truthy(data.get("machine")),
    )


def _record_from_columns(row: Mapping[Any, Any], by_field: Mapping[str, str]) -> _Record:
    values = {name: row.get(header) for name, header in by_field.items()}
    record = _Record(**{k: text(v) for k, v in values.items() if k not in ("timestamp", "machine")})
    # Set in place: dataclasses.replace() re-runs __init__ over every field, once per row.
    record.metric = _metric_name(values.get("metric"))
    record.channel = _channel(values.get("channel"))
    record.timestamp = values.get("timestamp")
    record.machine = truthy(values.get("machine"))
    return record


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
    properties.update(zip(_SHARED_PROPERTIES, _shared_values(record), strict=True))
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
        raise reject("ragged row", "more fields than the header")
    if None in row.values():
        raise reject("ragged row", "fewer fields than the header")


def _metric_name(value: object) -> str | None:
    """ "Email Opened", "email_opened" and "opened" all name the metric `opened`."""
    name = text(value)
    return None if name is None else _metric_spelling(name)


# A file holds a few dozen distinct spellings; the regex ran once per record.
@lru_cache(maxsize=4096)
def _metric_spelling(name: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_").removeprefix("email_")
    return _METRIC_SPELLINGS.get(name, name)


def _channel(value: object) -> str | None:
    name = text(value)
    return _channel_spelling(name) if name else None


@lru_cache(maxsize=4096)
def _channel_spelling(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _split_event_type(event_type: str) -> tuple[str, str | None]:
    name = event_type.strip().lower()
    for channel in _LEGACY_CHANNELS:
        if name.startswith(f"{channel}_"):
            return channel, _metric_name(name.removeprefix(f"{channel}_"))
    return "email", _metric_name(name)


def _first_text(data: Mapping[str, Any], *keys: str) -> str | None:
    return next((found for key in keys if (found := text(data.get(key))) is not None), None)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _show_keys(data: Mapping[Any, Any]) -> str:
    keys = sorted(str(k)[:40] for k in data)
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (", ..." if len(keys) > _SHOWN_KEYS else "") if keys else "(none)"


# --- documentation -------------------------------------------------------------------------


def _metric_rows() -> list[MappingRow]:
    rows = [
        MappingRow(
            f"{metric} (of a delivery)" if metric in PERSON_LEVEL_METRICS else metric, name.value
        )
        for metric, name in EVENT_FOR_METRIC.items()
    ]
    rows += [
        MappingRow(", ".join(metrics), skipped_outcome(category))
        for category, metrics in _SKIPPED_METRICS
    ]
    rows += [
        MappingRow(
            "subscribed, unsubscribed (no delivery), cio_subscription_preferences_changed",
            skipped_outcome(PERSON_LEVEL),
        ),
        MappingRow(f"object_type {', '.join(OTHER_CHANNELS)}", skipped_outcome(NON_EMAIL_CHANNEL)),
    ]
    return rows


def _legacy_rows() -> list[MappingRow]:
    rows = [MappingRow(f"email_{m}", n.value) for m, n in EVENT_FOR_METRIC.items()]
    rows += [
        MappingRow("email_dropped", skipped_outcome(SUPPRESSED)),
        MappingRow("email_deferred", skipped_outcome(DEFERRAL)),
        MappingRow(
            ", ".join(f"email_{m}" for m in NOT_EMAIL_METRICS if m != "created"),
            skipped_outcome(NOT_EMAIL_EVENT),
        ),
        MappingRow(
            "customer_subscribed, customer_unsubscribed",
            skipped_outcome(PERSON_LEVEL),
        ),
        MappingRow("push_*, sms_*, slack_*, webhook_*, ...", skipped_outcome(NON_EMAIL_CHANNEL)),
    ]
    return rows


FORMATS = [CustomerIO()]
