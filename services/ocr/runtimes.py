"""The runtimes that run the PP-OCR ONNX files: ONNX Runtime (CPU, CUDA, TensorRT) and
OpenVINO (CPU).

On the CPU, OpenVINO reads pages 2.2-2.5x as fast as ONNX Runtime where the processor
computes bfloat16 natively (Intel AMX or AVX-512 BF16, as on the 2-core machine this was
measured on), and 1.2-1.3x in float32 (its precision elsewhere), with the same lines read
exactly (README, "Accuracy and speed"). Both are wrapped as a callable from one input
batch to the model's first output, so the engine does not care which one runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

CpuRuntime = Literal["openvino", "onnxruntime"]
# OpenVINO's compute precision on the CPU: bf16 is a hint, taken only where the processor
# computes it natively (elsewhere OpenVINO computes in f32).
Precision = Literal["bf16", "f32"]


class Model(Protocol):
    """One loaded model: an NCHW float32 batch in, its first output out."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...

    def metadata(self, key: str) -> str | None:
        """A custom metadata entry of the ONNX file (the recogniser's dictionary)."""
        ...


class OrtModel:
    """A model on an ONNX Runtime session (whatever providers the session was given)."""

    def __init__(self, path: Path, options: Any, providers: list[Any]) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), options, providers)
        self._input = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: batch})[0]

    def metadata(self, key: str) -> str | None:
        return self.session.get_modelmeta().custom_metadata_map.get(key)


class OpenVinoModel:
    """A model compiled by OpenVINO for the CPU.

    OpenVINO prepares its kernels for each input shape it meets (tens of milliseconds the
    first time, cached after), so the engine pads inputs to a few recurring shapes.
    """

    def __init__(self, path: Path, threads: int, precision: Precision) -> None:
        import openvino

        core = openvino.Core()
        self._model = core.read_model(str(path))
        config = {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",  # one request at a time, all threads on it
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        compiled = core.compile_model(self._model, "CPU", config)
        self._request = compiled.create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        # share_outputs=False: the result is a copy, not a view the next call overwrites.
        return self._request.infer({0: batch}, share_outputs=False)[0]

    def metadata(self, key: str) -> str | None:
        if not self._model.has_rt_info(["framework", key]):
            return None
        return str(self._model.get_rt_info(["framework", key]).astype(str))
