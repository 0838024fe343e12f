"""Turn reports into what a person reads (Rich, on stderr) or a machine reads (JSON)."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from .formats import Format
from .report import RunReport


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unlimited rate: as fast as Segment answers"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _counts_table(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="dim")
    table.add_column(justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    return table


def render_report(report: RunReport, console: Console) -> None:
    if report.error and not report.files and not report.events_total:
        # Stopped before anything was read (a busy ledger, an unusable input): a table of
        # zeros would only bury the one line that matters.
        console.print(f"emailsrc: {report.error}", markup=False, soft_wrap=True)
        return
    data = report.to_dict()
    records, events = data["records"], data["events"]
    mode = " (dry run: nothing sent)" if report.dry_run else ""
    console.print(f"[bold]emailsrc {report.command}[/bold]{mode}")
    if report.destination:
        console.print(f"destination: {report.destination}", markup=False, soft_wrap=True)
    for file in report.files:
        console.print(f"  {file.source}: {file.format}, {file.records:,} records")
    summary = Table(show_header=False, box=None, padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    if report.command != "replay":
        summary.add_row("records read", f"{records['read']:,}")
        summary.add_row("  gave events", f"{records['with_events']:,}")
        summary.add_row("  skipped", f"{records['skipped']:,}")
        summary.add_row("  rejected", f"{records['rejected']:,}")
    summary.add_row("events", f"{events['total']:,}")
    if events["excluded"]:
        summary.add_row("  excluded", f"{events['excluded']:,}")
    summary.add_row("  duplicates removed", f"{events['duplicates']:,}")
    if not report.dry_run or events["already_sent"]:
        summary.add_row("  already sent", f"{events['already_sent']:,}")
    if report.dry_run:
        summary.add_row("  would be sent", f"{events['to_send']:,}")
    else:
        summary.add_row("  sent", f"{events['sent']:,}")
        summary.add_row("  failed", f"{events['failed']:,}")
        if events["unsent"]:
            summary.add_row("  not yet sent", f"{events['unsent']:,}")
    summary.add_row("distinct userIds", f"{report.distinct_user_ids:,}")
    summary.add_row("distinct anonymousIds", f"{report.distinct_anonymous_ids:,}")
    summary.add_row("batch requests", f"{report.batches:,}")
    if report.retries:
        summary.add_row("retries", f"{report.retries:,}")
    if report.dry_run:
        summary.add_row("time to send", _duration(report.estimated_seconds))
    summary.add_row("elapsed", f"{report.elapsed_seconds:.1f}s")
    console.print(summary)
    for title, counts in (
        ("events by name", events["by_name"]),
        ("skipped by reason", records["skipped_by_reason"]),
        ("rejected by reason", records["rejected_by_reason"]),
        ("excluded by reason", events["excluded_by_reason"]),
        ("failed by reason", events["failed_by_reason"]),
    ):
        if counts:
            console.print(_counts_table(title, counts))
    if report.problems:
        console.print("[bold]first problems[/bold]")
        for line in report.problems:
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    if report.rejects_path:
        console.print(f"rejects written to {report.rejects_path}", markup=False, soft_wrap=True)
    if report.output_path:
        console.print(f"batches written to {report.output_path}", markup=False, soft_wrap=True)
    for note in report.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    if report.error:
        console.print(f"error: {report.error}", markup=False, soft_wrap=True)


def render_status(status: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]ledger[/bold] {status.get('path')}", highlight=False)
    events = status.get("events", {})
    console.print(f"events stored: {events.get('total', 0):,}")
    if events.get("by_name"):
        console.print(_counts_table("by name", events["by_name"]))
    by_month = events.get("by_month") or {}
    if by_month:
        # One column per event name, shortened: the six full names don't fit 80 columns.
        names = sorted({name for counts in by_month.values() for name in counts}, key=_event_order)
        table = Table(title="by month", title_justify="left", box=box.SIMPLE)
        table.add_column("month")
        for name in names:
            table.add_column(_SHORT_NAMES.get(name, name), justify="right")
        table.add_column("total", justify="right")
        for month, counts in by_month.items():
            cells = [f"{counts.get(name, 0):,}" for name in names]
            table.add_row(month, *cells, f"{sum(counts.values()):,}")
        console.print(table)
    destinations = status.get("destinations") or []
    if destinations:
        table = Table(title="destinations", title_justify="left", box=box.SIMPLE)
        table.add_column("endpoint", overflow="fold")
        table.add_column("key")
        for column in ("sent", "pending", "failed"):
            table.add_column(column, justify="right")
        table.add_column("last sent (UTC)", no_wrap=True)
        for dest in destinations:
            table.add_row(
                dest["endpoint"],
                str(dest["key_fingerprint"])[:12],
                f"{dest['sent']:,}",
                f"{dest['pending']:,}",
                f"{dest['failed']:,}",
                _minute(dest.get("last_sent_at")),
            )
        console.print(table)
    runs = status.get("runs") or []
    if runs:
        table = Table(title="last runs (UTC)", title_justify="left", box=box.SIMPLE)
        table.add_column("id", justify="right")
        table.add_column("command")
        table.add_column("started", no_wrap=True)
        table.add_column("ended as", no_wrap=True)
        for column in ("sent", "already sent", "failed"):
            table.add_column(column, justify="right")
        for run in runs:
            # A run that crashed (kill -9, power loss) never wrote its summary.
            counts = (run.get("summary") or {}).get("events", {})
            table.add_row(
                str(run["id"]),
                run["command"],
                _minute(run["started_at"]),
                run["status"],
                *(
                    f"{counts[key]:,}" if key in counts else "-"
                    for key in ("sent", "already_sent", "failed")
                ),
            )
        console.print(table)


# Status columns: the six names in the order a mail goes through them, in short.
_SHORT_NAMES = {
    "Email Delivered": "delivered",
    "Email Opened": "opened",
    "Email Link Clicked": "clicked",
    "Email Bounced": "bounced",
    "Email Unsubscribed": "unsub",
    "Email Marked as Spam": "spam",
}


def _event_order(name: str) -> tuple[int, str]:
    order = list(_SHORT_NAMES)
    return (order.index(name) if name in order else len(order), name)


def _minute(iso: object) -> str:
    """'2025-06-01T12:34:56.789Z' as '2025-06-01 12:34' (UTC): status is read, not parsed."""
    if not isinstance(iso, str) or len(iso) < 16:
        return "-"
    return f"{iso[:10]} {iso[11:16]}"


def formats_data(formats: tuple[Format, ...]) -> list[dict[str, Any]]:
    return [
        {
            "name": fmt.name,
            "title": fmt.title,
            "detection": fmt.detection,
            "detected_automatically": getattr(fmt, "detectable", True),
            "mapping": [
                {"value": row.value, "outcome": row.outcome} for row in fmt.mapping_table()
            ],
        }
        for fmt in formats
    ]


def render_formats(formats: tuple[Format, ...], console: Console) -> None:
    for entry in formats_data(formats):
        auto = "" if entry["detected_automatically"] else " (only with --map / --mapping)"
        console.print(f"[bold]{entry['name']}[/bold] — {entry['title']}{auto}", highlight=False)
        console.print(f"  detected by: {entry['detection']}", markup=False, highlight=False)
        table = Table(show_header=True, box=None, padding=(0, 2))
        table.add_column("provider value")
        table.add_column("becomes")
        for row in entry["mapping"]:
            table.add_row(row["value"], row["outcome"])
        console.print(table)
        console.print()
