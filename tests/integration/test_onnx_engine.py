"""The default engine: real PP-OCRv6 models on ONNX Runtime, on generated receipts."""

from __future__ import annotations

import random

import numpy as np
import onnxruntime as ort
import pytest

from services.demo.receipts import random_spec, render_receipt
from services.ocr.engine import OcrError, parse_device
from services.ocr.onnx_engine import OnnxOcrEngine, _providers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def receipt() -> tuple[np.ndarray, dict]:
    spec = random_spec(random.Random(7))
    page = np.asarray(render_receipt(spec, seed=7).convert("RGB"))
    return page, spec.expected_fields()


def _text(page_text) -> str:
    return "\n".join(line.text for line in page_text.lines)


def test_reads_a_receipt_with_boxes_and_per_character_confidence(ocr_engine, receipt) -> None:
    page, expected = receipt
    (result,) = ocr_engine.read([page])
    text = _text(result)
    assert expected["invoice_number"] in text
    assert expected["total"] in text
    assert (result.width, result.height) == (page.shape[1], page.shape[0])
    for line in result.lines:
        assert len(line.char_confidences) == len(line.text)
        assert 0.5 <= line.confidence <= 1.0
        xs = [p[0] for p in line.box]
        ys = [p[1] for p in line.box]
        assert 0 <= min(xs) <= max(xs) <= page.shape[1]
        assert 0 <= min(ys) <= max(ys) <= page.shape[0]
    tops = [line.top for line in result.lines]
    assert tops[0] <= tops[len(tops) // 2] <= tops[-1]  # reading order


def test_one_call_reads_a_batch_of_pages_in_order(ocr_engine, receipt) -> None:
    page, expected = receipt
    blank = np.full((400, 300, 3), 255, dtype=np.uint8)
    results = ocr_engine.read([blank, page, blank])
    assert len(results) == 3
    assert results[0].lines == () and results[2].lines == ()
    assert expected["total"] in _text(results[1])


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_sideways_and_upside_down_pages_are_turned_upright(ocr_engine, receipt, turns) -> None:
    page, expected = receipt
    (result,) = ocr_engine.read([np.ascontiguousarray(np.rot90(page, k=turns))])
    assert expected["invoice_number"] in _text(result)


def test_gpu_request_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(OcrError, match="OCR_DEVICE=cuda"):
        OnnxOcrEngine(device="cuda")


@pytest.mark.parametrize(
    ("device", "parsed"),
    [
        ("cpu", ("cpu", 0)),
        ("cuda", ("cuda", 0)),
        ("cuda:1", ("cuda", 1)),
        ("TensorRT:2", ("tensorrt", 2)),
    ],
)
def test_ocr_devices_name_a_kind_and_a_gpu(device: str, parsed: tuple[str, int]) -> None:
    assert parse_device(device) == parsed


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu:0", "rocm"])
def test_an_unknown_ocr_device_is_refused(device: str) -> None:
    with pytest.raises(OcrError):
        parse_device(device)


def test_each_gpu_provider_gets_the_gpu_number_and_tensorrt_a_disk_cache(tmp_path) -> None:
    """What the engine hands ONNX Runtime: on a machine without the GPU build (here) the
    request is refused before any session; with it, the options name the GPU."""
    assert _providers("cpu") == ["CPUExecutionProvider"]
    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(OcrError, match="gpu' extra"):
            _providers("tensorrt:1", tmp_path / "trt")
        return
    providers = _providers("tensorrt:1", tmp_path / "trt")
    assert [p if isinstance(p, str) else p[0] for p in providers] == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    trt = providers[0][1]
    assert trt["device_id"] == 1 and trt["trt_engine_cache_path"] == str(tmp_path / "trt")
    assert providers[1][1] == {"device_id": 1}
