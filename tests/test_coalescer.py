"""The coalescer alone: what goes into each chunk, in which order, with which seq, and how
long a flush window is. No I/O."""

from __future__ import annotations

import pytest

from engine.stream.coalescer import MAX_WINDOW_S, Chunk, Coalescer


def test_a_chunk_carries_all_text_since_the_last_one_with_the_next_seq() -> None:
    c = Coalescer(0.02)
    c.open("a")
    assert c.append("a", "Hel") is True  # newly queued: the flush loop must wake
    assert c.append("a", "lo") is False
    chunks = c.take()
    assert chunks == [Chunk("a", 1, "Hello")]
    assert c.take() == []  # nothing new
    c.published(chunks)
    c.append("a", "!")
    assert c.take() == [Chunk("a", 2, "!")]


def test_text_appended_while_a_chunk_is_in_flight_goes_into_the_next() -> None:
    c = Coalescer(0.02)
    c.open("a")
    c.append("a", "one ")
    first = c.take()
    c.append("a", "two")  # the pipeline with `first` has not answered yet
    assert c.is_queued("a")
    c.published(first)
    assert c.take() == [Chunk("a", 2, "two")]


def test_tasks_are_flushed_in_the_order_they_first_had_text() -> None:
    c = Coalescer(0.02)
    for task in ("a", "b", "c"):
        c.open(task)
    c.append("b", "x")
    c.append("a", "y")
    c.append("b", "z")
    assert [(ch.task_id, ch.text) for ch in c.take()] == [("b", "xz"), ("a", "y")]


def test_buffered_counts_text_until_it_is_published_or_dropped() -> None:
    c = Coalescer(0.02)
    c.open("a")
    c.append("a", "abcd")
    assert c.buffered == 4
    chunks = c.take()
    assert c.buffered == 4  # taken is not yet written
    c.published(chunks)
    assert c.buffered == 0
    c.append("a", "ef")
    c.dropped(c.take())
    assert c.buffered == 0


def test_close_returns_the_last_published_seq() -> None:
    c = Coalescer(0.02)
    c.open("a")
    c.append("a", "x")
    c.published(c.take())
    c.append("a", "y")
    c.take()  # taken, never published
    assert c.close("a") == 1


def streaming(n: int, base_s: float = 0.02) -> Coalescer:
    """A coalescer with `n` tasks that have each sent their first word and have more."""
    c = Coalescer(base_s)
    for i in range(n):
        c.open(f"t{i}")
        c.append(f"t{i}", "w")
    c.published(c.take())
    c.append("t0", "w")
    return c


def test_the_window_grows_with_streaming_tasks_but_never_for_a_first_word() -> None:
    c = Coalescer(0.02)
    for i in range(500):
        c.open(f"t{i}")
        c.append(f"t{i}", "w")
    assert c.window_s() == 0.02  # every task waits for its first word
    c.published(c.take())
    c.append("t1", "w")
    assert c.window_s() == MAX_WINDOW_S  # 500 streams: several tokens per chunk
    assert streaming(100).window_s() == 0.02  # 100 streams: the base window
    assert streaming(10).window_s() == pytest.approx(0.002)  # a quiet node: at once
    assert streaming(1).window_s() == pytest.approx(0.0002)  # one stream: each token
    first = streaming(1)
    first.open("new")
    first.append("new", "w")
    assert first.window_s() == pytest.approx(0.0004)  # a first word never waits longer
    assert streaming(250).window_s() == pytest.approx(0.05)
    assert Coalescer(0).window_s() == 0  # COALESCE_MS=0: no window at all
