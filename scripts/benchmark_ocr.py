#!/usr/bin/env python3
"""OCR readers side by side in one interleaved run, then the whole pipeline on the same pages.

Each reader runs in its own process (so the peak RSS it reports is its own) and they take
turns page by page, so a noisy machine (other work on the same cores) hits them alike:

- ``rapidocr default``: rapidocr's own pipeline as a user installs it (the baseline);
- ``tesseract``: Debian's ``tesseract-ocr`` CLI with TSV output and ``OMP_THREAD_LIMIT``
  set (skipped with a note when the binary is absent);
- ``claims-ocr page by page``: our engine (as ``OCR_*`` settings build it), one page a call;
- ``claims-ocr as the worker batches``: ``read_documents`` over ``OCR_BATCH_SIZE`` documents
  with the worker's page limits, so the worker's device-aware call plan, on the same pages
  (it takes its turn once per batch, alternately before and after the page readers);
- ``claims-ocr on ONNX Runtime, as the worker batches``: the same with the models on ONNX
  Runtime (``OCR_CPU_RUNTIME=onnxruntime``), the OCR stage as it was before OpenVINO ran
  them (on ``OCR_DEVICE=cpu`` only).

Every reader's time includes decoding the page. Then the whole pipeline: one claim email
per page (or ``--pipeline generated`` receipts from the load test) through
``claims-ocr run --demo --once`` (Celery workers on Redis, the NCB stand-in), timed from
each job's enqueue to its extraction in the ledger; ``--ocr-processes N`` (repeatable)
runs it once per ``OCR_PROCESSES`` value.

Prints, per reader: pages/s and the ratios to rapidocr's default pipeline and to the ONNX
Runtime stage in the same run,
CPU seconds per page (steadier than wall time when others load the machine), p50/p95
seconds per page (per batch for the worker-batch readers), peak RSS, exact-line recall
against ``box/`` (a ground-truth line counts when a line read has the same text, case and
spaces aside) and field accuracy from ``sroie_score.py`` against ``key/`` (both when the
images folder has those siblings).
"""

from __future__ import annotations

import argparse
import json
import math
import mimetypes
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval_sroie import _Recording  # noqa: E402
from load_test import RssSampler, _jobs, claim_message, percentile, write_claims  # noqa: E402

if TYPE_CHECKING:
    from services.extraction import ClaimExtraction
    from services.ocr.result import PageText

SHARED = ROOT.parent / "shared"
DEFAULT_IMAGES = [SHARED / "datasets/sroie-dev/img", SHARED / "datasets/sroie-train/img"]
SCORER = SHARED / "tools/sroie_score.py"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff"}
LARGE_PAGE_PIXELS = 3_000_000  # an A4 scan at 200 DPI is ~4 Mpx; a phone receipt ~1
BASELINE = "rapidocr default"
PAGE_BY_PAGE = "claims-ocr page by page"
WORKER_BATCHES = "claims-ocr as the worker batches"
ORT_BATCHES = "claims-ocr on ONNX Runtime, as the worker batches"
PIPELINE = "whole pipeline"

Document = tuple[str, bytes]


# -- readers (each in its own process) ----------------------------------------------------


class Reader:
    """Reads documents into pages of text; an extraction too when it makes one itself."""

    def read(self, docs: Sequence[Document]) -> list[tuple[list[PageText], ClaimExtraction | None]]:
        raise NotImplementedError

    def peak_rss_mib(self) -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RapidocrReader(Reader):
    """rapidocr's default pipeline, as ``pip install rapidocr`` gives it."""

    def __init__(self) -> None:
        from rapidocr import RapidOCR

        self.engine = RapidOCR(params={"Global.log_level": "error"})

    def read(self, docs: Sequence[Document]) -> list[tuple[list[PageText], ClaimExtraction | None]]:
        from services.ocr.pages import load_pages
        from services.ocr.result import PageText, TextLine, quad, reading_order

        out: list[tuple[list[PageText], ClaimExtraction | None]] = []
        for _, data in docs:
            texts = []
            for page in load_pages(data):
                result: Any = self.engine(page)
                lines = []
                if result.boxes is not None:
                    for box, text, score in zip(
                        result.boxes, result.txts, result.scores, strict=True
                    ):
                        probs = (float(score),) * len(text)
                        lines.append(TextLine(text, quad(box), float(score), probs))
                texts.append(PageText(page.shape[1], page.shape[0], reading_order(lines)))
            out.append((texts, None))
        return out


class TesseractReader(Reader):
    """Debian's tesseract CLI, one process per page, TSV words grouped into lines."""

    def __init__(self, threads: int) -> None:
        self.env = {**os.environ, "OMP_THREAD_LIMIT": str(threads)}

    def read(self, docs: Sequence[Document]) -> list[tuple[list[PageText], ClaimExtraction | None]]:
        out: list[tuple[list[PageText], ClaimExtraction | None]] = []
        for _, data in docs:
            tsv = subprocess.run(
                ["tesseract", "stdin", "stdout", "-l", "eng", "tsv"],
                input=data,
                capture_output=True,
                env=self.env,
                check=True,
            ).stdout.decode("utf-8", "replace")
            out.append((tesseract_pages(tsv), None))
        return out

    def peak_rss_mib(self) -> float:
        return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def tesseract_pages(tsv: str) -> list[PageText]:
    """Tesseract's TSV (one row per word) as pages of lines with boxes and confidences."""
    from services.ocr.result import PageText, TextLine, reading_order

    sizes: dict[int, tuple[int, int]] = {}
    words: dict[tuple[int, int, int, int], list[tuple[str, int, int, int, int, float]]] = {}
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12:
            continue
        level, page, block, par, line = map(int, cols[:5])
        left, top, width, height = map(int, cols[6:10])
        if level == 1:
            sizes[page] = (width, height)
        elif level == 5 and cols[11].strip():
            conf = max(0.0, float(cols[10])) / 100
            words.setdefault((page, block, par, line), []).append(
                (cols[11], left, top, left + width, top + height, conf)
            )
    lines_by_page: dict[int, list[TextLine]] = {page: [] for page in sizes}
    for (page, *_), found in words.items():
        text = " ".join(w[0] for w in found)
        x0, y0 = float(min(w[1] for w in found)), float(min(w[2] for w in found))
        x1, y1 = float(max(w[3] for w in found)), float(max(w[4] for w in found))
        probs = tuple(c for w in found for c in [w[5]] * (len(w[0]) + 1))[: len(text)]
        box = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
        score = statistics.fmean(w[5] for w in found)
        lines_by_page.setdefault(page, []).append(TextLine(text, box, score, probs))
    return [
        PageText(*sizes.get(page, (0, 0)), reading_order(lines))
        for page, lines in sorted(lines_by_page.items())
    ]


class PageByPageReader(Reader):
    """Our engine as the settings build it, handed one page per call."""

    def __init__(self) -> None:
        from services.config import get_settings
        from workers.wiring import build_ocr_engine

        self.engine = build_ocr_engine(get_settings())

    def read(self, docs: Sequence[Document]) -> list[tuple[list[PageText], ClaimExtraction | None]]:
        from services.ocr.pages import load_pages

        return [
            ([self.engine.read([page])[0] for page in load_pages(data)], None) for _, data in docs
        ]


class WorkerBatchReader(Reader):
    """``read_documents`` as the OCR worker calls it: its engine, limits and call plan."""

    def __init__(self, call_max_pixels: int | None, cpu_runtime: str | None = None) -> None:
        from dataclasses import replace

        from services.config import get_settings
        from workers.wiring import build_ocr_engine, page_limits

        settings = get_settings()
        if cpu_runtime is not None:
            settings = settings.model_copy(update={"ocr_cpu_runtime": cpu_runtime})
        self.engine = _Recording(build_ocr_engine(settings))
        self.limits = page_limits(settings)
        if call_max_pixels is not None:
            self.limits = replace(self.limits, call_max_pixels=call_max_pixels)
        self.threshold = settings.ocr_high_confidence_threshold

    def read(self, docs: Sequence[Document]) -> list[tuple[list[PageText], ClaimExtraction | None]]:
        from services.claim_reader import read_documents

        self.engine.read_pages.clear()
        results = read_documents(self.engine, docs, limits=self.limits, threshold=self.threshold)
        out: list[tuple[list[PageText], ClaimExtraction | None]] = []
        cursor = 0  # the calls follow the documents' order, so the pages read do too
        for result in results:
            if result.error_code is not None:
                raise RuntimeError(f"{result.key}: {result.error_code}")
            pages = self.engine.read_pages[cursor : cursor + result.page_count]
            out.append((pages, result.extraction))
            cursor += result.page_count
        return out


def _make_reader(kind: str, option: int | None) -> Reader:
    if kind == "rapidocr":
        return RapidocrReader()
    if kind == "tesseract":
        return TesseractReader(option or 1)
    if kind == "page":
        return PageByPageReader()
    if kind == "batch-onnxruntime":
        return WorkerBatchReader(option, cpu_runtime="onnxruntime")
    return WorkerBatchReader(option)


def _cpu_seconds() -> float:
    """CPU time of this process (all its threads) and its finished children (tesseract):
    steadier than wall time on a machine others are loading."""
    own, children = (
        resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _serve(kind: str, option: int | None, today: date, conn: Connection) -> None:
    """A reader's process: read what the parent sends, reply with seconds, lines, record."""
    from services.claim_reader import DocumentResult, result_record
    from services.config import get_settings
    from services.extraction import extract_claim

    threshold = get_settings().ocr_high_confidence_threshold
    reader = _make_reader(kind, option)
    conn.send("ready")
    while (docs := conn.recv()) is not None:
        started, cpu_started = time.perf_counter(), _cpu_seconds()
        read = reader.read(docs)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
        replies = []
        for (key, _), (pages, extraction) in zip(docs, read, strict=True):
            if extraction is None:
                extraction = extract_claim(pages, today=today, threshold=threshold)
            record = result_record(DocumentResult(key, extraction, len(pages), 0.0))
            replies.append(([line.text for page in pages for line in page.lines], record))
        conn.send((seconds, cpu, replies))
    conn.send(reader.peak_rss_mib())


@dataclass
class ReaderRun:
    """One reader's process and what it measured."""

    name: str
    process: Any
    conn: Connection
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    pages: int = 0
    per_page: list[float] = field(default_factory=list)
    lines: dict[str, list[str]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_mib: float = 0.0

    def read(self, docs: Sequence[Document], *, timed: bool = True) -> None:
        self.conn.send(list(docs))
        seconds, cpu, replies = self.conn.recv()
        if not timed:
            return
        pages = sum(record["pages"] for _, record in replies)
        self.seconds += seconds
        self.cpu_seconds += cpu
        self.pages += pages
        self.per_page.append(seconds / max(1, pages))
        for (key, _), (lines, record) in zip(docs, replies, strict=True):
            self.lines[key] = lines
            self.records.append(record)

    def close(self) -> None:
        self.conn.send(None)
        self.peak_rss_mib = self.conn.recv()
        self.process.join(timeout=30)


def _start(ctx: Any, name: str, kind: str, option: int | None, today: date) -> ReaderRun:
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_serve, args=(kind, option, today, child), daemon=True)
    process.start()
    child.close()
    if parent.recv() != "ready":
        raise RuntimeError(f"{name} did not start")
    return ReaderRun(name, process, parent)


# -- inputs and scores --------------------------------------------------------------------


def pick_images(folders: Sequence[Path], limit: int) -> list[Path]:
    """``limit`` images spread evenly over the folders' sorted images (so a block of large
    scans in the middle of a dataset is sampled too), in that order."""
    paths = sorted(
        p for folder in folders for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
    )
    if limit >= len(paths):
        return paths
    return [paths[math.floor(i * len(paths) / limit)] for i in range(limit)]


def normalise_line(text: str) -> str:
    return "".join(text.split()).casefold()


def ground_truth_lines(image: Path) -> list[str] | None:
    """The ``box/`` lines of an SROIE image (8 coordinates, then the text), if there."""
    box = image.parent.parent / "box" / f"{image.stem}.csv"
    if not box.exists():
        return None
    rows = box.read_text(encoding="utf-8", errors="replace").splitlines()
    return [row.split(",", 8)[8] for row in rows if row.count(",") >= 8]


def line_recall(run: ReaderRun, truth: dict[str, list[str]]) -> float | None:
    """Share of ground-truth lines read exactly (each read line matches at most one)."""
    if not truth:
        return None
    found = total = 0
    for key, lines in truth.items():
        wanted = Counter(normalise_line(t) for t in lines)
        read = Counter(normalise_line(t) for t in run.lines.get(key, []))
        found += sum((wanted & read).values())
        total += sum(wanted.values())
    return found / total if total else None


def score_fields(records: list[dict[str, Any]], keys: dict[str, Path]) -> dict[str, float] | None:
    """``sroie_score.py`` over the keys of the receipts read (it counts absent ones wrong)."""
    if not keys or not SCORER.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "keys"
        subset.mkdir()
        for record in records:
            key = keys.get(record["file"])
            if key is not None:
                shutil.copy2(key, subset / f"{Path(record['file']).stem}.json")
        predictions = Path(tmp) / "predictions.jsonl"
        scored = [r for r in records if r["file"] in keys]
        predictions.write_text("".join(json.dumps(r) + "\n" for r in scored))
        out = subprocess.run(
            [sys.executable, str(SCORER), str(predictions), str(subset), "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    return dict(json.loads(out))


# -- the whole pipeline -------------------------------------------------------------------


def page_email(index: int, name: str, data: bytes, run_tag: str) -> bytes:
    """A claim email carrying one benchmark page, built as the load test builds its own."""
    from services.demo.sample_inbox import _Part

    declared = mimetypes.guess_type(name)[0] or "application/octet-stream"
    part = _Part(name, declared, data, declared.split("/")[-1])
    return claim_message(index, run_tag, part, prefix="bench")


# Settings the demo run must take from its data directory, not from this shell.
_RUN_SETTINGS = {"CELERY_BROKER_URL", "NCB_API_BASE_URL", "MAILDIR_PATH", "DATABASE_URL"}


@dataclass
class PipelineRun:
    emails: int
    broker: str
    ocr_processes: int = 1
    pages: int = 0
    seconds: float = 0.0  # first job enqueued -> last job extracted
    wall_s: float = 0.0
    per_page: list[float] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    exit_code: int | None = None
    not_extracted: int = 0


def run_pipeline(
    docs: Sequence[Document],
    generated: int,
    redis_url: str,
    data_dir: Path,
    ocr_processes: int = 1,
) -> PipelineRun:
    """The emails through ``claims-ocr run --demo --once``; times from the ledger and logs."""
    import redis

    from services.ledger import WHOLE_EMAIL_PART, JobState, Ledger

    inbox = data_dir / "inbox"
    inbox.mkdir(parents=True)
    run_tag = f"{os.getpid()}-{int(time.time())}"
    if generated:
        write_claims(inbox, generated, run_tag)
    else:
        for index, (name, data) in enumerate(docs):
            (inbox / f"claim-{index:06d}.eml").write_bytes(page_email(index, name, data, run_tag))
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).flushdb()
        broker = "redis"
    except redis.RedisError:
        broker = "embedded (Redis did not answer)"
    emails = len(list(inbox.glob("*.eml")))
    run = PipelineRun(emails, broker, ocr_processes)
    env = {k: v for k, v in os.environ.items() if k not in _RUN_SETTINGS}
    env.update(
        CLAIMS_OCR_ENV="demo",
        CLAIMS_OCR_DATA_DIR=str(data_dir),
        REDIS_URL=redis_url,
        OCR_PROCESSES=str(ocr_processes),
    )
    timeout_s = 300 + 10 * emails
    since = datetime.now(UTC)
    argv = [sys.executable, "-m", "workers.cli", "run", "--demo", "--once"]
    with (data_dir / "runner.log").open("ab") as log_file:
        started = time.monotonic()
        proc = subprocess.Popen(
            [*argv, "--timeout", str(timeout_s)],
            cwd=ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        sampler = RssSampler(proc.pid)
        sampler.start()
        try:
            run.exit_code = proc.wait(timeout=timeout_s + 120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            sampler.stop()
        run.wall_s = time.monotonic() - started
    run.peak_rss_mib = sampler.peak_kib / 1024

    extracted_states = {JobState.EXTRACTED, JobState.READY, JobState.NEEDS_REVIEW}
    enqueued: list[datetime] = []
    extracted: list[datetime] = []
    with Ledger(f"sqlite:///{data_dir / 'ledger.db'}") as ledger:
        for summary in _jobs(ledger, since):
            if summary.part_index == WHOLE_EMAIL_PART:
                continue
            job = ledger.get_job(summary.id)
            done = [e.at for e in job.events if e.to_state in extracted_states]
            if not done or not job.events:
                run.not_extracted += 1
                continue
            enqueued.append(job.events[0].at)
            extracted.append(done[0])
            run.pages += job.page_count or 0
            run.records.append(
                {
                    "file": job.filename or job.id,
                    "route": job.route,
                    "confidence": job.confidence,
                    "fields": job.fields or {},
                }
            )
    if enqueued:
        run.seconds = (max(extracted) - min(enqueued)).total_seconds()
    for log in sorted((data_dir / "logs").glob("*.log")):
        for raw in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if raw.startswith("{") and '"document read"' in raw:
                line = json.loads(raw)
                if line.get("event") == "document read" and line.get("pages"):
                    run.per_page.append(line["ocr_seconds"] / line["pages"])
    return run


# -- report -------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def summarise(
    runs: Sequence[ReaderRun], truth: dict[str, list[str]], keys: dict[str, Path]
) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        rows.append(
            {
                "reader": run.name,
                "pages": run.pages,
                "seconds": round(run.seconds, 2),
                "pages_per_s": run.pages / run.seconds if run.seconds else None,
                "cpu_s_per_page": run.cpu_seconds / run.pages if run.pages else None,
                "p50_s_per_page": percentile(run.per_page, 50),
                "p95_s_per_page": percentile(run.per_page, 95),
                "peak_rss_mib": round(run.peak_rss_mib, 1),
                "line_recall": line_recall(run, truth),
                "fields": score_fields(run.records, keys),
            }
        )
    return rows


def pipeline_row(run: PipelineRun, keys: dict[str, Path]) -> dict[str, Any]:
    return {
        "reader": f"{PIPELINE} ({run.emails} emails, OCR_PROCESSES={run.ocr_processes})",
        "pages": run.pages,
        "seconds": round(run.seconds, 2),
        "pages_per_s": run.pages / run.seconds if run.seconds else None,
        "cpu_s_per_page": None,
        "p50_s_per_page": percentile(run.per_page, 50),
        "p95_s_per_page": percentile(run.per_page, 95),
        "peak_rss_mib": round(run.peak_rss_mib, 1),
        "line_recall": None,
        "fields": score_fields(run.records, keys),
        "wall_s": round(run.wall_s, 1),
        "broker": run.broker,
        "runner_exit": run.exit_code,
        "not_extracted": run.not_extracted,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    base = next((r["pages_per_s"] for r in rows if r["reader"] == BASELINE), None)
    ort = next((r["pages_per_s"] for r in rows if r["reader"] == ORT_BATCHES), None)
    print(
        f"{'reader':52} {'pages':>5} {'pages/s':>7} {'x rapid':>7} {'x ORT':>6} {'CPU s':>6} "
        f"{'p50 s':>6} "
        f"{'p95 s':>6} {'RSS MiB':>7} {'lines':>5}  total  date  company  address"
    )
    for row in rows:
        speed = row["pages_per_s"]
        ratio = speed / base if speed and base else None
        ort_ratio = speed / ort if speed and ort else None
        f = row["fields"] or {}
        print(
            f"{row['reader']:52} {row['pages']:5d} {_fmt(speed):>7} {_fmt(ratio):>7} "
            f"{_fmt(ort_ratio):>6} "
            f"{_fmt(row['cpu_s_per_page']):>6} {_fmt(row['p50_s_per_page']):>6} "
            f"{_fmt(row['p95_s_per_page']):>6} "
            f"{row['peak_rss_mib']:7.0f} {_fmt(row['line_recall']):>5}  "
            f"{_fmt(f.get('total_accuracy')):>5}  {_fmt(f.get('date_accuracy')):>4}  "
            f"{_fmt(f.get('company_accuracy')):>7}  {_fmt(f.get('address_accuracy')):>7}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--images",
        type=Path,
        action="append",
        help="a folder of page images (repeatable; default: the shared SROIE dev and train)",
    )
    parser.add_argument("--limit", type=int, default=32, help="pages, spread over the folders (32)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed pages each reader reads")
    parser.add_argument("--tesseract-threads", type=int, default=1, help="OMP_THREAD_LIMIT (1)")
    parser.add_argument(
        "--call-max-pixels",
        type=int,
        action="append",
        default=[],
        help="also a worker-batch reader with this call budget (repeatable, for A/B)",
    )
    parser.add_argument(
        "--pipeline",
        choices=("pages", "generated", "none"),
        default="pages",
        help="emails carrying the benchmark's pages (default), load-test receipts, or none",
    )
    parser.add_argument("--claims", type=int, default=0, help="generated emails (default: pages)")
    parser.add_argument(
        "--ocr-processes",
        type=int,
        action="append",
        default=[],
        help="OCR_PROCESSES of a pipeline run (repeatable, one run each; default: the setting)",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from PIL import Image

    from services.config import get_settings
    from services.ocr.pages import PageError, load_pages

    settings = get_settings()
    images = pick_images(args.images or DEFAULT_IMAGES, args.limit)
    docs: list[Document] = []
    large = 0
    for path in images:
        data = path.read_bytes()
        try:
            load_pages(data)
        except PageError as exc:
            print(f"skipped {path.name}: {exc.code}", file=sys.stderr)
            continue
        docs.append((path.name, data))
        with Image.open(path) as image:
            large += image.width * image.height > LARGE_PAGE_PIXELS
    if not docs:
        parser.error("no readable images")
    read = {name for name, _ in docs}
    kept = [p for p in images if p.name in read]
    truth = {p.name: t for p in kept if (t := ground_truth_lines(p))}
    keys = {p.name: k for p in kept if (k := p.parent.parent / "key" / f"{p.stem}.json").exists()}
    today = date.today()
    load_before = os.getloadavg()
    print(
        f"{len(docs)} pages ({large} over {LARGE_PAGE_PIXELS / 1e6:.0f} Mpx), "
        f"{os.cpu_count()} CPUs, load {load_before[0]:.1f}; OCR_DEVICE={settings.ocr_device}, "
        f"OCR_BATCH_SIZE={settings.ocr_batch_size}",
        file=sys.stderr,
        flush=True,
    )

    ctx = mp.get_context("spawn")
    page_runs = [_start(ctx, BASELINE, "rapidocr", None, today)]
    if shutil.which("tesseract"):
        name = f"tesseract (OMP_THREAD_LIMIT={args.tesseract_threads})"
        page_runs.append(_start(ctx, name, "tesseract", args.tesseract_threads, today))
    else:
        print("note: no tesseract binary (apt-get install tesseract-ocr): skipped")
    page_runs.append(_start(ctx, PAGE_BY_PAGE, "page", None, today))
    batch_runs = [_start(ctx, WORKER_BATCHES, "batch", None, today)]
    if settings.ocr_device == "cpu" and settings.ocr_cpu_runtime != "onnxruntime":
        batch_runs.append(_start(ctx, ORT_BATCHES, "batch-onnxruntime", None, today))
    for budget in args.call_max_pixels:
        name = f"{WORKER_BATCHES}, {budget / 1e6:g} Mpx calls"
        batch_runs.append(_start(ctx, name, "batch", budget, today))
    runs = page_runs + batch_runs
    for run in runs:
        run.read(docs[: args.warmup], timed=False)

    turn = 0
    batch_size = settings.ocr_batch_size
    started = time.monotonic()
    for group_index, start in enumerate(range(0, len(docs), batch_size)):
        group = docs[start : start + batch_size]
        rotated = (
            batch_runs[group_index % len(batch_runs) :]
            + batch_runs[: group_index % len(batch_runs)]
        )
        if group_index % 2 == 0:
            for run in rotated:
                run.read(group)
        for doc in group:
            for run in page_runs[turn % len(page_runs) :] + page_runs[: turn % len(page_runs)]:
                run.read([doc])
            turn += 1
        if group_index % 2 == 1:
            for run in rotated:
                run.read(group)
        print(
            f"\r{start + len(group)}/{len(docs)} pages, {time.monotonic() - started:.0f} s",
            end="",
            file=sys.stderr,
            flush=True,
        )
    print(file=sys.stderr)
    for run in runs:
        run.close()
    rows = summarise(runs, truth, keys)
    if args.pipeline != "none":  # the readers' figures first, in case the pipeline fails
        print_table(rows)
        print(flush=True)

    pipelines = []
    if args.pipeline != "none":
        generated = (args.claims or len(docs)) if args.pipeline == "generated" else 0
        for processes in args.ocr_processes or [settings.ocr_processes]:
            with tempfile.TemporaryDirectory(prefix="claims-ocr-bench-") as tmp:
                pipeline = run_pipeline(docs, generated, args.redis_url, Path(tmp), processes)
            pipelines.append(pipeline)
            rows.append(pipeline_row(pipeline, {} if generated else keys))

    report = {
        "pages": len(docs),
        "large_pages": large,
        "cpus": os.cpu_count(),
        "load_average": {"before": load_before[0], "after": os.getloadavg()[0]},
        "ocr_device": settings.ocr_device,
        "ocr_batch_size": batch_size,
        "readers": rows,
    }
    print_table(rows)
    for pipeline in pipelines:
        print(
            f"pipeline (OCR_PROCESSES={pipeline.ocr_processes}): {pipeline.wall_s:.0f} s wall "
            f"for {pipeline.emails} emails (broker {pipeline.broker}, runner exit "
            f"{pipeline.exit_code}); pages/s from the first enqueue to the last extraction; "
            "p50/p95 are the OCR step's s/page"
        )
    print(f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
