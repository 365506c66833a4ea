"""The coalescer scores requests that arrive together in one call, and routes each request its own
results; a request alone is scored at once."""

from __future__ import annotations

import asyncio

import pytest

from serving.api.coalesce import Coalescer


class Squares:
    """A real scoring function for the tests: squares its items and remembers each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, list[int]]] = []

    def __call__(self, key: object, items: list[int]) -> list[int]:
        self.calls.append((key, list(items)))
        return [x * x for x in items]


def _run(coro):  # noqa: ANN001, ANN202
    return asyncio.run(coro)


def test_requests_submitted_together_share_one_call_and_get_their_own_results() -> None:
    score = Squares()
    c = Coalescer(score)

    async def main() -> list[tuple[list[int], int]]:
        return await asyncio.gather(*(c.submit("k", [i, i + 100]) for i in range(10)))

    out = _run(main())
    assert [results for results, _ in out] == [[i * i, (i + 100) ** 2] for i in range(10)]
    assert [together for _, together in out] == [10] * 10
    assert len(score.calls) == 1 and len(score.calls[0][1]) == 20


def test_a_request_alone_is_scored_at_once() -> None:
    score = Squares()
    c = Coalescer(score)

    async def main() -> list:
        first = await c.submit("k", [3])
        second = await c.submit("k", [4])
        return [first, second]

    assert _run(main()) == [([9], 1), ([16], 1)]
    assert [items for _, items in score.calls] == [[3], [4]]


def test_requests_that_arrive_while_a_task_is_still_parsing_join_the_call() -> None:
    """A request whose handler needs a few more turns of the loop before it submits is not left
    behind: the flush waits until a turn adds nothing new."""
    score = Squares()
    c = Coalescer(score)

    async def late(i: int) -> tuple[list[int], int]:
        for _ in range(i):  # i turns of the loop before submitting, like reading a body
            await asyncio.sleep(0)
        return await c.submit("k", [i])

    async def main() -> list:
        return await asyncio.gather(*(late(i) for i in range(5)))

    out = _run(main())
    assert [r for r, _ in out] == [[i * i] for i in range(5)]
    assert len(score.calls) == 1


def test_different_keys_are_scored_apart() -> None:
    score = Squares()
    c = Coalescer(score)

    async def main() -> list:
        return await asyncio.gather(c.submit(5, [1]), c.submit(3, [2]), c.submit(5, [3]))

    assert [r for r, _ in _run(main())] == [[1], [4], [9]]
    assert sorted(score.calls) == [(3, [2]), (5, [1, 3])]


def test_calls_hold_at_most_max_items_and_a_bigger_request_runs_alone() -> None:
    score = Squares()
    c = Coalescer(score, max_items=4)

    async def main() -> list:
        return await asyncio.gather(c.submit("k", [1, 2]), c.submit("k", [3, 4]), c.submit("k", [5]),
                                    c.submit("k", [6, 7, 8, 9, 10]), c.submit("k", [11]))

    out = _run(main())
    assert [r for r, _ in out] == [[1, 4], [9, 16], [25], [36, 49, 64, 81, 100], [121]]
    assert [items for _, items in score.calls] == [[1, 2, 3, 4], [5], [6, 7, 8, 9, 10], [11]]
    assert [t for _, t in out] == [2, 2, 1, 1, 1]


def test_a_failing_call_fails_every_request_in_it_and_the_next_call_still_works() -> None:
    def score(key: object, items: list[int]) -> list[int]:
        if 0 in items:
            raise ValueError("zero is not a seller")
        return items

    c = Coalescer(score)

    async def main() -> tuple[list, tuple]:
        together = await asyncio.gather(c.submit("k", [0]), c.submit("k", [1]), return_exceptions=True)
        return together, await c.submit("k", [2])

    together, after = _run(main())
    assert all(isinstance(e, ValueError) and "zero" in str(e) for e in together)
    assert after == ([2], 1)


def test_a_function_returning_the_wrong_number_of_results_is_an_error() -> None:
    c = Coalescer(lambda key, items: items[:-1])
    with pytest.raises(RuntimeError, match="scored 2 items into 1 results"):
        _run(c.submit("k", [1, 2]))


def test_a_steady_stream_does_not_hold_the_first_request_back() -> None:
    """New requests on every turn of the loop: the first call goes out after a bounded wait."""
    from serving.api.coalesce import MAX_TURNS

    score = Squares()
    c = Coalescer(score)

    async def stream() -> list:
        tasks = []
        for i in range(10 * MAX_TURNS):
            tasks.append(asyncio.ensure_future(c.submit("k", [i])))
            await asyncio.sleep(0)
        return await asyncio.gather(*tasks)

    out = _run(stream())
    assert [r for r, _ in out] == [[i * i] for i in range(10 * MAX_TURNS)]
    assert len(score.calls) > 1 and len(score.calls[0][1]) <= MAX_TURNS + 1
