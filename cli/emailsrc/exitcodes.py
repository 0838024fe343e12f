"""Exit codes, documented in the README."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # validate found problems, or some events failed to send
    USAGE = 2  # bad options (also Typer's own usage errors)
    INPUT = 3  # an input file is missing, empty, or in no known format
    AUTH = 4  # Segment rejected the write key (401/403); nothing was marked sent
    LEDGER = 5  # the ledger is busy (another run), unreadable or unwritable
    UNEXPECTED = 70  # a bug: one line on stderr, --debug shows the traceback
    INTERRUPTED = 130  # Ctrl-C or SIGTERM; what was acknowledged is recorded
