"""Files emailsrc writes that may hold email addresses: created private (0600)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


class OutputError(Exception):
    """A file emailsrc must write (--output, the rejects file) can't be; one line."""


def open_private(path: Path, *, append: bool = False) -> BinaryIO:
    """Open for writing with mode 0600 from the first byte, whatever the umask; missing
    directories are created 0700 (they name runs and hold files full of addresses)."""
    try:
        _make_private_dirs(path.parent)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        descriptor = os.open(path, flags, 0o600)
        os.chmod(path, 0o600)  # an existing file keeps its old mode through os.open
    except OSError as error:
        raise OutputError(f"{path}: cannot write it ({error.strerror or error})") from None
    return os.fdopen(descriptor, "ab" if append else "wb")


def _make_private_dirs(directory: Path) -> None:
    # mkdir(parents=True) applies the umask and ignores mode for the parents it creates.
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for each in reversed(missing):
        each.mkdir(mode=0o700, exist_ok=True)
