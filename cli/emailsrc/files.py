"""Files emailsrc writes that may hold email addresses: created private (0600)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


def open_private(path: Path, *, append: bool = False) -> BinaryIO:
    """Open for writing with mode 0600 from the first byte, whatever the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    descriptor = os.open(path, flags, 0o600)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through os.open
    return os.fdopen(descriptor, "ab" if append else "wb")
