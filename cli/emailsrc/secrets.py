"""The write key: kept out of every repr, log line, message and file."""

from __future__ import annotations

import hashlib


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
        """Text with any occurrence of the key replaced by its masked form."""
        return text.replace(self._value, self.masked) if self._value in text else text

    def __repr__(self) -> str:
        return f"WriteKey({self.masked})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WriteKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self.fingerprint)
