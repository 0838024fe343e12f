"""The write key: kept out of every repr, log line, message and file."""

from __future__ import annotations

import hashlib
import io
from typing import TextIO

REDACT_MIN_CHARS = 8


class WriteKey:
    """A Segment write key that only `reveal()` gives back whole."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value:
            raise ValueError("the write key is empty")
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def fingerprint(self) -> str:
        """Identifies the source in the ledger and in messageIds without exposing the key."""
        return hashlib.sha256(b"emailsrc-write-key:" + self._value.encode()).hexdigest()[:16]

    @property
    def masked(self) -> str:
        visible = self._value[:4] if len(self._value) >= 12 else ""
        return f"{visible}…({len(self._value)} chars)"

    def redact(self, text: str) -> str:
        """Text with any occurrence of the key replaced by its masked form.

        A value shorter than REDACT_MIN_CHARS is no real write key (those are 32
        characters) and would turn every word holding it into noise: left as is.
        """
        if len(self._value) < REDACT_MIN_CHARS or self._value not in text:
            return text
        return text.replace(self._value, self.masked)

    def __repr__(self) -> str:
        return f"WriteKey({self.masked})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WriteKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.fingerprint)


class RedactingStream(io.TextIOBase):
    """A text stream that masks the write key in everything written through it.

    The CLI puts its stdout and stderr behind one, so the key stays out of a terminal or
    CI log even when it lands somewhere no message was meant to carry it: pasted in
    place of a file name, inside an --endpoint URL, in a traceback with --debug.
    """

    def __init__(self, stream: TextIO, key: WriteKey) -> None:
        super().__init__()
        self._stream = stream
        self._key = key

    def write(self, text: str) -> int:
        self._stream.write(self._key.redact(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._stream.errors
