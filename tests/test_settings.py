from datetime import UTC, datetime, timedelta

import pytest

from emailsrc.settings import SettingsError, default_state_path, parse_when

NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-01", datetime(2025, 6, 1, tzinfo=UTC)),
        ("2025-06-01T08:00:00", datetime(2025, 6, 1, 8, tzinfo=UTC)),
        ("2025-06-01T08:00:00+02:00", datetime(2025, 6, 1, 6, tzinfo=UTC)),
        ("7d", NOW - timedelta(days=7)),
        ("12h", NOW - timedelta(hours=12)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2w", NOW - timedelta(weeks=2)),
    ],
)
def test_parse_when(text: str, expected: datetime) -> None:
    assert parse_when(text, now=NOW) == expected


def test_parse_when_refuses_garbage_with_a_hint() -> None:
    with pytest.raises(SettingsError, match="7d"):
        parse_when("last tuesday", now=NOW)


def test_default_state_path_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_path() == tmp_path / "emailsrc" / "ledger.sqlite3"
