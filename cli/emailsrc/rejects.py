"""The rejects file: every rejected record and failed event, with file, line and reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import orjson

from .files import open_private


class RejectsWriter:
    """JSON lines, created on the first reject so a clean run leaves no empty file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._file: BinaryIO | None = None

    def write(
        self,
        reason: str,
        *,
        file: str | None,
        line: int | None,
        record: Any = None,
        raw: str | None = None,
        event: bytes | None = None,
    ) -> None:
        entry: dict[str, Any] = {"file": file, "line": line, "reason": reason}
        if record is not None:
            entry["record"] = record
        elif raw is not None:
            entry["raw"] = raw
        if event is not None:
            entry["event"] = orjson.Fragment(event)
        try:
            line = orjson.dumps(entry, default=str)
        except orjson.JSONEncodeError:
            # A record nested deeper than orjson writes (254 levels; it reads 1,024): keep
            # its place and reason, and the record as the text it was read from.
            entry.pop("record", None)
            entry["raw"] = raw if raw is not None else "(record too deeply nested to write)"
            line = orjson.dumps(entry, default=str)
        if self._file is None:
            self._file = open_private(self.path)
        self._file.write(line + b"\n")
        self.count += 1

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
