"""The run report: every record and every event accounted for."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .exitcodes import ExitCode

MAX_PROBLEMS_LISTED = 20


def reason_category(reason: str) -> str:
    """Reasons read '<category>[: <detail>]'; counts group by the category."""
    return reason.split(": ", 1)[0]


@dataclass(slots=True)
class FileReport:
    source: str
    format: str
    records: int = 0
    bytes: int | None = None


@dataclass(slots=True)
class RunReport:
    command: str
    dry_run: bool = False
    run_id: int | None = None
    destination: str | None = None  # endpoint and masked key
    files: list[FileReport] = field(default_factory=list)
    # records
    records_read: int = 0
    records_with_events: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    # events
    events: Counter[str] = field(default_factory=Counter)  # produced, by name
    excluded: Counter[str] = field(default_factory=Counter)  # machine opens, outside window
    duplicates: int = 0
    already_sent: int = 0
    to_send: int = 0
    sent: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    distinct_user_ids: int = 0
    distinct_anonymous_ids: int = 0
    batches: int = 0
    retries: int = 0
    recently_sent: int = 0  # replay: sent to this destination less than 24 h ago
    integrations: dict[str, Any] = field(default_factory=dict)
    estimated_seconds: float | None = None
    elapsed_seconds: float = 0.0
    rejects_path: str | None = None
    output_path: str | None = None
    problems: list[str] = field(default_factory=list)  # first 'file:line: reason' lines
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    error: str | None = None
    exit_code: ExitCode = ExitCode.OK

    @property
    def events_total(self) -> int:
        return sum(self.events.values())

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def unsent(self) -> int:
        """Events that were due but neither acknowledged nor failed (an interrupted run)."""
        if self.dry_run:  # nothing was meant to be sent
            return 0
        return max(0, self.to_send - self.sent - self.failed_total)

    def note_problem(self, location: str, reason: str) -> None:
        if len(self.problems) < MAX_PROBLEMS_LISTED:
            self.problems.append(f"{location}: {reason}")

    def balanced(self) -> bool:
        """The counts add up: nothing disappears without a line in the summary."""
        records_ok = self.records_read == (
            self.records_with_events + sum(self.skipped.values()) + self.rejected_total
        )
        events_ok = self.events_total == (
            sum(self.excluded.values()) + self.duplicates + self.already_sent + self.to_send
        )
        return records_ok and events_ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "dry_run": self.dry_run,
            "run_id": self.run_id,
            "destination": self.destination,
            "files": [
                {"source": f.source, "format": f.format, "records": f.records, "bytes": f.bytes}
                for f in self.files
            ],
            "records": {
                "read": self.records_read,
                "with_events": self.records_with_events,
                "skipped": sum(self.skipped.values()),
                "skipped_by_reason": dict(self.skipped.most_common()),
                "rejected": self.rejected_total,
                "rejected_by_reason": dict(self.rejected.most_common()),
            },
            "events": {
                "total": self.events_total,
                "by_name": dict(sorted(self.events.items())),
                "excluded": sum(self.excluded.values()),
                "excluded_by_reason": dict(self.excluded.most_common()),
                "duplicates": self.duplicates,
                "already_sent": self.already_sent,
                "to_send": self.to_send,
                "sent": self.sent,
                "failed": self.failed_total,
                "failed_by_reason": dict(self.failed.most_common()),
                "unsent": self.unsent,
            },
            "distinct_user_ids": self.distinct_user_ids,
            "distinct_anonymous_ids": self.distinct_anonymous_ids,
            "batches": self.batches,
            "retries": self.retries,
            "recently_sent": self.recently_sent,
            "integrations": self.integrations,
            "estimated_seconds": self.estimated_seconds,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "rejects_path": self.rejects_path,
            "output_path": self.output_path,
            "problems": self.problems,
            "notes": self.notes,
            "interrupted": self.interrupted,
            "error": self.error,
            "balanced": self.balanced(),
            "exit_code": int(self.exit_code),
        }
