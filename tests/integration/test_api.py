"""The admin API over real HTTP, on SQLite and PostgreSQL: every route, role and answer.

The API runs in uvicorn on a free port (``tests.support.api_fixtures``) over the test's
own ledger, a real blob store and the sample inbox's real attachments.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from PIL import Image

from services.ledger import ApiKeyExists, ApiKeyNotFound, JobState, Ledger, Role
from services.ocr.pages import load_pages
from tests.support.api_fixtures import Api, sample_attachments
from tests.support.ledger_helpers import drive, extract, new_email, new_job

pytestmark = pytest.mark.both_databases

S = JobState


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the contract's error shape with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


# -- auth and roles --------------------------------------------------------------------


ROUTES = [
    ("GET", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/{id}"),
    ("POST", "/api/v1/jobs/{id}/retry"),
    ("GET", "/api/v1/jobs/{id}/attachment"),
    ("GET", "/api/v1/jobs/{id}/pages/1.png"),
    ("GET", "/api/v1/exceptions"),
    ("GET", "/api/v1/exceptions/{id}"),
    ("POST", "/api/v1/exceptions/{id}/approve"),
    ("POST", "/api/v1/exceptions/{id}/reject"),
    ("GET", "/api/v1/stats"),
]


def test_every_api_route_needs_a_live_key(api: Api) -> None:
    job = api.add_job()
    revoked = api.ledger.apikeys.create("gone", "admin")
    api.ledger.apikeys.revoke("gone")
    valid = api.key("admin")
    forged = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")
    for method, path in ROUTES:
        url = path.format(id=job)
        for headers in (
            {},
            {"Authorization": "Bearer nonsense"},
            {"Authorization": f"Basic {valid}"},
            {"Authorization": f"Bearer {forged}"},
            {"X-API-Key": revoked.key},
        ):
            response = api.client.request(method, url, headers=headers, json={"reason": "x"})
            error_of(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
    # X-API-Key is accepted as well as the bearer header.
    assert api.client.get("/api/v1/stats", headers={"X-API-Key": valid}).status_code == 200
    assert api.ledger.get_job(job).state is S.NEEDS_REVIEW


def test_roles_viewer_reads_reviewer_acts_admin_does_everything(api: Api) -> None:
    jobs = [api.add_job() for _ in range(3)]
    failed = api.add_job(where="failed@ready")
    for method, path in ROUTES:
        response = api.client.request(
            method, path.format(id=jobs[0]), headers=api.headers("viewer"), json={"reason": "r"}
        )
        if method == "GET":
            assert response.status_code == 200, (path, response.text)
        else:
            error_of(response, 403, "forbidden")
    assert api.ledger.get_job(jobs[0]).state is S.NEEDS_REVIEW
    assert api.post(f"/api/v1/exceptions/{jobs[0]}/approve", "reviewer").status_code == 200
    assert api.post(f"/api/v1/exceptions/{jobs[1]}/approve", "admin").status_code == 200
    reject = api.post(f"/api/v1/exceptions/{jobs[2]}/reject", "admin", json={"reason": "no"})
    assert reject.status_code == 200
    assert api.post(f"/api/v1/jobs/{failed}/retry", "reviewer").status_code == 200


def test_key_use_is_recorded_at_most_once_a_minute(api: Api) -> None:
    key = api.key("viewer")
    (view,) = [k for k in api.ledger.apikeys.list() if key.split("_")[1] == k.id]
    assert view.last_used_at is None
    api.get("/api/v1/stats", "viewer")
    first = next(k for k in api.ledger.apikeys.list() if k.id == view.id).last_used_at
    assert first is not None
    api.get("/api/v1/stats", "viewer")
    again = next(k for k in api.ledger.apikeys.list() if k.id == view.id).last_used_at
    assert again == first


# -- listing and paging ----------------------------------------------------------------


def _walk(api: Api, path: str, **params: Any) -> tuple[list[dict[str, Any]], set[int]]:
    items: list[dict[str, Any]] = []
    totals = set()
    cursor = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = api.get(path, "viewer", params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= params.get("limit", 50)
        items += body["items"]
        totals.add(body["total"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items, totals
    raise AssertionError("paging did not end")


def _sort_key(sort: str, item: dict[str, Any]) -> tuple[Any, ...]:
    field = sort.removeprefix("-")
    value = item[field]
    if value is None:
        return (1, 0, item["id"])
    number = datetime.fromisoformat(value).timestamp() if field.endswith("_at") else value
    return (0, -number if sort.startswith("-") else number, item["id"])


def test_cursor_pages_cover_every_job_once_in_order(api: Api) -> None:
    jobs = []
    for i in range(23):
        job = new_job(api.ledger)
        if i % 3:
            drive(api.ledger, job, "ocr_pending")
            # Ties on purpose: several jobs share a confidence.
            extract(api.ledger, job, route="review", confidence=[0.5, 0.7, 0.7, 0.9][i % 4])
        jobs.append(job)
    for sort in ("created_at", "-created_at", "confidence", "-confidence", "-updated_at"):
        items, totals = _walk(api, "/api/v1/jobs", sort=sort, limit=4)
        ids = [item["id"] for item in items]
        assert len(ids) == len(set(ids)) == 23, sort
        assert set(ids) == set(jobs)
        assert totals == {23}
        assert items == sorted(items, key=lambda item: _sort_key(sort, item)), sort


def test_a_job_added_between_pages_causes_no_gap_or_repeat(api: Api) -> None:
    first = [new_job(api.ledger) for _ in range(6)]
    page = api.get("/api/v1/jobs", params={"limit": 3}).json()
    assert [i["id"] for i in page["items"]] == first[:3]
    later = new_job(api.ledger)
    rest = api.get("/api/v1/jobs", params={"limit": 50, "cursor": page["next_cursor"]}).json()
    assert [i["id"] for i in rest["items"]] == [*first[3:], later]
    assert rest["next_cursor"] is None and rest["total"] == 7


def test_a_bad_or_foreign_cursor_is_a_422(api: Api) -> None:
    for _ in range(3):
        new_job(api.ledger)
    cursor = api.get("/api/v1/jobs", params={"limit": 1}).json()["next_cursor"]
    assert cursor
    error_of(api.get("/api/v1/jobs", params={"cursor": "@@@"}), 422, "invalid_request")
    foreign = api.get("/api/v1/jobs", params={"cursor": cursor, "sort": "-confidence"})
    error_of(foreign, 422, "invalid_request")


def test_filters(api: Api) -> None:
    early = new_email(api.ledger, received_at=datetime(2025, 3, 1, 8, tzinfo=UTC))
    late = new_email(api.ledger, received_at=datetime(2025, 6, 1, 8, tzinfo=UTC))
    undated = new_email(api.ledger, received_at=None)  # counts by when it was recorded
    a = new_job(api.ledger, email_id=early)
    b = new_job(api.ledger, email_id=late)
    c = new_job(api.ledger, email_id=undated)
    d = new_job(api.ledger, review_reason="no_claim_document")
    for job, confidence in ((a, 0.4), (b, 0.8)):
        drive(api.ledger, job, "ocr_pending")
        extract(api.ledger, job, route="review", confidence=confidence)

    def ids(**params: Any) -> set[str]:
        response = api.get("/api/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert ids(state=["needs_review"]) == {a, b, d}
    assert ids(state=["received", "needs_review"]) == {a, b, c, d}
    assert ids(state="received") == {c}
    assert ids(reason_code="no_claim_document") == {d}
    assert ids(email_id=late) == {b}
    assert ids(min_confidence=0.5) == {b}
    assert ids(max_confidence=0.5) == {a}
    assert ids(received_from="2025-02-01T00:00:00Z", received_to="2025-04-01T00:00:00") == {a}
    assert ids(received_from="2025-05-01T00:00:00+00:00") == {b, c, d}
    now = datetime.now(UTC)
    recent = {"received_from": (now - timedelta(hours=1)).isoformat()}
    assert ids(**recent) == {c}
    error_of(api.get("/api/v1/jobs", params={"state": "nope"}), 422, "invalid_request")
    error_of(api.get("/api/v1/jobs", params={"limit": 201}), 422, "invalid_request")
    error_of(api.get("/api/v1/jobs", params={"sort": "filename"}), 422, "invalid_request")
    error_of(api.get("/api/v1/jobs", params={"received_from": "soon"}), 422, "invalid_request")


def test_job_detail(api: Api) -> None:
    job = api.add_job("pdf", where="needs_review")
    body = api.get(f"/api/v1/jobs/{job}", "viewer").json()
    assert body["id"] == job and body["state"] == "needs_review"
    assert body["filename"] == sample_attachments()["pdf"][0]
    assert body["content_type"] == "application/pdf"
    assert body["fields"]["Claim Amount"] == "150.00"
    assert body["field_confidence"]["Claim Amount"] == 0.97
    assert body["reasons"] == [{"code": "low_confidence", "message": "amount 0.41"}]
    assert body["corrected_fields"] is None and body["field_evidence"] == {}
    assert [e["to_state"] for e in body["events"]] == [
        "received",
        "ocr_pending",
        "extracted",
        "needs_review",
    ]
    assert body["events"][0]["from_state"] is None
    assert body["age_s"] >= 0
    email = body["email"]
    assert set(email) == {
        "id",
        "received_at",
        "sender_masked",
        "policy_number",
        "member_id",
        "member_name",
    }
    assert email["sender_masked"] == "a***@example.com"
    assert email["policy_number"] == "POL-67890" and email["member_name"] == "Ann Member"
    error_of(api.get(f"/api/v1/jobs/{uuid.uuid4()}"), 404, "not_found")


# -- the review queue ------------------------------------------------------------------


def test_exceptions_lists_the_review_queue_oldest_first(api: Api) -> None:
    waiting = [api.add_job() for _ in range(3)]
    api.add_job(where="ready")
    api.add_job(where="failed@ready")
    body = api.get("/api/v1/exceptions", "viewer").json()
    assert [i["id"] for i in body["items"]] == waiting and body["total"] == 3
    items, _ = _walk(api, "/api/v1/exceptions", limit=2)
    assert [i["id"] for i in items] == waiting
    assert api.get(f"/api/v1/exceptions/{waiting[0]}", "viewer").json()["id"] == waiting[0]
    ready = api.add_job(where="ready")
    error_of(api.get(f"/api/v1/exceptions/{ready}"), 404, "not_found")


def test_approve_with_corrections_queues_the_claim(api: Api) -> None:
    job = api.add_job()
    response = api.post(
        f"/api/v1/exceptions/{job}/approve",
        json={"fields": {"total_amount": "RM 1,234.5", "service_date": "2024-12-25"}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "ready"
    assert body["corrected_fields"] == {"total_amount": "1234.50", "service_date": "2024-12-25"}
    reviewer = next(k for k in api.ledger.apikeys.list() if k.role == "reviewer")
    assert body["events"][-1]["actor"] == f"api:{reviewer.name}"
    assert api.ledger.get_job(job).events[-1].actor == f"api:{reviewer.name}"
    assert api.dispatcher.calls == [("submit", (job,))]
    # Approving without a body is allowed too (nothing corrected).
    other = api.add_job()
    assert api.post(f"/api/v1/exceptions/{other}/approve").json()["state"] == "ready"
    assert api.dispatcher.calls[-1] == ("submit", (other,))


def test_approve_refuses_bad_corrections_and_moved_jobs(api: Api) -> None:
    job = api.add_job()
    for fields in (
        {"total_amount": "twelve"},
        {"total_amount": "12.345"},
        {"service_date": "25/12/2024"},
        {"policy": "x"},
    ):
        response = api.post(f"/api/v1/exceptions/{job}/approve", json={"fields": fields})
        error_of(response, 422, "invalid_request")
    error_of(
        api.post(f"/api/v1/exceptions/{job}/approve", content=b"{not json"),
        422,
        "invalid_request",
    )
    assert api.ledger.get_job(job).state is S.NEEDS_REVIEW and not api.dispatcher.calls
    assert api.post(f"/api/v1/exceptions/{job}/approve").status_code == 200
    error_of(api.post(f"/api/v1/exceptions/{job}/approve"), 409, "conflict")
    error_of(api.post(f"/api/v1/exceptions/{uuid.uuid4()}/approve"), 404, "not_found")


def test_two_reviewers_approving_at_once_one_wins_one_gets_409(api: Api) -> None:
    first = {"Authorization": f"Bearer {api.key('reviewer')}"}
    second = {"Authorization": f"Bearer {api.ledger.apikeys.create('second', 'reviewer').key}"}
    for _ in range(4):
        job = api.add_job()
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        def act(
            headers: dict[str, str],
            job: str = job,
            barrier: Any = barrier,
            statuses: list[int] = statuses,
        ) -> None:
            with httpx.Client(base_url=api.url, timeout=30) as client:
                barrier.wait()
                statuses.append(
                    client.post(f"/api/v1/exceptions/{job}/approve", headers=headers).status_code
                )

        threads = [threading.Thread(target=act, args=(h,)) for h in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(statuses) == [200, 409]
        view = api.ledger.get_job(job)
        assert view.state is S.READY
        assert [e.to_state for e in view.events].count(S.READY) == 1
        assert api.dispatcher.calls.count(("submit", (job,))) == 1


def test_reject(api: Api) -> None:
    job = api.add_job()
    error_of(
        api.post(f"/api/v1/exceptions/{job}/reject", json={"reason": ""}), 422, "invalid_request"
    )
    error_of(
        api.post(f"/api/v1/exceptions/{job}/reject", json={"reason": "   "}), 422, "invalid_request"
    )
    error_of(api.post(f"/api/v1/exceptions/{job}/reject", json={}), 422, "invalid_request")
    response = api.post(f"/api/v1/exceptions/{job}/reject", json={"reason": "not a receipt"})
    assert response.status_code == 200
    assert response.json()["state"] == "rejected"
    assert api.ledger.get_job(job).reason == "not a receipt"
    error_of(api.post(f"/api/v1/exceptions/{job}/reject", json={"reason": "x"}), 409, "conflict")
    missing = api.post(f"/api/v1/exceptions/{uuid.uuid4()}/reject", json={"reason": "x"})
    error_of(missing, 404, "not_found")
    assert not api.dispatcher.calls


def test_retry_sends_a_failed_job_back_and_queues_it(api: Api) -> None:
    failed = api.add_job(where="failed@ready")
    response = api.post(f"/api/v1/jobs/{failed}/retry")
    assert response.status_code == 200
    assert response.json()["state"] == "ready"
    assert api.dispatcher.calls == [("submit", (failed,))]
    ocr_failed = api.add_job(where="failed@ocr_pending")
    assert api.post(f"/api/v1/jobs/{ocr_failed}/retry").json()["state"] == "received"
    assert api.dispatcher.calls[-1] == ("ocr", (ocr_failed,))
    error_of(api.post(f"/api/v1/jobs/{failed}/retry"), 409, "conflict")
    error_of(api.post(f"/api/v1/jobs/{uuid.uuid4()}/retry"), 404, "not_found")


# -- the original and its pages --------------------------------------------------------


def test_attachment_is_a_safe_download(api: Api) -> None:
    hostile = '../..\\evil"; filename=x.exe\u202e\u0007名前 (1).jpg'
    job = api.add_job("jpeg", filename=hostile)
    response = api.get(f"/api/v1/jobs/{job}/attachment", "viewer")
    assert response.status_code == 200
    assert response.content == sample_attachments()["jpeg"][2]
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-content-type-options"] == "nosniff"
    disposition = response.headers["content-disposition"]
    assert disposition.isascii() and "\r" not in disposition and "\n" not in disposition
    fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert all(c.isalnum() or c in "._-() " for c in fallback)
    assert not fallback.startswith(".") and "/" not in fallback and "\\" not in fallback
    star = disposition.split("filename*=UTF-8''", 1)[1]
    assert ";" not in star and '"' not in star
    decoded = unquote(star)
    assert "名前 (1).jpg" in decoded and "/" not in decoded and "\u0007" not in decoded
    # A content type that is not a plain media type is not passed through.
    odd = api.add_job("png", content_type="image/png; charset=x\u00ff")
    assert api.get(f"/api/v1/jobs/{odd}/attachment").headers["content-type"] == (
        "application/octet-stream"
    )
    unstored = new_job(api.ledger)  # its blob key names nothing stored
    error_of(api.get(f"/api/v1/jobs/{unstored}/attachment"), 404, "not_found")


@pytest.mark.parametrize("kind", ["pdf", "jpeg", "png"])
def test_page_images_decode_as_ocr_saw_them(api: Api, kind: str) -> None:
    job = api.add_job(kind)
    pages = load_pages(sample_attachments()[kind][2])
    for n, expected in enumerate(pages, start=1):
        response = api.get(f"/api/v1/jobs/{job}/pages/{n}.png", "viewer")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        image.load()
        assert image.format == "PNG"
        assert (image.height, image.width) == expected.shape[:2]
    error_of(api.get(f"/api/v1/jobs/{job}/pages/{len(pages) + 1}.png"), 404, "not_found")
    error_of(api.get(f"/api/v1/jobs/{job}/pages/0.png"), 404, "not_found")


def test_pdf_has_two_pages(api: Api) -> None:
    assert len(load_pages(sample_attachments()["pdf"][2])) == 2


# -- stats -----------------------------------------------------------------------------


def test_stats_on_a_known_ledger(api: Api) -> None:
    ledger = api.ledger
    straight = new_job(ledger)
    drive(ledger, straight, "ocr_pending")
    extract(ledger, straight, confidence=0.9)
    for step in (ledger.begin_submit, lambda j: ledger.finish_submit(j, "C1"), ledger.mark_done):
        step(straight)
    reviewed = new_job(ledger)
    drive(ledger, reviewed, "ocr_pending")
    extract(ledger, reviewed, route="review", confidence=0.5)
    ledger.approve(reviewed, {}, "user:t")
    for step in (ledger.begin_submit, lambda j: ledger.finish_submit(j, "C2"), ledger.mark_done):
        step(reviewed)
    rejected = new_job(ledger)
    drive(ledger, rejected, "ocr_pending")
    extract(ledger, rejected, route="review", confidence=0.4)
    ledger.reject(rejected, "no", "user:t")
    waiting = new_job(ledger)
    drive(ledger, waiting, "ocr_pending")
    extract(ledger, waiting, route="review", confidence=0.6)
    new_job(ledger)  # received

    body = api.get("/api/v1/stats", "viewer").json()
    assert body["review_queue"] == 1
    assert 0 <= body["oldest_review_age_s"] < 120
    assert set(body["windows"]) == {"today", "7d", "30d"}
    for window in body["windows"].values():
        assert window["total"] == 5
        assert window["by_state"]["done"] == 2
        assert window["by_state"]["rejected"] == 1
        assert window["by_state"]["needs_review"] == 1
        assert window["by_state"]["received"] == 1
        assert window["by_state"]["failed"] == 0
        assert window["straight_through_rate"] == pytest.approx(1 / 3)
        assert window["review_rate"] == pytest.approx(3 / 4)
        assert window["average_confidence"] == pytest.approx((0.9 + 0.5 + 0.4 + 0.6) / 4)
        assert 0 <= window["processing_p50_s"] <= window["processing_p95_s"] < 120


def test_stats_of_an_empty_ledger(api: Api) -> None:
    body = api.get("/api/v1/stats", "viewer").json()
    assert body["review_queue"] == 0 and body["oldest_review_age_s"] is None
    today = body["windows"]["today"]
    assert today["total"] == 0 and today["straight_through_rate"] is None
    assert today["processing_p50_s"] is None and today["average_confidence"] is None


# -- keys from the command line --------------------------------------------------------


def _cli(ledger: Ledger, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": ledger.url, "LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", "apikey", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_apikey_commands(api: Api) -> None:
    created = _cli(api.ledger, "create", "alice", "--role", "reviewer")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("coa_") and len(key) > 40
    assert "shown only once" in created.stderr
    job = api.add_job()
    approved = api.client.post(
        f"/api/v1/exceptions/{job}/approve", headers={"Authorization": f"Bearer {key}"}
    )
    assert approved.status_code == 200
    assert approved.json()["events"][-1]["actor"] == "api:alice"

    listed = _cli(api.ledger, "list", "--json")
    assert listed.returncode == 0
    (alice,) = [json.loads(line) for line in listed.stdout.splitlines() if '"alice"' in line]
    assert alice["role"] == "reviewer" and alice["revoked_at"] is None
    assert alice["last_used_at"] is not None
    assert key.split("_", 2)[2] not in listed.stdout  # no secrets

    assert _cli(api.ledger, "revoke", "alice").returncode == 0
    refused = api.client.get("/api/v1/stats", headers={"Authorization": f"Bearer {key}"})
    error_of(refused, 401, "unauthorized")
    assert api.ledger.apikeys.list()[0].revoked_at is not None
    assert _cli(api.ledger, "revoke", "nobody").returncode == 1


def test_field_evidence_in_page_coordinates(api: Api) -> None:
    name, ctype, data = sample_attachments()["jpeg"]
    job_id, _ = api.ledger.record_attachment(
        new_email(api.ledger), 0, name, ctype, len(data), "e" * 64, api.blobs.put(data)
    )
    api.ledger.start_ocr(job_id)
    (page,) = load_pages(data)
    height, width = page.shape[:2]
    evidence = {
        "total_amount": {
            "page": 1,
            "polygon": [[10, 20], [200, 20], [200, 48], [10, 48]],
            "text": "TOTAL 12.50",
            "page_width": width,
            "page_height": height,
        }
    }
    api.ledger.save_extraction(
        job_id,
        fields={"total_amount": "12.50"},
        field_confidence={"total_amount": 0.6},
        confidence=0.6,
        route="review",
        reasons=[{"code": "low_confidence", "message": "total"}],
        page_count=1,
        field_evidence=evidence,
    )
    body = api.get(f"/api/v1/exceptions/{job_id}", "viewer").json()
    assert body["field_evidence"] == evidence
    assert body["page_count"] == 1
    image = Image.open(io.BytesIO(api.get(f"/api/v1/jobs/{job_id}/pages/1.png").content))
    assert image.size == (width, height)


def test_api_keys_in_the_ledger(ledger: Ledger) -> None:
    keys = ledger.apikeys
    created = keys.create("ops", "reviewer")
    assert created.view.role == "reviewer" and "coa_" not in repr(created)
    with pytest.raises(ApiKeyExists):
        keys.create("ops", "viewer")
    with pytest.raises(ValueError):
        keys.create("ops2", "owner")
    key_id = created.key.split("_")[1]
    assert keys.verify(created.key) is not None
    for wrong in (
        "",
        "coa_",
        f"coa_{key_id}_",
        f"coa_{key_id}_{'x' * 43}",
        created.key.replace("coa_", "cob_"),
        created.key + "x",
        f"coa_{'f' * 16}_{created.key.split('_', 2)[2]}",
    ):
        assert keys.verify(wrong) is None, wrong
    first = keys.revoke("ops").revoked_at
    assert first is not None and keys.revoke("ops").revoked_at == first
    assert keys.verify(created.key) is None
    with pytest.raises(ApiKeyNotFound):
        keys.revoke("nobody")
    assert [k.name for k in keys.list()] == ["ops"]
    assert Role.ADMIN.allows(Role.REVIEWER) and not Role.VIEWER.allows(Role.REVIEWER)
