"""What the formats share: reasons, properties, identity, and one vocabulary for all."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emailsrc.events import RecordRejected, Skip
from emailsrc.formats import all_formats, detect_format, get_format
from emailsrc.formats.base import (
    BLOCK,
    DEFERRAL,
    HARD,
    NO_EVENT_TYPE,
    NO_IDENTITY,
    NON_EMAIL_CHANNEL,
    NOT_A_BOUNCE,
    NOT_A_COMPLAINT,
    NOT_EMAIL_EVENT,
    PERSON_LEVEL,
    SECOND_BOUNCE,
    SECOND_CLICK,
    SECOND_COMPLAINT,
    SECOND_OPEN,
    SOFT,
    SUPPRESSED,
    UNDETERMINED,
    UNKNOWN_EVENT,
    UNKNOWN_SHAPE,
    compact,
    reason,
    reject,
    skip,
)
from emailsrc.formats.common import (
    custom_properties,
    find_user_id,
    identify,
    merge_properties,
    nonzero_id,
    object_list,
    page_items,
    tag_list,
)
from format_samples import SAMPLES, SampleRun, convert_file, first_data, read_records

SKIP_CATEGORIES = {
    NOT_EMAIL_EVENT,
    DEFERRAL,
    SUPPRESSED,
    SECOND_OPEN,
    SECOND_CLICK,
    SECOND_BOUNCE,
    SECOND_COMPLAINT,
    NON_EMAIL_CHANNEL,
    PERSON_LEVEL,
    NOT_A_BOUNCE,
    NOT_A_COMPLAINT,
}
# An unknown event type or metric is bad input: every format rejects it, keeping the raw
# record, and none skips it (see the vocabulary tests below).
REJECT_CATEGORIES = {UNKNOWN_EVENT, UNKNOWN_SHAPE, NO_EVENT_TYPE, NO_IDENTITY}
# Categories only one format can produce, because only its input has the case.
FORMAT_SKIP_CATEGORIES = {
    "customerio": {"delivery has no metric times"},
    "mapped-csv": {"unmapped event value"},
}
BOUNCE_TYPES = {HARD, SOFT, BLOCK, UNDETERMINED}


# --- reasons -------------------------------------------------------------------------------


def test_reason_is_category_then_one_trimmed_line() -> None:
    assert reason(DEFERRAL) == "deferral"
    assert reason(DEFERRAL, "  ") == "deferral"
    assert reason(DEFERRAL, " 451 4.7.1\n  greylisted ") == "deferral: 451 4.7.1 greylisted"
    assert reason(UNKNOWN_EVENT, 42) == "unknown event type: 42"
    long = reason(UNKNOWN_EVENT, "x" * 500)
    assert long == f"unknown event type: {'x' * 197}..."


def test_skip_and_reject_build_the_same_reason() -> None:
    assert skip(SUPPRESSED, "dropped") == Skip("suppressed before sending: dropped")
    error = reject(UNKNOWN_SHAPE, "no msg")
    assert isinstance(error, RecordRejected) and error.reason == "unknown record shape: no msg"


def test_category_words_never_hold_a_separator() -> None:
    # Summaries split reasons at the first ": "; a category holding one would split wrong.
    for category in SKIP_CATEGORIES | REJECT_CATEGORIES:
        assert ":" not in category and category == category.strip()


# --- properties ----------------------------------------------------------------------------


def test_compact_drops_absent_and_empty_values_only() -> None:
    kept = {"zero": 0, "no": False, "text": "x", "list": [0], "object": {"a": None}}
    dropped = {"none": None, "blank": "", "list": [], "object": {}, "tuple": ()}
    assert compact({**dropped, **kept}) == kept


def test_merge_properties_prefers_what_the_provider_knew() -> None:
    merged = merge_properties(
        standard={"campaign_id": "c-1", "email_subject": None, "tags": []},
        custom={"campaign_id": "theirs", "email_subject": "custom subject", "plan": "pro"},
    )
    assert merged == {"campaign_id": "c-1", "email_subject": "custom subject", "plan": "pro"}


def test_custom_properties_are_flat_snake_case_and_never_shadow_the_builder() -> None:
    first = {
        "userId": "u-1",
        "planTier": " pro ",
        "nested": {"a": 1},
        "mixed": [1, {"a": 1}, "two", None],
        "email_id": "theirs",
        "empty": "  ",
        "ratio": float("nan"),
    }
    second = {"plan_tier": "ignored", "region": "eu"}
    assert custom_properties(first, None, second, skip_keys=["userId", None]) == {
        "plan_tier": "pro",
        "mixed": [1, "two"],
        "custom_email_id": "theirs",
        "region": "eu",
    }


def test_user_id_prefers_the_key_over_the_source() -> None:
    assert find_user_id({"customer_id": "c-1"}, {"userId": "u-1"}) == ("u-1", "userId")
    assert find_user_id({"person-id": ["p-1"]}) == ("p-1", "person-id")
    assert find_user_id({"user_id": True}, "not a mapping", None) == (None, None)


def test_identify_rejects_a_record_that_names_nobody() -> None:
    assert identify("Ann <ann@example.com>", {"uid": "x"}) == ("ann@example.com", None, None)
    assert identify(None, {"external_user_id": 7}) == (None, "7", "external_user_id")
    with pytest.raises(RecordRejected, match=f"^{NO_IDENTITY}$"):
        identify("", {})


def test_small_shared_readers() -> None:
    assert tag_list(["a", "", 3, None, {"x": 1}]) == ["a", "3"]
    assert tag_list("solo") == ["solo"]
    assert nonzero_id(0) is None and nonzero_id("0") is None and nonzero_id(12) == "12"
    assert object_list([{"a": 1}, "b", None]) == [{"a": 1}]
    assert object_list({"a": 1}) == []
    assert list(page_items([{"a": 1}, "junk"])) == [{"a": 1}, {}]


# --- one vocabulary across formats ---------------------------------------------------------


@pytest.mark.parametrize("fmt", all_formats(), ids=lambda f: f.name)
def test_mapping_tables_speak_the_shared_vocabulary(fmt: Any) -> None:
    # `emailsrc formats` prints the detection line above the table: one line, never empty.
    assert fmt.detection and "\n" not in fmt.detection
    allowed = SKIP_CATEGORIES | FORMAT_SKIP_CATEGORIES.get(fmt.name, set())
    for row in fmt.mapping_table():
        if row.outcome.startswith("skipped: "):
            assert row.outcome.removeprefix("skipped: ") in allowed, (fmt.name, row)
        elif row.outcome.startswith("Email Bounced ("):
            assert row.outcome.removeprefix("Email Bounced (").rstrip(")") in BOUNCE_TYPES, row


def _sample_runs() -> Iterator[tuple[str, str, SampleRun]]:
    """(file, format, what converting it gave) for every provider sample."""
    for path in sorted(SAMPLES.iterdir()):
        if path.suffix not in (".csv", ".jsonl") or path.name.startswith("generic"):
            continue
        records, columns = read_records(path)
        fmt = detect_format(first_data(records), columns)
        assert fmt is not None, path.name
        yield path.name, fmt.name, convert_file(fmt, path)


def test_skip_and_reject_categories_do_not_overlap() -> None:
    assert not SKIP_CATEGORIES & REJECT_CATEGORIES
    for categories in FORMAT_SKIP_CATEGORIES.values():
        assert not categories & REJECT_CATEGORIES


def test_every_sample_skip_and_bounce_uses_the_shared_vocabulary() -> None:
    seen_skips: set[str] = set()
    for name, fmt, run in _sample_runs():
        for skipped in run.skips:
            category = skipped.partition(": ")[0]
            allowed = SKIP_CATEGORIES | FORMAT_SKIP_CATEGORIES.get(fmt, set())
            assert category in allowed, (name, skipped)
            seen_skips.add(category)
        for event in run.events:
            bounce_type = event.properties.get("bounce_type")
            assert bounce_type is None or bounce_type in BOUNCE_TYPES, (name, event)
    # The samples exercise the common categories, so a renamed one cannot slip through.
    assert {NOT_EMAIL_EVENT, DEFERRAL, SUPPRESSED, SECOND_OPEN, PERSON_LEVEL} <= seen_skips


# --- the provider sample exports -----------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "name"),
    [
        ("brevo_transactional.jsonl", "brevo"),
        ("mailgun_events_2025-04.jsonl", "mailgun"),
        ("mailjet_events.jsonl", "mailjet"),
        ("mandrill_webhooks_2025-07.jsonl", "mandrill"),
        ("postmark_webhooks_2025-05.jsonl", "postmark"),
        ("resend_webhooks.jsonl", "resend"),
        ("sendgrid_events_2025-03.jsonl", "sendgrid"),
        ("ses_events_2025-06.jsonl", "ses"),
        ("sparkpost_events_api.jsonl", "sparkpost"),
        ("sparkpost_webhooks.jsonl", "sparkpost"),
    ],
)
def test_sample_export_is_detected_as_its_format_only(sample: str, name: str) -> None:
    records, _ = read_records(SAMPLES / sample)
    first = first_data(records)
    fmt = get_format(name)
    assert detect_format(first, None) is fmt
    others = [f.name for f in all_formats() if f is not fmt and f.matches(first, None)]
    assert others == []
