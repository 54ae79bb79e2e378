"""How a batch's pages are grouped into engine calls under the call pixel budget."""

from __future__ import annotations

from services.claim_reader import plan_calls


def test_pages_fill_calls_in_order_up_to_the_budget() -> None:
    calls = plan_calls([[4, 4], [3], [5, 1]], budget=10)
    assert calls == [[(0, 0), (0, 1)], [(1, 0), (2, 0), (2, 1)]]
    flat = [page for call in calls for page in call]
    assert flat == sorted(flat)  # every page once, documents and pages in input order


def test_a_page_over_the_budget_is_read_alone_not_refused() -> None:
    assert plan_calls([[2], [50], [2, 2]], budget=10) == [[(0, 0)], [(1, 0)], [(2, 0), (2, 1)]]


def test_one_call_when_everything_fits_and_none_when_nothing_is_left() -> None:
    assert plan_calls([[3], [3], [3]], budget=9) == [[(0, 0), (1, 0), (2, 0)]]
    assert plan_calls([], budget=9) == []
    assert plan_calls([[]], budget=9) == []
