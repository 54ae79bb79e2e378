"""The default engine: real PP-OCRv6 models on ONNX Runtime, on generated receipts."""

from __future__ import annotations

import random

import numpy as np
import onnxruntime as ort
import pytest

from services.demo.receipts import random_spec, render_receipt
from services.ocr.engine import OcrError, parse_device
from services.ocr.onnx_engine import (
    OnnxOcrEngine,
    ShapeProfile,
    _providers,
    bucket,
    gpu_provider_options,
)

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


def test_tensorrt_gets_one_shape_profile_per_model_and_cuda_the_gpu_number(tmp_path) -> None:
    """The options each GPU provider is given (built without a GPU: no session here)."""
    profile = ShapeProfile((1, 3, 32, 32), (8, 3, 1280, 1280), (8, 3, 1280, 1280))
    options = gpu_provider_options("tensorrt", 1, tmp_path / "trt", profile)
    trt = options["TensorrtExecutionProvider"]
    assert trt["trt_profile_min_shapes"] == "x:1x3x32x32"
    assert trt["trt_profile_opt_shapes"] == trt["trt_profile_max_shapes"] == "x:8x3x1280x1280"
    assert trt["trt_engine_cache_enable"] and (tmp_path / "trt").is_dir()
    assert options["CUDAExecutionProvider"] == {"device_id": 1}
    assert set(gpu_provider_options("cuda", 0)) == {"CUDAExecutionProvider"}


def test_the_engines_profiles_cover_every_shape_its_calls_give() -> None:
    engine = OnnxOcrEngine(
        cpu_runtime="onnxruntime", shape_buckets=True, batch_size=8, det_max_side=1280
    )
    det, rec = engine.profile("det"), engine.profile("rec")
    assert det.max == (8, 3, 1280, 1280) and det.min == (1, 3, 32, 32)
    assert rec.max[0] == 8 and rec.max[2] == 48 and rec.max[3] >= 3200
    assert [bucket(n, 256) for n in (1, 256, 257, 736, 1280)] == [256, 256, 512, 768, 1280]


def test_bucketed_batches_read_what_page_by_page_reads(receipt) -> None:
    """The GPU's call shape (pages detected together, inputs padded to shape buckets) run
    on the CPU: the same lines as the CPU's page-by-page reading, a turned page included."""
    page, expected = receipt
    small = np.ascontiguousarray(page[: page.shape[0] // 2])
    turned = np.ascontiguousarray(np.rot90(page, k=1))
    pages = [page, small, turned]
    plain = OnnxOcrEngine(threads=2, cpu_runtime="onnxruntime")
    bucketed = OnnxOcrEngine(threads=2, cpu_runtime="onnxruntime", shape_buckets=True, batch_size=3)
    one_by_one = [plain.read([p])[0] for p in pages]
    together = bucketed.read(pages)
    assert [r.turns for r in together] == [r.turns for r in one_by_one] == [0, 0, 1]
    for a, b in zip(one_by_one, together, strict=True):
        assert [line.text for line in a.lines] == [line.text for line in b.lines]
    assert expected["total"] in _text(together[2])


def test_warm_up_runs_every_bucketed_shape_once() -> None:
    engine = OnnxOcrEngine(
        threads=2, cpu_runtime="onnxruntime", shape_buckets=True, batch_size=2, det_max_side=512
    )
    # Detection: batches of 1 and 2 at 256/512 a side (8); recognition: 10 widths; cls: 1.
    assert engine.warm_up() == 8 + 10 + 1


def test_the_cpu_runs_openvino_unless_onnxruntime_is_asked_for(ocr_engine, receipt) -> None:
    """Both CPU runtimes read the same receipt, the same way: OpenVINO (the default) pads
    recognition inputs a little, to recurring widths."""
    page, expected = receipt
    assert ocr_engine.runtime == "openvino"
    onnxruntime = OnnxOcrEngine(threads=2, cpu_runtime="onnxruntime")
    assert onnxruntime.runtime == "onnxruntime"
    for engine in (ocr_engine, onnxruntime):
        text = _text(engine.read([page])[0])
        assert expected["invoice_number"] in text and expected["total"] in text
    lines = {
        engine.runtime: [line.text for line in engine.read([page])[0].lines]
        for engine in (ocr_engine, onnxruntime)
    }
    assert lines["openvino"] == lines["onnxruntime"]


def test_openvino_reads_the_recognisers_dictionary_from_the_model_file() -> None:
    from services.ocr.onnx_engine import REC_MODEL, bundled_model_dir
    from services.ocr.runtimes import OpenVinoModel, OrtModel

    path = bundled_model_dir() / REC_MODEL
    openvino = OpenVinoModel(path, threads=1, precision="f32")
    onnxruntime = OrtModel(path, ort.SessionOptions(), ["CPUExecutionProvider"])
    assert openvino.metadata("character") == onnxruntime.metadata("character")
    assert openvino.metadata("no such key") is None
    batch = np.zeros((2, 3, 48, 160), dtype=np.float32)
    assert openvino(batch).shape == onnxruntime(batch).shape


def test_a_gpu_always_runs_onnxruntime() -> None:
    with pytest.raises(OcrError, match="ONNX Runtime's CUDAExecutionProvider"):
        OnnxOcrEngine(device="cuda:0", cpu_runtime="openvino")


def test_ocr_cpu_runtime_is_a_setting_the_worker_engine_follows(tmp_path) -> None:
    from pydantic import ValidationError

    from services.config import Settings
    from workers.wiring import build_ocr_engine

    def settings(**env: object) -> Settings:
        return Settings(_env_file=None, CLAIMS_OCR_DATA_DIR=tmp_path, **env)  # type: ignore[call-arg]

    assert build_ocr_engine(settings(OCR_THREADS=1)).runtime == "openvino"
    engine = build_ocr_engine(settings(OCR_THREADS=1, OCR_CPU_RUNTIME="onnxruntime"))
    assert engine.runtime == "onnxruntime"
    for wrong in ({"OCR_CPU_RUNTIME": "tflite"}, {"OCR_CPU_PRECISION": "int4"}):
        with pytest.raises(ValidationError):
            settings(**wrong)
