"""The local stand-in for Segment's API: the behaviour benchmarks rely on."""

import gzip
import time

import httpx
import orjson

from fake_segment import FakeSegment


def post(server: FakeSegment, count: int, start: int = 0) -> httpx.Response:
    batch = [
        {"type": "track", "event": "Email Opened", "userId": "u", "messageId": f"m{i}"}
        for i in range(start, start + count)
    ]
    body = gzip.compress(orjson.dumps({"batch": batch}))
    return httpx.post(
        f"{server.url}/v1/batch",
        content=body,
        auth=(server.write_key, ""),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )


def test_max_rate_answers_429_past_a_second_of_events_then_recovers() -> None:
    with FakeSegment(max_rate=100) as server:
        assert post(server, 100).status_code == 200  # the bucket starts with one second
        refused = post(server, 100, start=100)  # would need a second of refill
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        time.sleep(1.1)
        assert post(server, 100, start=200).status_code == 200
        assert server.accepted_events == 200
        assert "1 over --max-rate" in server.summary()


def test_no_rate_limit_by_default() -> None:
    with FakeSegment() as server:
        for start in range(0, 5000, 2500):
            assert post(server, 2500, start).status_code == 200
