"""PP-OCR (PaddleOCR's detection + recognition models) from their ONNX files: OpenVINO
or ONNX Runtime on the CPU, ONNX Runtime on a GPU.

The PP-OCRv6 small models ship inside the ``rapidocr`` wheel, so nothing is downloaded.
We drive the models ourselves instead of calling rapidocr's pipeline because we
need three things it does not give: one recognition pass over the text crops of *many*
pages (GPU batching), per-character probabilities (field confidence is built from the
characters that carry a value), and page-level orientation fixing.
"""

from __future__ import annotations

import importlib.resources
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
from rapidocr.ch_ppocr_det.utils import DBPostProcess

from services.ocr.engine import GPU_PROVIDERS, OcrError, parse_device
from services.ocr.result import PageText, TextLine, quad, reading_order
from services.ocr.runtimes import CpuRuntime, Model, OpenVinoModel, OrtModel, Precision

log = logging.getLogger(__name__)

DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
CLS_MODEL = "ch_ppocr_mobile_v2.0_cls_mobile.onnx"

_REC_HEIGHT = 48
_DET_MIN_SIDE = 736
_CLS_SHAPE = (48, 192)
_CLS_BATCH = 16  # lines the orientation vote reads
_MIN_LINE_SCORE = 0.5  # lines read below this are noise (speckles, stamps, barcodes)
# Shape buckets (on a GPU): detection inputs padded up to a multiple of this many pixels a
# side, recognition inputs to a multiple of this width, so a handful of shapes recur and
# neither TensorRT nor cuDNN meets a new one after warm-up.
_DET_BUCKET = 256
_REC_BUCKET = 128
# OpenVINO (CPU) prepares and keeps kernels for each new input shape (30-150 ms and some
# memory the first time), so recognition batches are padded to recurring shapes: 1, 2, 4
# or 8 rows, widths in multiples of 32 px. Wider padding (128 px) and pages padded or
# stretched for detection changed marginal characters ("SDN" read "SON") on the shared
# receipts; one page per detection call needs no padding.
_OPENVINO_REC_BUCKET = 32
# The widest recognition input on a GPU (a line 66 times as long as it is high); a wider
# line is squeezed to it rather than given a shape of its own.
_REC_MAX_WIDTH = 3200
# Recognition widths run at warm-up: most lines; a longer one meets its shape at run time.
_WARM_REC_WIDTHS = range(_REC_BUCKET, 1280 + 1, _REC_BUCKET)


@dataclass(frozen=True)
class ShapeProfile:
    """The input shapes (N, C, H, W) one model sees: TensorRT builds one engine for the
    whole range, tuned for ``opt``, instead of one per shape met."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def tensorrt_options(self, input_name: str = "x") -> dict[str, str]:
        def spec(shape: tuple[int, int, int, int]) -> str:
            return f"{input_name}:" + "x".join(map(str, shape))

        return {
            "trt_profile_min_shapes": spec(self.min),
            "trt_profile_opt_shapes": spec(self.opt),
            "trt_profile_max_shapes": spec(self.max),
        }


@dataclass(frozen=True)
class _Detected:
    """A text box on a page and its upright crop."""

    box: np.ndarray  # (4, 2) float32, page pixels
    crop: np.ndarray


def bundled_model_dir() -> Path:
    """Where the rapidocr wheel keeps its PP-OCR ONNX models."""
    return Path(str(importlib.resources.files("rapidocr") / "models"))


def _providers(
    device: str, cache_dir: Path | None = None, profile: ShapeProfile | None = None
) -> list[Any]:
    """The execution providers for ``device``, with their options, CPU last."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    wanted = GPU_PROVIDERS[kind]
    if wanted[0] not in available:
        raise OcrError(
            f"OCR_DEVICE={device} needs ONNX Runtime's {wanted[0]}, which is not available "
            f"here (available: {', '.join(available)}). Install the 'gpu' extra "
            "(onnxruntime-gpu) on a machine with an NVIDIA GPU, or set OCR_DEVICE=cpu."
        )
    options = gpu_provider_options(kind, index, cache_dir, profile)
    return [(name, options[name]) for name in wanted] + ["CPUExecutionProvider"]


def gpu_provider_options(
    kind: str, index: int, cache_dir: Path | None = None, profile: ShapeProfile | None = None
) -> dict[str, dict[str, Any]]:
    """Each GPU provider's options for GPU ``index``.

    TensorRT builds an engine for the model's shape ``profile`` on first use (minutes);
    with ``cache_dir`` it keeps it on disk, so a restarted worker does not build it again.
    """
    options: dict[str, dict[str, Any]] = {"CUDAExecutionProvider": {"device_id": index}}
    if kind == "tensorrt":
        trt: dict[str, Any] = {"device_id": index, "trt_fp16_enable": True}
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
        if profile is not None:
            trt.update(profile.tensorrt_options())
        options["TensorrtExecutionProvider"] = trt
    return options


def bucket(size: int, step: int) -> int:
    """``size`` rounded up to a multiple of ``step``."""
    return max(step, math.ceil(size / step) * step)


class OnnxOcrEngine:
    """PP-OCRv6 detection + recognition on OpenVINO (CPU) or ONNX Runtime (CPU, CUDA or
    TensorRT)."""

    name = "onnx"

    def __init__(
        self,
        *,
        device: str = "cpu",
        threads: int = 0,
        det_max_side: int = 1280,
        batch_size: int | None = None,
        model_dir: Path | None = None,
        cache_dir: Path | None = None,
        shape_buckets: bool | None = None,
        cpu_runtime: CpuRuntime = "openvino",
        precision: Precision = "bf16",
    ) -> None:
        """``cache_dir``: where TensorRT keeps the engines it builds (``tensorrt`` only).
        ``shape_buckets``: pad inputs to a few recurring shapes (default: on a GPU and on
        OpenVINO, which prepare kernels per shape). ``cpu_runtime`` and ``precision``: what
        runs the models on the CPU (a GPU always runs ONNX Runtime)."""
        model_dir = model_dir or bundled_model_dir()
        kind, _ = parse_device(device)
        self._runtime = "onnxruntime" if kind != "cpu" else cpu_runtime
        # On a CPU, padding pages or crops to a common size costs more than it saves,
        # except where the runtime pays more for each new shape.
        self._det_batch = batch_size or (8 if kind != "cpu" else 1)
        self._rec_batch = 64 if kind != "cpu" else 8
        self._det_max_side = det_max_side
        per_shape_cost = kind != "cpu" or self._runtime == "openvino"
        self._buckets = per_shape_cost if shape_buckets is None else shape_buckets
        openvino = self._runtime == "openvino"
        self._det_bucket = 32 if openvino else _DET_BUCKET  # pages are resized to 32s anyway
        self._rec_bucket = _OPENVINO_REC_BUCKET if openvino else _REC_BUCKET
        self._pow2_rows = openvino
        try:
            self._det, self._rec, self._cls = (
                self._load(model_dir / name, device, threads, precision, cache_dir, model)
                for name, model in ((DET_MODEL, "det"), (REC_MODEL, "rec"), (CLS_MODEL, "cls"))
            )
        except OcrError:
            raise
        except Exception as exc:  # the runtimes raise their own untyped errors
            raise OcrError(f"Could not load the PP-OCR models from {model_dir}: {exc}") from exc
        if kind != "cpu":
            # ONNX Runtime falls back to the CPU, with a warning only, when the GPU it was
            # given is absent or unusable; a GPU worker must not quietly run on the CPU.
            wanted = GPU_PROVIDERS[kind][0]
            used = self._det.session.get_providers()[0] if isinstance(self._det, OrtModel) else ""
            if used != wanted:
                raise OcrError(
                    f"OCR_DEVICE={device}: ONNX Runtime could not use that GPU ({wanted} "
                    f"fell back to {used}); check the driver and the GPU number, or set "
                    "OCR_DEVICE=cpu."
                )
        charset = self._rec.metadata("character")
        if not charset:
            raise OcrError(f"{REC_MODEL} carries no character dictionary.")
        # CTC: index 0 is the blank; the dictionary is followed by a space.
        self._charset = ["", *charset.splitlines(), " "]
        self._db = DBPostProcess(
            thresh=0.3, box_thresh=0.5, unclip_ratio=1.6, use_dilation=True, score_mode="fast"
        )

    def profile(self, model: str) -> ShapeProfile:
        """The input shapes ``model`` ("det", "rec" or "cls") sees from this engine."""
        if model == "det":
            side = bucket(self._det_max_side, self._det_bucket if self._buckets else 32)
            return ShapeProfile(
                (1, 3, 32, 32), (self._det_batch, 3, side, side), (self._det_batch, 3, side, side)
            )
        if model == "rec":
            return ShapeProfile(
                (1, 3, _REC_HEIGHT, _REC_HEIGHT),
                (self._rec_batch, 3, _REC_HEIGHT, 640),
                (self._rec_batch, 3, _REC_HEIGHT, _REC_MAX_WIDTH),
            )
        height, width = _CLS_SHAPE
        return ShapeProfile(
            (1, 3, height, width), (_CLS_BATCH, 3, height, width), (_CLS_BATCH, 3, height, width)
        )

    @property
    def runtime(self) -> str:
        """What runs the models: ``openvino`` or ``onnxruntime``."""
        return self._runtime

    def _load(
        self,
        path: Path,
        device: str,
        threads: int,
        precision: Precision,
        cache_dir: Path | None,
        model: str,
    ) -> Model:
        if self._runtime == "openvino":
            return OpenVinoModel(path, threads, precision)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        return OrtModel(path, options, _providers(device, cache_dir, self.profile(model)))

    # -- public -------------------------------------------------------------------

    def warm_up(self) -> int:
        """Run each model once at every bucketed shape a call can give it, so TensorRT
        builds (or loads from its cache) its engines and cuDNN picks its kernels at worker
        start, not on the first claims. Returns the number of runs."""
        det = self.profile("det").max
        step = self._det_bucket
        sides = range(step, det[2] + 1, step) if self._buckets else (det[2],)
        shapes = [(n, 3, h, w) for n in sorted({1, self._det_batch}) for h in sides for w in sides]
        for shape in shapes:
            self._det(np.ones(shape, dtype=np.float32))
        widths = _WARM_REC_WIDTHS if self._buckets else (640,)
        for width in widths:
            batch = np.zeros((self._rec_batch, 3, _REC_HEIGHT, width), dtype=np.float32)
            self._rec(batch)
        self._cls(np.zeros(self.profile("cls").opt, dtype=np.float32))
        return len(shapes) + len(widths) + 1

    def read(self, pages: Sequence[np.ndarray]) -> list[PageText]:
        # Detection over all the pages in batches first (true batches on a GPU); a page
        # that lies sideways or upside down is then turned and detected again alone.
        first = self._detect(pages)
        upright = [self._upright(page, dets) for page, dets in zip(pages, first, strict=True)]
        detected = [dets for _, _, dets in upright]
        crops = [d.crop for dets in detected for d in dets]
        texts = self._recognise(crops)
        results: list[PageText] = []
        cursor = 0
        for (page, turns, _), dets in zip(upright, detected, strict=True):
            lines = []
            for det in dets:
                text, probs = texts[cursor]
                cursor += 1
                score = float(np.mean(probs)) if probs else 0.0
                if not text.strip() or score < _MIN_LINE_SCORE:
                    continue
                box = quad(det.box)
                lines.append(TextLine(text, box, score, tuple(float(p) for p in probs)))
            height, width = page.shape[:2]
            results.append(PageText(width, height, reading_order(lines), turns))
        return results

    # -- orientation ----------------------------------------------------------------

    def _upright(
        self, page: np.ndarray, dets: list[_Detected]
    ) -> tuple[np.ndarray, int, list[_Detected]]:
        """Turn the page (text ``dets``) a quarter or half turn if it lies sideways or
        flipped, and detect its text again.

        Also returns the clockwise quarter turns given (``PageText.turns``), so boxes on
        the turned page can be mapped back onto the page as handed in.
        """
        turns = 0
        tall = sum(1 for d in dets if _is_tall(d.box))
        if len(dets) >= 3 and tall > len(dets) / 2:
            page = np.ascontiguousarray(np.rot90(page, k=-1))  # a clockwise quarter turn
            turns += 1
            dets = self._detect([page])[0]
        if self._upside_down([d.crop for d in dets]):
            page = np.ascontiguousarray(np.rot90(page, k=2))
            turns += 2
            dets = self._detect([page])[0]
        return page, turns, dets

    def _upside_down(self, crops: list[np.ndarray]) -> bool:
        """Majority vote of the 180-degree line classifier over the widest lines."""
        if len(crops) < 2:
            return False
        sample = sorted(crops, key=lambda c: c.shape[1] / c.shape[0], reverse=True)[:_CLS_BATCH]
        height, width = _CLS_SHAPE
        batch = np.stack([_resize_norm(c, height, width) for c in sample])
        probs = self._cls(batch)
        flipped = int(np.sum((probs[:, 1] > probs[:, 0]) & (probs[:, 1] > 0.9)))
        return flipped > len(sample) / 2

    # -- detection --------------------------------------------------------------------

    def _detect(self, pages: Sequence[np.ndarray]) -> list[list[_Detected]]:
        results: list[list[_Detected]] = []
        for start in range(0, len(pages), self._det_batch):
            chunk = pages[start : start + self._det_batch]
            resized = [self._det_resize(p) for p in chunk]
            height = max(r.shape[0] for r in resized)
            width = max(r.shape[1] for r in resized)
            if self._buckets:
                height, width = bucket(height, self._det_bucket), bucket(width, self._det_bucket)
            # Pad with white paper (1.0 after normalisation) so padding reads as blank.
            batch = np.ones((len(chunk), 3, height, width), dtype=np.float32)
            for i, r in enumerate(resized):
                batch[i, :, : r.shape[0], : r.shape[1]] = _normalise(r).transpose(2, 0, 1)
            maps = self._det(batch)
            for i, (page, r) in enumerate(zip(chunk, resized, strict=True)):
                prob = maps[i : i + 1, :, : r.shape[0], : r.shape[1]]
                boxes, _ = self._db(prob, page.shape[:2])
                results.append([_Detected(b.astype(np.float32), _crop(page, b)) for b in boxes])
        return results

    def _det_resize(self, page: np.ndarray) -> np.ndarray:
        h, w = page.shape[:2]
        # Small phone crops and low-DPI scans: enlarge so the short side is ~736 px (the
        # size the detector was trained around), but never past the long-side cap.
        ratio = min(max(1.0, _DET_MIN_SIDE / min(h, w)), self._det_max_side / max(h, w))
        rh = max(32, round(h * ratio / 32) * 32)
        rw = max(32, round(w * ratio / 32) * 32)
        return cv2.resize(page, (rw, rh))

    # -- recognition -----------------------------------------------------------------

    def _recognise(self, crops: list[np.ndarray]) -> list[tuple[str, list[float]]]:
        """CTC-decode every crop, batching crops of similar aspect ratio together."""
        out: list[tuple[str, list[float]]] = [("", [])] * len(crops)
        ratios = [c.shape[1] / max(1, c.shape[0]) for c in crops]
        order = sorted(range(len(crops)), key=ratios.__getitem__)
        start = 0
        while start < len(order):
            end = start + 1
            # Stop a batch before padding would waste more than a fifth of its width.
            while (
                end < len(order)
                and end - start < self._rec_batch
                and ratios[order[end]] <= 1.25 * max(ratios[order[start]], 1.0)
            ):
                end += 1
            ids = order[start:end]
            width = max(_REC_HEIGHT, math.ceil(_REC_HEIGHT * max(ratios[i] for i in ids)))
            if self._buckets:
                width = min(bucket(width, self._rec_bucket), _REC_MAX_WIDTH)
            rows = len(ids)
            if self._pow2_rows:  # blank rows up to 1, 2, 4 or 8
                rows = 1 << (rows - 1).bit_length()
            batch = np.zeros((rows, 3, _REC_HEIGHT, width), dtype=np.float32)
            for row, i in enumerate(ids):
                batch[row] = _resize_norm(crops[i], _REC_HEIGHT, width)
            logits = self._rec(batch)
            for row, i in enumerate(ids):
                out[i] = self._ctc_decode(logits[row])
            start = end
        return out

    def _ctc_decode(self, probs: np.ndarray) -> tuple[str, list[float]]:
        best = probs.argmax(axis=1)
        conf = probs.max(axis=1)
        keep = np.ones(len(best), dtype=bool)
        keep[1:] = best[1:] != best[:-1]
        keep &= best != 0
        chars = [self._charset[i] if i < len(self._charset) else "" for i in best[keep]]
        return "".join(chars), [float(c) for c in conf[keep]]


def _normalise(img: np.ndarray) -> np.ndarray:
    return (img.astype(np.float32) / 255.0 - 0.5) / 0.5


def _resize_norm(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a crop to ``height`` (width by aspect ratio, at most ``width``), CHW, [-1, 1]."""
    h, w = img.shape[:2]
    new_w = min(width, max(1, math.ceil(height * w / max(1, h))))
    resized = cv2.resize(img, (new_w, height))
    chw = _normalise(resized).transpose(2, 0, 1)
    if new_w == width:
        return chw
    padded = np.zeros((3, height, width), dtype=np.float32)
    padded[:, :, :new_w] = chw
    return padded


def _is_tall(box: np.ndarray) -> bool:
    """A text box taller than wide on the page: a line printed sideways. (Measured on the
    box, not the crop: ``_crop`` has already turned tall crops to lie flat.)"""
    width = max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3]))
    height = max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2]))
    return bool(height > width)


def _crop(page: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Cut the quadrilateral ``box`` out of the page as an upright rectangle."""
    pts = box.astype(np.float32)
    width = int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3])))
    height = int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2])))
    width, height = max(width, 1), max(height, 1)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(pts, target)
    crop = cv2.warpPerspective(
        page, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if height / width >= 1.5:
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)
