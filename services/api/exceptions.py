"""``/api/v1/exceptions``: the review queue (jobs in needs_review) and its decisions.

Approve and reject go through ``services.review`` like ``claims-ocr review``, so the
same corrections are accepted and the approved claim is queued for the submitter.
Two reviewers acting on one item at once: the ledger's compare-and-set lets exactly one
win; the other gets 409.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from services.api.errors import ApiError, error_responses
from services.api.jobs import COMMON_ERRORS, Ctx, Listing, Reviewer, Viewer, detail, load_job
from services.api.models import ApproveRequest, JobDetail, JobList, RejectRequest
from services.ledger import InvalidTransition, JobNotFound, JobState
from services.review import CorrectionError, approve, reject

router = APIRouter(prefix="/api/v1/exceptions", tags=["exceptions"])


def _conflict(exc: InvalidTransition) -> ApiError:
    return ApiError(409, "conflict", f"The job is {exc.current}, no longer waiting for review.")


@router.get(
    "",
    response_model=JobList,
    summary="The review queue, oldest first",
    responses=error_responses(*COMMON_ERRORS),
)
def list_exceptions(ctx: Ctx, caller: Viewer, query: Listing) -> JobList:
    return query.page(ctx, [JobState.NEEDS_REVIEW])


@router.get(
    "/{job_id}",
    response_model=JobDetail,
    summary="One job of the review queue",
    responses=error_responses(*COMMON_ERRORS, 404),
)
def get_exception(job_id: str, ctx: Ctx, caller: Viewer) -> JobDetail:
    job = load_job(ctx, job_id)
    if job.state is not JobState.NEEDS_REVIEW:
        raise ApiError(404, "not_found", f"The job is {job.state}, not in the review queue.")
    return detail(job)


@router.post(
    "/{job_id}/approve",
    response_model=JobDetail,
    summary="Approve, with corrections; the claim is queued for NCB",
    responses=error_responses(*COMMON_ERRORS, 404, 409, 413),
)
def approve_exception(
    job_id: str,
    ctx: Ctx,
    caller: Reviewer,
    body: Annotated[ApproveRequest | None, Body()] = None,
) -> JobDetail:
    corrections = body.fields.given() if body else {}
    try:
        approve(ctx.ledger, ctx.dispatcher, job_id, corrections, caller.actor)
    except JobNotFound:
        raise ApiError(404, "not_found", "No job has this id.") from None
    except CorrectionError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    except InvalidTransition as exc:
        raise _conflict(exc) from None
    return detail(load_job(ctx, job_id))


@router.post(
    "/{job_id}/reject",
    response_model=JobDetail,
    summary="Reject with a reason; the claim is not submitted",
    responses=error_responses(*COMMON_ERRORS, 404, 409, 413),
)
def reject_exception(job_id: str, body: RejectRequest, ctx: Ctx, caller: Reviewer) -> JobDetail:
    job = load_job(ctx, job_id)
    if job.state is not JobState.NEEDS_REVIEW:
        raise ApiError(409, "conflict", f"The job is {job.state}, no longer waiting for review.")
    try:
        reject(ctx.ledger, job_id, body.reason, caller.actor)
    except CorrectionError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    except InvalidTransition as exc:
        raise _conflict(exc) from None
    return detail(load_job(ctx, job_id))
