"""How a batch's pages are grouped into engine calls: under the call pixel budget, and
by device (true batches on a GPU, a few pages a call on a CPU) under the memory budget."""

from __future__ import annotations

from services.claim_reader import CPU_CALL_MAX_PIXELS, call_max_pixels, plan_calls


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


# A worker's batch as it comes: phone receipts (~0.5-1 Mpx) and A4 scans (4.4 and 8.7 Mpx).
A4 = 8_703_348
MIXED_BATCH = [[400_000], [1_000_000], [4_420_000], [700_000], [A4, A4], [500_000], [A4]]
MEMORY_BUDGET = 64_000_000


def test_a_gpu_reads_the_batch_as_one_true_batch_under_the_memory_budget() -> None:
    for device in ("cuda", "tensorrt"):
        budget = call_max_pixels(device, MEMORY_BUDGET)
        assert budget == MEMORY_BUDGET
        assert plan_calls(MIXED_BATCH, budget) == [
            [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (4, 1), (5, 0), (6, 0)]
        ]


def test_a_cpu_reads_a_few_pages_a_call() -> None:
    budget = call_max_pixels("cpu", MEMORY_BUDGET)
    assert budget == CPU_CALL_MAX_PIXELS < MEMORY_BUDGET
    # The receipts and the first A4 scans fill one call; the last scan starts another.
    assert plan_calls(MIXED_BATCH, budget) == [
        [(0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (4, 1), (5, 0)],
        [(6, 0)],
    ]


def test_the_memory_budget_caps_every_call_on_every_device() -> None:
    for device in ("cpu", "cuda", "tensorrt"):
        budget = call_max_pixels(device, 5_000_000)
        assert budget <= 5_000_000
        for call in plan_calls(MIXED_BATCH, budget):
            pixels = [MIXED_BATCH[doc][page] for doc, page in call]
            assert sum(pixels) <= 5_000_000 or len(call) == 1
    assert plan_calls(MIXED_BATCH, call_max_pixels("cuda", 5_000_000))[0] == [
        (0, 0),
        (1, 0),
    ]


def test_the_workers_page_limits_follow_ocr_device_under_ocr_call_max_pixels() -> None:
    from services.config import Settings
    from workers.wiring import page_limits

    def limits(**env: object) -> int:
        settings = Settings(_env_file=None, **env)  # type: ignore[call-arg]
        return page_limits(settings).call_max_pixels

    assert limits(OCR_DEVICE="cuda", OCR_CALL_MAX_PIXELS=MEMORY_BUDGET) == MEMORY_BUDGET
    assert limits(OCR_DEVICE="cuda", OCR_CALL_MAX_PIXELS=9_000_000) == 9_000_000
    assert limits(OCR_DEVICE="tensorrt", OCR_CALL_MAX_PIXELS=9_000_000) == 9_000_000
    assert limits(OCR_DEVICE="cpu", OCR_CALL_MAX_PIXELS=MEMORY_BUDGET) == CPU_CALL_MAX_PIXELS
