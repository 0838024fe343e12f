from datetime import UTC, datetime

import pytest

from emailsrc.timestamps import TimestampError, format_timestamp, parse_timestamp

MOMENT = datetime(2025, 6, 1, 12, 30, 45, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        1748781045.123,  # float seconds
        "1748781045.123",  # float seconds as text
        1748781045123,  # milliseconds
        "1748781045123",  # milliseconds as text
        1748781045123000,  # microseconds
        1748781045123000000,  # nanoseconds
        "2025-06-01T12:30:45.123Z",
        "2025-06-01T12:30:45.123+00:00",
        "2025-06-01T14:30:45.123+02:00",
        "2025-06-01T08:30:45.123-04:00",
        "2025-06-01T12:30:45.1230000Z",  # seven fractional digits (.NET, Postmark)
        "2025-06-01T14:30:45.1230000+02:00",
        "2025-06-01 12:30:45.123",  # naive: UTC
        " 2025-06-01T12:30:45.123Z ",
    ],
)
def test_every_shape_parses_to_the_same_moment(value: object) -> None:
    assert parse_timestamp(value) == MOMENT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1748781045, datetime(2025, 6, 1, 12, 30, 45, tzinfo=UTC)),
        ("1748781045", datetime(2025, 6, 1, 12, 30, 45, tzinfo=UTC)),
        ("Sun, 01 Jun 2025 14:30:45 +0200", datetime(2025, 6, 1, 12, 30, 45, tzinfo=UTC)),
        ("Sun, 1 Jun 2025 12:30:45 GMT", datetime(2025, 6, 1, 12, 30, 45, tzinfo=UTC)),
        ("2025-06-01", datetime(2025, 6, 1, tzinfo=UTC)),
        ("June 1, 2025 12:30:45 UTC", datetime(2025, 6, 1, 12, 30, 45, tzinfo=UTC)),
    ],
)
def test_whole_seconds_dates_and_rfc2822(value: object, expected: datetime) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize(
    ("value", "category"),
    [
        (None, "missing timestamp"),
        ("", "missing timestamp"),
        ("   ", "missing timestamp"),
        ("yesterday-ish", "unparseable timestamp"),
        (True, "unparseable timestamp"),
        ({"t": 1}, "unparseable timestamp"),
        (float("nan"), "unparseable timestamp"),
        (float("inf"), "unparseable timestamp"),
        ("NaN", "unparseable timestamp"),
        (0, "timestamp before 1990"),
        (-5, "timestamp before 1990"),
        ("0001-01-01T00:00:00Z", "timestamp before 1990"),
        (1e300, "timestamp out of range"),
        ("99999999999999999999999", "timestamp out of range"),
    ],
)
def test_bad_timestamps_reject_with_a_stable_category(value: object, category: str) -> None:
    with pytest.raises(TimestampError) as caught:
        parse_timestamp(value)
    assert caught.value.reason.split(": ", 1)[0] == category


def test_year_9999_parses_and_future_is_judged_by_the_pipeline() -> None:
    assert parse_timestamp("9999-12-31T23:59:59Z").year == 9999


def test_format_timestamp_is_utc_with_milliseconds() -> None:
    assert format_timestamp(MOMENT) == "2025-06-01T12:30:45.123Z"
    assert format_timestamp(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2025-01-02T03:04:05.000Z"


@pytest.mark.parametrize("value", ["03/04/2025", "17 Mar", "Monday 10am", "4.3.2025 10:00"])
def test_ambiguous_dates_are_rejected_not_guessed(value: str) -> None:
    with pytest.raises(TimestampError, match="ambiguous timestamp"):
        parse_timestamp(value)
