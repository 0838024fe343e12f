"""Every timestamp shape providers export, parsed to an aware UTC datetime.

Numbers are told apart by magnitude: below 1e11 they are seconds (until year 5138),
below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from dateutil import parser as dateutil_parser

from .events import RecordRejected

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Email providers did not exist before this; an earlier date is a unit or data error.
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)


class TimestampError(RecordRejected):
    pass


def parse_timestamp(value: object) -> datetime:
    """Parse unix s/ms/us/ns (numbers or numeric strings), ISO 8601 or RFC 2822 to UTC."""
    if value is None or value == "":
        raise TimestampError("missing timestamp")
    if isinstance(value, bool):
        raise TimestampError(f"unparseable timestamp: {value!r}")
    if isinstance(value, int | float):
        return _from_number(float(value), value)
    if isinstance(value, datetime):
        return _check(value if value.tzinfo else value.replace(tzinfo=UTC))
    if not isinstance(value, str):
        raise TimestampError(f"unparseable timestamp: {_show(value)}")
    text = value.strip()
    if not text:
        raise TimestampError("missing timestamp")
    # "2025-06-01..." can't be a number: skip the float() attempt, whose exception costs
    # more than the ISO parse itself on the commonest shape of all.
    iso_date = text[4:5] == "-" and text[:4].isdigit()
    if not iso_date and (text[0].isdigit() or text[0] in "+-."):
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return _from_number(number, text)
    return _check(_from_text(text, value))


def _from_number(number: float, original: object) -> datetime:
    if not math.isfinite(number):
        raise TimestampError(f"unparseable timestamp: {_show(original)}")
    magnitude = abs(number)
    if magnitude < 1e11:
        seconds = number
    elif magnitude < 1e14:
        seconds = number / 1e3
    elif magnitude < 1e17:
        seconds = number / 1e6
    else:
        seconds = number / 1e9
    try:
        moment = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        raise TimestampError(f"timestamp out of range: {_show(original)}") from None
    return _check(moment)


def _from_text(text: str, original: str) -> datetime:
    moment: datetime | None = None
    try:
        # fromisoformat covers ISO 8601 with offsets and "Z" quickly; not 7 fractional digits.
        moment = datetime.fromisoformat(text)
    except ValueError:
        if text[:3].isalpha() and "," in text[:5]:
            try:
                moment = parsedate_to_datetime(text)
            except (TypeError, ValueError):
                moment = None
        if moment is None:
            try:
                moment = dateutil_parser.isoparse(text)
            except (ValueError, OverflowError):
                # The free-form parser guesses: '03/04/2025' month-first, '17 Mar' this
                # year. A guessed date is a wrong date, so only unambiguous text gets there.
                if not any(ch.isdigit() for ch in text):
                    raise TimestampError(f"unparseable timestamp: {_show(original)}") from None
                if re.search(r"\d{4}", text) is None or re.match(r"\d{1,2}[/.-]\d{1,2}[/.-]", text):
                    raise TimestampError(f"ambiguous timestamp: {_show(original)}") from None
                try:
                    moment = dateutil_parser.parse(text)
                except (ValueError, OverflowError, TypeError):
                    raise TimestampError(f"unparseable timestamp: {_show(original)}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _check(moment: datetime) -> datetime:
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise TimestampError("timestamp out of range") from None
    if moment < EARLIEST:
        raise TimestampError(f"timestamp before 1990: {moment.isoformat()}")
    return moment


def format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds, as Segment stores it: 2025-06-01T12:00:00.000Z."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # isoformat is C and several times faster than strftime; years are 1990..9999 here
    # (parse_timestamp refuses earlier ones), so the shape is fixed: drop "+00:00", add Z.
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
