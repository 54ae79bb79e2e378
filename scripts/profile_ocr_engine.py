#!/usr/bin/env python3
"""Where the ONNX engine's time goes, and old-vs-new engine comparisons on the same pages.

Two commands, both on SROIE receipts (phone-size receipts and full-page A4 scans mixed):

    # stage breakdown of one engine (decode, det resize, det inference, DB postprocess,
    # crops, rec prep, rec inference, CTC decode, angle classifier, orientation retries)
    python scripts/profile_ocr_engine.py profile --pages 20

    # engines alternating page by page in one process (so a shared machine's load hits
    # both alike): pages/s, exact-line recall against box/, field accuracy via the scorer
    python scripts/profile_ocr_engine.py ab --pages 30 \
        --engine base=rev:b6d113f --engine small=tree:@_DET_MIN_SIDE=512

An option ``@NAME=VALUE`` sets the engine module's constant NAME while the engine is built
(e.g. ``@_DET_MIN_SIDE=512`` to read phone receipts at their own size), and
``model_dir=/some/dir`` loads other model files (e.g. int8 ones made with onnxruntime's
quantization tools).

An engine spec is ``NAME=rev:GITREV[:k=v,...]`` (the engine module as committed at GITREV,
so the baseline stays the code we started from) or ``NAME=tree[:k=v,...]`` (the working
tree); ``k=v`` are ``OnnxOcrEngine`` keyword arguments (ints, floats, true/false, none).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from benchmark_ocr import ground_truth_lines, normalise_line
from benchmark_ocr import score_fields as benchmark_scores

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BASELINE_REV = "b6d113f"  # the engine before issue 12's CPU work


# -- pages ------------------------------------------------------------------------------


def pick_pages(dataset: Path, count: int, big: int) -> list[Path]:
    """``big`` full-page scans (>= 3 MP) and ``count - big`` others, evenly spread by name."""
    from PIL import Image

    paths = sorted((dataset / "img").glob("*.jpg"))
    sizes = {p: Image.open(p).size for p in paths}
    large = [p for p in paths if sizes[p][0] * sizes[p][1] >= 3_000_000]
    small = [p for p in paths if p not in large]

    def spread(items: list[Path], n: int) -> list[Path]:
        if n <= 0 or not items:
            return []
        step = len(items) / min(n, len(items))
        return [items[int(i * step)] for i in range(min(n, len(items)))]

    return sorted(spread(large, big) + spread(small, count - big))


def load_page(path: Path) -> np.ndarray:
    from services.ocr.pages import load_pages

    return load_pages(path.read_bytes())[0]


# -- engines ----------------------------------------------------------------------------


def _engine_module(source: str) -> ModuleType:
    if source == "tree":
        import services.ocr.onnx_engine as module

        return module
    rev = source.removeprefix("rev:")
    code = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:services/ocr/onnx_engine.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    name = f"_onnx_engine_{re.sub(r'[^0-9A-Za-z]', '_', rev)}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(code, f"{rev}:onnx_engine.py", "exec"), module.__dict__)
    return module


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return Path(text) if "/" in text else text  # model_dir=/some/dir


def build_engine(spec: str, threads: int) -> tuple[str, ModuleType, Any]:
    """``NAME=SOURCE[:k=v,...]`` -> (name, engine module, engine)."""
    name, _, rest = spec.partition("=")
    if rest.startswith("rev:"):
        rev, _, opts = rest[4:].partition(":")
        source = f"rev:{rev}"
    else:
        source, _, opts = rest.partition(":")
    kwargs: dict[str, Any] = {"threads": threads}
    constants: dict[str, Any] = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        if key.startswith("@"):  # a module constant, read while the engine is built
            constants[key[1:]] = _value(value)
        else:
            kwargs[key] = _value(value)
    module = _engine_module(source)
    saved = {key: getattr(module, key) for key in constants}
    for key, value in constants.items():
        setattr(module, key, Path(value) if isinstance(saved[key], Path) else value)
    try:
        return name, module, module.OnnxOcrEngine(**kwargs)
    finally:
        for key, value in saved.items():
            setattr(module, key, value)


# -- accuracy ---------------------------------------------------------------------------


def truth_lines(dataset: Path, stem: str) -> list[str]:
    """The ground-truth text lines of a receipt (``box/``), normalised as the benchmark
    normalises them; blank ones left out."""
    lines = ground_truth_lines(dataset / "img" / f"{stem}.jpg") or []
    return [line for line in map(normalise_line, lines) if line]


def exact_lines(read: Sequence[str], truth: Sequence[str]) -> int:
    """Ground-truth lines matched one to one by a read line of the same normalised text."""
    got = collections.Counter(normalise_line(t) for t in read)
    want = collections.Counter(truth)
    return sum((got & want).values())


def score_fields(records: list[dict[str, Any]], keys: Path) -> dict[str, float]:
    """The shared SROIE scorer over just the receipts read (as the benchmark scores)."""
    found = {r["file"]: keys / f"{Path(r['file']).stem}.json" for r in records}
    return benchmark_scores(records, found) or {}


# -- A/B --------------------------------------------------------------------------------


@dataclass
class _Tally:
    seconds: list[float] = field(default_factory=list)
    matched: int = 0
    truth: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    texts: dict[str, list[str]] = field(default_factory=dict)


def run_ab(args: argparse.Namespace) -> int:
    from services.claim_reader import DocumentResult, result_record
    from services.extraction import extract_claim

    dataset: Path = args.dataset
    paths = pick_pages(dataset, args.pages, args.big)
    engines = [build_engine(spec, args.threads) for spec in args.engine]
    warm = load_page(paths[0])
    for _, _, engine in engines:
        engine.read([warm])
    tallies = {name: _Tally() for name, _, _ in engines}
    today = date.today()
    for index, path in enumerate(paths):
        page = load_page(path)
        truth = truth_lines(dataset, path.stem)
        order = engines if index % 2 == 0 else engines[::-1]
        for name, _, engine in order:
            started = time.perf_counter()
            (text,) = engine.read([page])
            elapsed = time.perf_counter() - started
            tally = tallies[name]
            tally.seconds.append(elapsed)
            read = [line.text for line in text.lines]
            tally.texts[path.stem] = read
            tally.matched += exact_lines(read, truth)
            tally.truth += len(truth)
            extraction = extract_claim([text], today=today)
            tally.records.append(result_record(DocumentResult(str(path), extraction, 1, 0.0)))
        if args.verbose:
            times = "  ".join(f"{n}={tallies[n].seconds[-1]:.2f}s" for n, _, _ in engines)
            print(f"{path.stem} {page.shape[1]}x{page.shape[0]}  {times}", flush=True)
    first = engines[0][0]
    rows = []
    for name, _, _ in engines:
        tally = tallies[name]
        scores = score_fields(tally.records, dataset / "key")
        rows.append(
            {
                "engine": name,
                "pages": len(tally.seconds),
                "pages_per_s": len(tally.seconds) / sum(tally.seconds),
                "speedup": sum(tallies[first].seconds) / sum(tally.seconds),
                "p50_s": statistics.median(tally.seconds),
                "p95_s": float(np.percentile(tally.seconds, 95)),
                "exact_line_recall": tally.matched / max(1, tally.truth),
                "total": scores["total_accuracy"],
                "date": scores["date_accuracy"],
                "company": scores["company_accuracy"],
                "address": scores["address_accuracy"],
            }
        )
    print(f"{len(paths)} pages from {dataset.name} ({args.big} full-page scans), alternating")
    print(
        f"{'engine':10} {'pages/s':>7} {'ratio':>6} {'p50':>5} {'p95':>5} {'lines':>6} "
        f"{'total':>5} {'date':>5} {'comp':>5} {'addr':>5}"
    )
    for r in rows:
        print(
            f"{r['engine']:10} {r['pages_per_s']:7.3f} {r['speedup']:5.2f}x {r['p50_s']:5.2f} "
            f"{r['p95_s']:5.2f} {r['exact_line_recall']:6.3f} {r['total']:5.2f} {r['date']:5.2f} "
            f"{r['company']:5.2f} {r['address']:5.2f}"
        )
    if args.json:
        per_page = {name: tallies[name].records for name, _, _ in engines}
        args.json.write_text(
            json.dumps({"pages": [p.stem for p in paths], "rows": rows, "records": per_page})
        )
    return 0


# -- profile ----------------------------------------------------------------------------


class _Clock:
    """Seconds spent per stage name."""

    def __init__(self) -> None:
        self.seconds: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.calls: collections.Counter[str] = collections.Counter()

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started
                self.calls[stage] += 1

        return timed


class _Session:
    """A model whose calls are timed (or, in an engine from an older revision, an ONNX
    Runtime session whose ``run`` is)."""

    def __init__(self, inner: Any, clock: _Clock, stage: str) -> None:
        self._inner = inner
        if callable(inner):
            self._call = clock.wrap(stage, inner)
        else:
            self.run = clock.wrap(stage, inner.run)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._call(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def run_profile(args: argparse.Namespace) -> int:
    dataset: Path = args.dataset
    paths = pick_pages(dataset, args.pages, args.big)
    name, module, engine = build_engine(args.engine[0], args.threads)
    clock = _Clock()
    # Sessions and helpers are timed where they are looked up (instance or module).
    for attr, stage in (("_det", "det inference"), ("_rec", "rec inference")):
        setattr(engine, attr, _Session(getattr(engine, attr), clock, stage))
    engine._cls = _Session(engine._cls, clock, "cls (angle)")
    engine._db = clock.wrap("DB postprocess", engine._db)
    for attr, stage in (
        ("_det_resize", "det resize"),
        ("_detect", "detect (all)"),
        ("_recognise", "recognise (all)"),
        ("_ctc_decode", "CTC decode"),
        ("_upside_down", "orientation vote (all)"),
    ):
        if hasattr(engine, attr):
            setattr(engine, attr, clock.wrap(stage, getattr(engine, attr)))
    for attr, stage in (
        ("_crop", "crops"),
        ("_normalise", "normalise"),
        ("_resize_norm", "crop resize+norm"),
    ):
        if hasattr(module, attr):
            setattr(module, attr, clock.wrap(stage, getattr(module, attr)))
    engine.read([load_page(paths[0])])
    clock.seconds.clear()
    clock.calls.clear()
    total = 0.0
    crops = 0
    for path in paths:
        started = time.perf_counter()
        page = clock.wrap("decode (load_pages)", load_page)(path)
        (text,) = engine.read([page])
        total += time.perf_counter() - started
        crops += len(text.lines)
    per_page = total / len(paths)
    print(f"{name}: {len(paths)} pages of {dataset.name}, {total:.1f} s, {per_page:.2f} s/page")
    print(f"detection passes per page: {clock.calls['det inference'] / len(paths):.2f}")
    print(f"{'stage':28} {'s/page':>7} {'share':>6} {'calls':>6}")
    for stage, seconds in sorted(clock.seconds.items(), key=lambda item: -item[1]):
        print(
            f"{stage:28} {seconds / len(paths):7.3f} {seconds / total:6.1%} {clock.calls[stage]:6d}"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["profile", "ab"])
    parser.add_argument("--dataset", type=Path, default=SHARED / "datasets/sroie-train")
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--big", type=int, default=None, help="full-page scans (default 1/4)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--engine", action="append", default=None, help="NAME=SOURCE[:k=v,...]")
    parser.add_argument("--json", type=Path, default=None, help="also write the A/B rows here")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if args.big is None:
        args.big = args.pages // 4
    if not args.engine:
        args.engine = [f"base=rev:{BASELINE_REV}", "new=tree"]
    sys.path.insert(0, str(ROOT))
    return run_profile(args) if args.command == "profile" else run_ab(args)


if __name__ == "__main__":
    raise SystemExit(main())
