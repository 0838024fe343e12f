"""The script a user writes to backfill a Customer.io metrics CSV with Segment's own SDK.

It follows Segment's documentation for segment-analytics-python: set the write key (and
here the host of the server to send to), call `analytics.track()` for every row with the
historical `timestamp` and a `message_id` (Customer.io's event id, so a re-run does not
create copies downstream), then `analytics.flush()` before exiting. The only change from
the defaults is `max_queue_size`: with the default (10,000) `track()` returns False and
silently drops events whenever reading the file runs ahead of the uploads.

    python bench/baseline.py export.csv --write-key KEY --host http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import datetime

import segment.analytics as analytics

EVENTS = {
    "delivered": "Email Delivered",
    "opened": "Email Opened",
    "clicked": "Email Link Clicked",
    "unsubscribed": "Email Unsubscribed",
    "bounced": "Email Bounced",
    "spammed": "Email Marked as Spam",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv_file")
    parser.add_argument("--write-key", required=True)
    parser.add_argument("--host", default="https://api.segment.io")
    args = parser.parse_args(argv)

    analytics.write_key = args.write_key
    analytics.host = args.host
    analytics.max_queue_size = 10_000_000  # never drop: the whole file may queue up
    failures: list[str] = []
    analytics.on_error = lambda error, batch: failures.append(str(error))

    tracked = 0
    with open(args.csv_file, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            event = EVENTS.get(row["Metric"])
            if event is None:  # sent, converted, human_opened, push_*, ...
                continue
            properties = {
                "email_id": row["Delivery ID"],
                "email_subject": row["Subject"],
                "campaign_id": row["Campaign ID"],
                "campaign_name": row["Campaign Name"],
            }
            if event == "Email Link Clicked":
                properties["link_url"] = row["Link URL"]
                properties["link_id"] = row["Link ID"]
            if event == "Email Bounced":
                properties["reason"] = row["Failure Message"]
            analytics.track(
                user_id=row["Customer ID"] or None,
                anonymous_id=None if row["Customer ID"] else row["Recipient"],
                event=event,
                properties=properties,
                context={"traits": {"email": row["Recipient"]}},
                timestamp=datetime.fromisoformat(row["Timestamp"]),
                message_id=row["Event ID"],
            )
            tracked += 1
    analytics.flush()
    analytics.shutdown()
    print(f"tracked {tracked} events, {len(failures)} upload errors", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
