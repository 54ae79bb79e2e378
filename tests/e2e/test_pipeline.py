"""The whole pipeline through its front door, ``claims-ocr run --once``.

Real Redis, real Celery worker processes, the real PP-OCR models and the NCB stand-in
over HTTP. The sample inbox (or part of it) goes in; we check what NCB received, what
waits for review, and the audit log and archive.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from services.demo import SAMPLE_INBOX_DIR, SAMPLE_MANIFEST_PATH
from services.demo.ncb_standin import StandinServer, read_records
from services.ledger import JobState, Ledger
from tests.support.processes import children

pytestmark = pytest.mark.slow

MANIFEST = json.loads(SAMPLE_MANIFEST_PATH.read_text())
CLEAN_EMAILS = ["01_clinic_en_subject.eml", "02_pharmacy_ms_body.eml"]


@pytest.fixture
def test_redis(redis_url: str) -> str:
    """The suite's one Redis database (``CLAIMS_OCR_TEST_REDIS_URL``), flushed around the test."""
    return redis_url


def make_inbox(data_dir: Path, names: list[str] | None = None) -> Path:
    inbox = data_dir / "inbox"
    inbox.mkdir(parents=True)
    for eml in sorted(SAMPLE_INBOX_DIR.glob("*.eml")):
        if names is None or eml.name in names:
            shutil.copy2(eml, inbox / eml.name)
    return inbox


def run_env(data_dir: Path, redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CLAIMS_OCR_DATA_DIR": str(data_dir),
        "REDIS_URL": redis_url,
        "SWEEP_INTERVAL_S": "1",
        "POLL_INTERVAL_S": "3600",
        "NCB_RETRY_BASE_DELAY_S": "0.05",
        "NCB_RETRY_MAX_DELAY_S": "0.3",
        "NCB_MAX_ATTEMPTS": "3",
        "NCB_BREAKER_COOLDOWN_S": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DATABASE_URL", None)
    env.pop("NCB_API_BASE_URL", None)
    env.update(extra)
    return env


def start_run(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "run", "--demo", "--once", "--timeout", "240"],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_run(proc: subprocess.Popen[str], logs: Path | None = None) -> dict:
    """The run's summary; a failed run shows its stderr and, given ``logs``, each worker's
    last lines that are not debug."""
    out, err = proc.communicate(timeout=300)
    if proc.returncode != 0 and logs is not None:
        for name, lines in read_log_lines(logs).items():
            tail = [json.dumps(line) for line in lines if line["level"] != "debug"][-10:]
            err += f"\n--- {name}\n" + "\n".join(tail)
    assert proc.returncode == 0, f"run failed ({proc.returncode}):\n{err[-8000:]}"
    return json.loads(out.strip().splitlines()[-1])


def expected_receipts(names: list[str] | None = None) -> dict[str, dict]:
    """sha256 -> manifest attachment, for claim documents that are not duplicates."""
    found = {}
    for email in MANIFEST["emails"]:
        if names is not None and email["file"] not in names:
            continue
        for att in email["attachments"]:
            if att["kind"] and not att["duplicate_of"]:
                found[att["sha256"]] = att
    return found


def check_exactly_once(ledger: Ledger, claims: list[dict]) -> list:
    """Every claim NCB holds belongs to one submitted job, and each job is there once."""
    done = ledger.list_jobs(states=[JobState.DONE], limit=1000).items
    keys = [c["idempotency_key"] for c in claims]
    assert len(keys) == len(set(keys)), "NCB received a claim twice"
    assert sorted(keys) == sorted(job.id for job in done)
    for job in done:
        assert job.ncb_reference
    return list(done)


def test_sample_inbox_end_to_end(tmp_path: Path, test_redis: str) -> None:
    data_dir = tmp_path / "data"
    summary = finish_run(start_run(run_env(data_dir, test_redis), tmp_path))

    # The bundled inbox was copied in on this first run and fully processed.
    assert summary["emails"] == len(MANIFEST["emails"])
    attachments = sum(len(e["attachments"]) for e in MANIFEST["emails"])
    assert summary["attachments"] == attachments
    assert summary["in_progress"] == 0
    assert summary["duplicate"] == 1
    skipped = sum(1 for e in MANIFEST["emails"] for a in e["attachments"] if a["skip_reason"])
    assert summary["skipped"] == skipped
    assert summary["submitted"] >= 3

    ledger = Ledger(f"sqlite:///{data_dir / 'ledger.db'}")
    claims = read_records(data_dir / "ncb-standin.jsonl")
    done = check_exactly_once(ledger, claims)
    assert summary["submitted"] == len(done)

    # What NCB received matches what was printed on the receipts.
    receipts = expected_receipts()
    for job in done:
        page = receipts[job.sha256]["pages"][0]
        claim = next(c for c in claims if c["idempotency_key"] == job.id)["body"]
        assert claim["Claim Amount"] == float(page["total"])
        assert claim["Event date"] == page["date"]
        assert claim["Invoice Number"] == page["invoice_number"]
        assert claim["Policy Number"]

    # The blurry photo never goes straight to NCB; every review item says why.
    low = {sha for sha, a in receipts.items() if a["expect_low_confidence"] or len(a["pages"]) > 1}
    assert low.isdisjoint(job.sha256 for job in done)
    review = ledger.list_jobs(states=[JobState.NEEDS_REVIEW], limit=100).items
    assert summary["needs_review"] == len(review) > 0
    for job in review:
        assert job.reason_code and job.reasons
    # The email with only a claim form and no receipt reaches a person too.
    assert "no_claim_document" in {job.reason_code for job in review}

    # One audit row and one archived original per submitted job.
    with (data_dir / "audit.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["job_id"] for r in rows) == sorted(job.id for job in done)
    archived = [
        p for p in (data_dir / "archive").rglob("*") if p.is_file() and ".index" not in p.parts
    ]
    assert len(archived) == len(done)

    follow_one_claim_through_the_logs(data_dir / "logs", done[0].id)
    logs_carry_no_claimant_details(data_dir / "logs")

    # A second run finds nothing new and submits nothing again.
    again = finish_run(start_run(run_env(data_dir, test_redis), tmp_path))
    assert again["emails"] == 0
    assert len(read_records(data_dir / "ncb-standin.jsonl")) == len(claims)


def test_two_ocr_processes_share_the_cores_and_the_queue(tmp_path: Path, test_redis: str) -> None:
    data_dir = tmp_path / "data"
    env = run_env(data_dir, test_redis, OCR_PROCESSES="2", OCR_BATCH_SIZE="1")
    summary = finish_run(start_run(env, tmp_path), data_dir / "logs")

    assert summary["emails"] == len(MANIFEST["emails"])
    assert summary["in_progress"] == 0 and summary["failed"] == 0
    assert summary["submitted"] >= 3
    loaded = [
        line for line in read_log_lines(data_dir / "logs")["ocr"]
        if line["event"] == "OCR engine loaded"
    ]  # fmt: skip
    # Two pool processes, each with its own engine and its share of the cores.
    assert len({line["pid"] for line in loaded}) == 2
    assert {line["threads"] for line in loaded} == {max(1, (os.cpu_count() or 1) // 2)}
    check_exactly_once(
        Ledger(f"sqlite:///{data_dir / 'ledger.db'}"), read_records(data_dir / "ncb-standin.jsonl")
    )


def read_log_lines(log_dir: Path) -> dict[str, list[dict]]:
    """Every worker log's JSON lines, by process log name (Celery prints a few plain
    console lines of its own, e.g. at shutdown)."""
    lines: dict[str, list[dict]] = {}
    for path in sorted(log_dir.glob("*.log")):
        raw_lines = path.read_text().splitlines()
        lines[path.stem] = [json.loads(raw) for raw in raw_lines if raw.startswith("{")]
    return lines


def follow_one_claim_through_the_logs(log_dir: Path, job_id: str) -> None:
    """One grep for a job id finds its whole story across the worker processes."""
    logs = read_log_lines(log_dir)
    story = {
        name: [(line["event"], line.get("task")) for line in lines if line.get("job_id") == job_id]
        for name, lines in logs.items()
    }
    submit_events = [event for event, _ in story["submit"]]
    assert "attachment recorded" in submit_events  # the poll task (submit worker)
    assert [event for event, _ in story["ocr"]].count("document read") == 1
    assert "claim submitted" in submit_events and "claim archived and audited" in submit_events
    # The OCR worker loaded its engine when its process started, before the first task.
    ocr_events = [line["event"] for line in logs["ocr"]]
    assert ocr_events.index("OCR engine loaded") < ocr_events.index("document read")
    tasks = {task for lines in story.values() for _, task in lines}
    assert {"claims.poll", "claims.ocr", "claims.submit", "claims.finalize"} <= tasks
    for lines in logs.values():
        for line in lines:
            if line.get("job_id") == job_id and line.get("task") in (
                "claims.submit",
                "claims.finalize",
            ):
                assert line["task_id"] and line["email_id"]


def logs_carry_no_claimant_details(log_dir: Path) -> None:
    text = "\n".join(path.read_text() for path in log_dir.glob("*.log"))
    for email in MANIFEST["emails"]:
        for value in (email.get("claimant") or {}).values():
            if value:
                assert value not in text, "a claimant detail reached the logs"


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(("fail_next", 503, 6), id="ncb-503-then-recovers"),
        pytest.param(("rate_limit_next", 2, 1.0), id="ncb-429-retry-after"),
    ],
)
def test_ncb_trouble_ends_with_each_claim_once(
    tmp_path: Path, test_redis: str, fault: tuple
) -> None:
    data_dir = tmp_path / "data"
    make_inbox(data_dir, CLEAN_EMAILS)
    with StandinServer(api_key="standin-key") as ncb:
        kind, a, b = fault
        if kind == "fail_next":
            ncb.state.fail_next(a, count=b)
        else:
            ncb.state.rate_limit_next(a, b)
        env = run_env(data_dir, test_redis, NCB_API_BASE_URL=ncb.url)
        started = time.monotonic()
        summary = finish_run(start_run(env, tmp_path))
        ledger = Ledger(f"sqlite:///{data_dir / 'ledger.db'}")
        done = check_exactly_once(ledger, ncb.state.claims)
        requests = ncb.state.requests

    assert summary["submitted"] == len(done) == 2
    assert summary["in_progress"] == 0
    statuses = [r["status"] for r in requests]
    if kind == "fail_next":
        assert statuses.count(503) == 6
        # Every retry of a claim carried the same Idempotency-Key and a new X-Request-ID.
        for job in done:
            attempts = [r for r in requests if r["headers"]["idempotency_key"] == job.id]
            ids = [r["headers"]["request_id"] for r in attempts]
            assert len(ids) == len(set(ids))
    else:
        assert statuses.count(429) == 2
        assert time.monotonic() - started >= b


def finish_run_acting_once(
    proc: subprocess.Popen[str], ledger_path: Path, act: Callable[[Ledger], bool]
) -> tuple[dict, bool]:
    """Finish a run while a thread watches its ledger; ``act`` returns True once it acted.

    Returns the run's summary and whether ``act`` ever acted.
    """
    acted = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                done = act(Ledger(f"sqlite:///{ledger_path}"))
            except Exception:  # the ledger or its schema may not exist yet
                continue
            if done:
                acted.set()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    summary = finish_run(proc)
    watcher.join(5)
    return summary, acted.is_set()


def test_claims_wait_while_ncb_is_down_and_drain_when_it_returns(
    tmp_path: Path, test_redis: str
) -> None:
    data_dir = tmp_path / "data"
    make_inbox(data_dir, CLEAN_EMAILS)
    ledger_path = data_dir / "ledger.db"
    with StandinServer(api_key="standin-key") as ncb:
        env = run_env(data_dir, test_redis, NCB_API_BASE_URL=ncb.url)
        ncb.stop()  # connections refused from the start
        proc = start_run(env, tmp_path)

        def bring_ncb_back_once_claims_wait(ledger: Ledger) -> bool:
            held = ledger.list_jobs(states=[JobState.READY], reason_code="ncb_unavailable")
            if not held.total:
                return False
            time.sleep(3)  # a few sweeps find NCB still down
            ncb.start()
            return True

        summary, waited = finish_run_acting_once(proc, ledger_path, bring_ncb_back_once_claims_wait)
        done = check_exactly_once(Ledger(f"sqlite:///{ledger_path}"), ncb.state.claims)

    assert waited, "no claim ever waited for NCB"
    assert summary["in_progress"] == 0
    assert summary["submitted"] == len(done) == 2


def _ocr_worker_pid(run_pid: int) -> int | None:
    for child in children(run_pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in cmd and b"ocr@%h" in cmd:
            return child
    return None


def test_ocr_worker_killed_mid_batch_loses_nothing(tmp_path: Path, test_redis: str) -> None:
    data_dir = tmp_path / "data"
    make_inbox(data_dir, [*CLEAN_EMAILS, "10_forwarded_tiff.eml"])
    with StandinServer(api_key="standin-key") as ncb:
        env = run_env(data_dir, test_redis, NCB_API_BASE_URL=ncb.url)
        proc = start_run(env, tmp_path)
        ledger_path = data_dir / "ledger.db"

        def kill_pool_child_during_ocr(ledger: Ledger) -> bool:
            # The three jobs came in one poll, so one task reads them as one batch: all
            # three are taken (ocr_pending) before any is read, and saved after.
            worker = _ocr_worker_pid(proc.pid)
            pool = children(worker) if worker else []
            if not (pool and len(ledger.jobs_in([JobState.OCR_PENDING])) == 3):
                return False
            os.kill(pool[0], signal.SIGKILL)
            return True

        summary, killed = finish_run_acting_once(proc, ledger_path, kill_pool_child_during_ocr)
        assert killed, "the OCR pool process was never caught mid-task"
        ledger = Ledger(f"sqlite:///{ledger_path}")
        done = check_exactly_once(ledger, ncb.state.claims)

    assert summary["in_progress"] == 0
    assert summary["failed"] == 0
    assert summary["submitted"] == len(done) == 3
    # Every job of the batch was taken again, once, after its worker died.
    for job in done:
        retaken = [
            e
            for e in ledger.get_job(job.id).events
            if e.to_state is JobState.OCR_PENDING and e.from_state is JobState.OCR_PENDING
        ]
        assert len(retaken) == 1, f"{job.id} taken again {len(retaken)} times"


def test_run_without_redis_uses_the_embedded_broker(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    make_inbox(data_dir, CLEAN_EMAILS[:1])
    env = run_env(data_dir, "redis://127.0.0.1:1/0", LOG_LEVEL="DEBUG")
    summary = finish_run(start_run(env, tmp_path), data_dir / "logs")
    assert summary["emails"] == 1
    assert summary["submitted"] == 1
    assert summary["in_progress"] == 0
    assert (data_dir / "broker.sqlite").exists()
    # LOG_LEVEL reaches every worker process.
    for name, lines in read_log_lines(data_dir / "logs").items():
        assert any(line["level"] == "debug" for line in lines), f"no debug line in {name}"


def test_ncb_refusing_our_credentials_stops_submissions(tmp_path: Path, test_redis: str) -> None:
    data_dir = tmp_path / "data"
    make_inbox(data_dir, CLEAN_EMAILS)
    with StandinServer(api_key="the-real-key") as ncb:
        env = run_env(data_dir, test_redis, NCB_API_BASE_URL=ncb.url, NCB_API_KEY="a-stale-key")
        proc = subprocess.run(
            [sys.executable, "-m", "workers.cli", "run", "--demo", "--once", "--timeout", "40"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        requests = ncb.state.requests
        claims = ncb.state.claims

    # Nothing reached NCB, nothing was lost, and NCB was not hammered: after the first
    # 401s every worker held its claims (the sweep ran ~every second for the whole wait).
    assert proc.returncode == 1
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["in_progress"] == 2 and summary["submitted"] == 0
    assert claims == []
    assert 1 <= len(requests) <= 2
    assert {r["status"] for r in requests} == {401}
    ledger = Ledger(f"sqlite:///{data_dir / 'ledger.db'}")
    held = ledger.list_jobs(states=[JobState.READY]).items
    codes = [job.reason_code for job in held]
    # The first 401 says why; a claim that came later found submissions held (circuit open).
    assert "ncb_auth_failed" in codes and set(codes) <= {"ncb_auth_failed", "ncb_unavailable"}


def test_a_poison_email_between_two_good_ones_blocks_nothing(
    tmp_path: Path, test_redis: str
) -> None:
    """An email that breaks the parser sits between two good claims in the mailbox."""
    data_dir = tmp_path / "data"
    inbox = make_inbox(data_dir, CLEAN_EMAILS)
    poison = inbox / "01b_poison.eml"
    poison.write_bytes(b'From: "\r\nMessage-ID: <\r\nSubject: claim\r\n\r\nPolicy No: POL-1\r\n')
    stamp = (inbox / CLEAN_EMAILS[0]).stat().st_mtime
    os.utime(poison, (stamp, stamp))
    summary = finish_run(start_run(run_env(data_dir, test_redis), tmp_path))

    assert summary["emails"] == 3 and summary["in_progress"] == 0
    ledger = Ledger(f"sqlite:///{data_dir / 'ledger.db'}")
    done = check_exactly_once(ledger, read_records(data_dir / "ncb-standin.jsonl"))
    assert summary["submitted"] == len(done) == 2
    (item,) = ledger.list_jobs(states=[JobState.NEEDS_REVIEW]).items
    assert item.reason_code and item.filename == "message.eml"
    assert not list(inbox.glob("*.eml")), "an email was left in the mailbox"
