"""emailsrc: backfill and replay historical email activity into Segment."""

__version__ = "0.1.0"
