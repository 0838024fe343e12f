"""Realistic Customer.io-style activity exports of N events, for the benchmark.

Two shapes of the same activity, deterministic for a seed and written as they are made
(never N rows in memory):

- CSV, one row per metric event, with the columns of Customer.io's metrics export
  (`Event ID, Metric, Timestamp, Customer ID, Recipient, Delivery ID, ...`);
- JSON lines of reporting-webhook bodies (`event_id, object_type, metric, timestamp, data`).

The mix follows a real send: every delivery is sent, most are delivered, some bounce or are
dropped, a share is opened (each open with its human/prefetch classification row), fewer
are clicked, a few unsubscribe or complain, some convert. A few percent of rows are exact
repeats of a recent row, as when two export windows overlap. JSONL also carries push and
SMS deliveries (the CSV export is of email only). Metrics that are not one of Segment's
six email events (sent, dropped, converted, human_opened, prefetch_opened, anything push or
SMS) map to nothing.

Next to each file, `<file>.meta.json` says what a correct backfill sends (the count of
distinct events that map to one of the six) and `<file>.ids` lists their Customer.io
event ids, one per line, so a benchmark can check the exact set a server received.

    python bench/generate.py --events 1000000 --out bench/data   # both shapes
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TextIO

CSV_HEADER = (
    "Event ID,Metric,Timestamp,Customer ID,Recipient,Delivery ID,Campaign ID,Campaign Name,"
    "Subject,Link URL,Link ID,Failure Message\n"
)
# What Segment's six email events come from; everything else maps to nothing.
MAPPED = frozenset({"delivered", "opened", "clicked", "bounced", "spammed", "unsubscribed"})
DUPLICATE_SHARE = 0.03
ANONYMOUS_SHARE = 0.05  # people known by address only (no Customer ID)
START = int(datetime(2025, 1, 6, tzinfo=UTC).timestamp())
SECONDS_PER_DELIVERY = 3  # a campaign goes out over days
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

FIRST_NAMES = (
    "ana",
    "ben",
    "chloe",
    "dev",
    "emma",
    "felix",
    "grace",
    "hiro",
    "isla",
    "jonas",
    "kai",
    "lena",
    "mia",
    "noah",
    "olga",
    "pedro",
    "quinn",
    "rosa",
    "sven",
    "tomás",
)
LAST_NAMES = (
    "silva",
    "okafor",
    "martin",
    "patel",
    "novak",
    "wagner",
    "lee",
    "tanaka",
    "brown",
    "berg",
    "mueller",
    "rossi",
    "johansson",
    "kim",
    "ivanova",
    "garcía",
)
DOMAINS = ("example.com", "example.org", "mail.example.net", "example.co.uk")
CAMPAIGNS = (
    (27, "July newsletter", "Tips, tricks and a July surprise"),
    (29, "Invoice reminder", "Your invoice is ready"),
    (31, "Summer sale", "Summer sale: 20% off annual plans"),
    (33, "Onboarding day 3", "3 things to try in your first week"),
    (35, "Win-back", "We miss you — here's what's new"),
    (37, "Product update", 'New: "dark mode", faster exports and more'),
    (41, "Webinar invite", "Join us Thursday: data pipelines, live"),
    (43, "Password reset", "Reset your password"),
)
LINKS = (
    "https://northwind.example.com/blog/july-tips?utm_source=customerio",
    "https://northwind.example.com/pricing?plan=annual",
    "https://northwind.example.com/changelog/2025",
    "https://northwind.example.com/billing/invoices",
    "https://northwind.example.com/webinars/data-pipelines?utm_campaign=webinar",
)
BOUNCES = (
    "550 5.1.1 The email account that you tried to reach does not exist",
    "552 5.2.2 Mailbox full",
    "554 5.7.1 Message rejected, see policy",
)


@dataclass(slots=True)
class Event:
    event_id: str
    metric: str
    at: int  # unix seconds
    channel: str  # email, push, sms
    user_id: str | None
    recipient: str
    cio_id: str
    delivery_id: str
    campaign: tuple[int, str, str]
    href: str | None = None
    link_id: int | None = None
    failure: str | None = None


class Activity:
    """An endless, seeded stream of metric events, delivery after delivery."""

    def __init__(self, seed: int, people: int) -> None:
        self._rng = random.Random(seed)
        self._people = people
        self._delivery = 0

    def _ulid(self, at: int) -> str:
        value = (at * 1000 + self._rng.randrange(1000)) << 80 | self._rng.getrandbits(80)
        return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))

    def _delivery_id(self) -> str:
        bits = self._rng.getrandbits(132)
        return "RPILAg" + "".join(_B64URL[(bits >> s) & 63] for s in range(0, 132, 6))

    def _person(self) -> tuple[str | None, str, str]:
        rng = self._rng
        number = rng.randrange(self._people)
        first = FIRST_NAMES[number % len(FIRST_NAMES)]
        last = LAST_NAMES[(number // len(FIRST_NAMES)) % len(LAST_NAMES)]
        email = f"{first}.{last}{number}@{DOMAINS[number % len(DOMAINS)]}"
        user_id = None if number % 20 == 0 else f"user-{number}"  # ~ANONYMOUS_SHARE
        return user_id, email, f"{number * 2654435761 % 2**48:012x}"

    def _event(
        self,
        channel: str,
        user_id: str | None,
        recipient: str,
        cio_id: str,
        delivery_id: str,
        campaign: tuple[int, str, str],
        metric: str,
        at: int,
        *,
        href: str | None = None,
        link_id: int | None = None,
        failure: str | None = None,
    ) -> Event:
        return Event(
            self._ulid(at),
            metric,
            at,
            channel,
            user_id,
            recipient,
            cio_id,
            delivery_id,
            campaign,
            href,
            link_id,
            failure,
        )

    def events(self) -> Iterator[Event]:
        rng = self._rng
        while True:
            self._delivery += 1
            sent_at = START + self._delivery * SECONDS_PER_DELIVERY // 10
            user_id, email, cio_id = self._person()
            campaign = CAMPAIGNS[rng.randrange(len(CAMPAIGNS))]
            channel = "email"
            draw = rng.random()
            if draw < 0.04:
                channel = "push"
            elif draw < 0.06:
                channel = "sms"
            delivery_id = self._delivery_id()

            event = partial(self._event, channel, user_id, email, cio_id, delivery_id, campaign)
            if rng.random() < 0.01:
                yield event("dropped", sent_at, failure="Recipient is suppressed")
                continue
            yield event("sent", sent_at)
            outcome = rng.random()
            if outcome < 0.02:
                yield event("bounced", sent_at + 2, failure=rng.choice(BOUNCES))
                continue
            delivered_at = sent_at + rng.randrange(1, 30)
            yield event("delivered", delivered_at)
            if rng.random() < 0.45:
                opened_at = delivered_at + rng.randrange(60, 86_400)
                yield event("opened", opened_at)
                machine = rng.random() < 0.3
                yield event("prefetch_opened" if machine else "human_opened", opened_at)
                if not machine and rng.random() < 0.25:
                    link = rng.randrange(len(LINKS))
                    clicked_at = opened_at + rng.randrange(2, 600)
                    yield event("clicked", clicked_at, href=LINKS[link], link_id=link + 1)
                    if rng.random() < 0.1:
                        yield event("converted", clicked_at + rng.randrange(60, 7200))
                if rng.random() < 0.008:
                    yield event("unsubscribed", opened_at + rng.randrange(5, 300))
            if rng.random() < 0.001:
                yield event("spammed", delivered_at + rng.randrange(60, 86_400))


def _iso(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _csv_field(value: object) -> str:
    text = "" if value is None else str(value)
    if any(ch in text for ch in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_row(e: Event) -> str:
    campaign_id, campaign_name, subject = e.campaign
    fields = (
        e.event_id,
        e.metric,
        _iso(e.at),
        e.user_id,
        e.recipient,
        e.delivery_id,
        campaign_id,
        campaign_name,
        subject,
        e.href,
        e.link_id,
        e.failure,
    )
    return ",".join(_csv_field(f) for f in fields) + "\n"


def webhook_line(e: Event) -> str:
    campaign_id, _, subject = e.campaign
    data: dict[str, object] = {
        "identifiers": {"id": e.user_id, "email": e.recipient, "cio_id": e.cio_id},
        "customer_id": e.user_id,
        "delivery_id": e.delivery_id,
        "recipient": e.recipient if e.channel == "email" else "+15555550123",
        "campaign_id": campaign_id,
        "action_id": campaign_id * 10 + 1,
        "subject": subject,
    }
    if e.href:
        data["href"], data["link_id"] = e.href, e.link_id
    if e.failure:
        data["failure_message"] = e.failure
    body = {
        "event_id": e.event_id,
        "object_type": e.channel,
        "metric": e.metric,
        "timestamp": e.at,
        "data": data,
    }
    return json.dumps(body, ensure_ascii=False, separators=(", ", ": ")) + "\n"


def _maps(e: Event) -> bool:
    return e.channel == "email" and e.metric in MAPPED


def generate(path: Path, events: int, seed: int, shape: str) -> dict[str, object]:
    """Write `events` rows (repeats included) to `path`; return what a backfill must send."""
    rng = random.Random(seed ^ 0x5EED)
    line_of = csv_row if shape == "csv" else webhook_line
    recent: deque[tuple[str, Event]] = deque(maxlen=512)
    written = duplicates = mapped = 0
    ids_path = path.with_name(path.name + ".ids")
    stream = Activity(seed, people=max(1000, events // 8)).events()
    with path.open("w", encoding="utf-8", newline="") as out, ids_path.open("w") as ids:
        if shape == "csv":
            out.write(CSV_HEADER)
        buffer: list[str] = []
        while written < events:
            if recent and rng.random() < DUPLICATE_SHARE:
                line, _ = recent[rng.randrange(len(recent))]
                duplicates += 1
            else:
                e = next(stream)
                if shape == "csv" and e.channel != "email":
                    continue  # the metrics CSV export is per channel: email only
                line = line_of(e)
                recent.append((line, e))
                if _maps(e):
                    mapped += 1
                    ids.write(e.event_id + "\n")
            buffer.append(line)
            written += 1
            if len(buffer) >= 4096:
                out.write("".join(buffer))
                buffer.clear()
        out.write("".join(buffer))
    meta = {
        "shape": shape,
        "seed": seed,
        "records": written,
        "exact_duplicates": duplicates,
        "distinct_events": mapped,  # distinct records that become one of the six events
        "bytes": path.stat().st_size,
    }
    path.with_name(path.name + ".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _write(out: TextIO, meta: dict[str, object], path: Path) -> None:
    out.write(
        f"{path}: {meta['records']:,} records, {meta['distinct_events']:,} events "
        f"to send, {meta['exact_duplicates']:,} exact repeats, {meta['bytes']:,} bytes\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="records per file")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--shape", choices=("csv", "jsonl", "both"), default="both")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    shapes = ("csv", "jsonl") if args.shape == "both" else (args.shape,)
    for shape in shapes:
        path = args.out / f"customerio_{args.events}.{shape}"
        _write(sys.stdout, generate(path, args.events, args.seed, shape), path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
