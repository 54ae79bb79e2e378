"""``/api/v1/jobs``: list, look at and retry jobs; their original bytes and page images."""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from PIL import Image
from pydantic import BeforeValidator

from services.api.auth import Caller, require
from services.api.context import ApiContext, context
from services.api.errors import ApiError, error_responses
from services.api.models import JobDetail, JobItem, JobList, SortKey
from services.ledger import (
    InvalidTransition,
    JobNotFound,
    JobState,
    JobView,
    Role,
    job_cursor,
)
from services.ocr.pages import PageError, open_pages
from services.review import retry

Ctx = Annotated[ApiContext, Depends(context)]
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Reviewer = Annotated[Caller, Depends(require(Role.REVIEWER))]

#: Every /api/v1 route can answer these.
COMMON_ERRORS = (401, 403, 422, 429, 500)

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:?\d{2})?$"
)


def _iso_datetime(value: object) -> object:
    """Only ISO 8601 date-times, not the numbers pydantic would take as timestamps."""
    if isinstance(value, str) and not _ISO_DATETIME.match(value):
        raise ValueError("must be an ISO 8601 date-time like 2025-03-01T00:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime)]


class ListQuery:
    """The filters and paging shared by ``/jobs`` and ``/exceptions``."""

    def __init__(
        self,
        reason_code: Annotated[str | None, Query(max_length=64)] = None,
        email_id: Annotated[str | None, Query(max_length=36)] = None,
        received_from: Annotated[
            IsoDateTime | None,
            Query(description="When the email arrived, from (inclusive; UTC if no zone)."),
        ] = None,
        received_to: Annotated[
            IsoDateTime | None, Query(description="When the email arrived, to (exclusive).")
        ] = None,
        min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
        max_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
        sort: SortKey = "created_at",
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[
            str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
        ] = None,
    ) -> None:
        self.reason_code = reason_code
        self.email_id = email_id
        self.received_from = received_from
        self.received_to = received_to
        self.min_confidence = min_confidence
        self.max_confidence = max_confidence
        self.sort: str = sort
        self.limit = limit
        self.cursor = cursor

    def page(self, ctx: ApiContext, states: Iterable[JobState] | None) -> JobList:
        """One page, read one item past it to learn whether another follows."""
        try:
            page = ctx.ledger.list_jobs(
                states=states,
                reason_code=self.reason_code,
                email_id=self.email_id,
                min_confidence=self.min_confidence,
                max_confidence=self.max_confidence,
                received_from=self.received_from,
                received_to=self.received_to,
                sort=self.sort,
                limit=self.limit + 1,
                cursor=self.cursor,
            )
        except ValueError:
            raise ApiError(
                422, "invalid_request", "The cursor does not belong to this sort order."
            ) from None
        items = page.items[: self.limit]
        more = len(page.items) > self.limit
        now = datetime.now(UTC)
        return JobList(
            items=[JobItem.of(job, now) for job in items],
            total=page.total,
            next_cursor=job_cursor(self.sort, items[-1]) if more and items else None,
        )


Listing = Annotated[ListQuery, Depends()]


def load_job(ctx: ApiContext, job_id: str) -> JobView:
    try:
        return ctx.ledger.get_job(job_id)
    except JobNotFound:
        raise ApiError(404, "not_found", "No job has this id.") from None


def detail(job: JobView) -> JobDetail:
    return JobDetail.of_view(job, datetime.now(UTC))


@router.get(
    "",
    response_model=JobList,
    summary="Jobs, filtered and sorted, a page at a time",
    responses=error_responses(*COMMON_ERRORS),
)
def list_jobs(
    ctx: Ctx,
    caller: Viewer,
    query: Listing,
    state: Annotated[list[JobState] | None, Query(description="Repeatable.")] = None,
) -> JobList:
    return query.page(ctx, state)


@router.get(
    "/{job_id}",
    response_model=JobDetail,
    summary="One job with its fields, evidence, email and history",
    responses=error_responses(*COMMON_ERRORS, 404),
)
def get_job(job_id: str, ctx: Ctx, caller: Viewer) -> JobDetail:
    return detail(load_job(ctx, job_id))


@router.post(
    "/{job_id}/retry",
    response_model=JobDetail,
    summary="Send a failed job back to the step that failed",
    responses=error_responses(*COMMON_ERRORS, 404, 409, 413),
)
def retry_job(job_id: str, ctx: Ctx, caller: Reviewer) -> JobDetail:
    try:
        retry(ctx.ledger, ctx.dispatcher, job_id, caller.actor)
    except JobNotFound:
        raise ApiError(404, "not_found", "No job has this id.") from None
    except InvalidTransition as exc:
        raise ApiError(
            409, "conflict", f"The job is {exc.current}; only a failed job can be retried."
        ) from None
    return detail(load_job(ctx, job_id))


# -- the original and its pages ----------------------------------------------------------

_MEDIA_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}$"
)


def content_disposition(filename: str | None) -> str:
    """``attachment`` with an ASCII-only fallback name and the exact name (RFC 6266/5987).

    The fallback keeps letters, digits and ``._-()`` and nothing that could end the
    header or the quoted string; the UTF-8 form is percent-encoded whole.
    """
    name = "".join(ch for ch in (filename or "") if unicodedata.category(ch)[0] != "C")
    name = name.replace("/", "_").replace("\\", "_").strip().lstrip(".") or "attachment"
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = re.sub(r"[^A-Za-z0-9._()\- ]", "_", ascii_name).strip(" .") or "attachment"
    return (
        f'attachment; filename="{ascii_name[:150]}"; '
        f"filename*=UTF-8''{quote(name[:200], safe='')}"
    )


def _bytes_of(ctx: ApiContext, job: JobView) -> bytes:
    try:
        return ctx.blobs.get(job.blob_key)
    except (KeyError, OSError):
        raise ApiError(404, "not_found", "The job's original bytes are not stored.") from None


BINARY = {"schema": {"type": "string", "format": "binary"}}


@router.get(
    "/{job_id}/attachment",
    response_class=Response,
    summary="The original attachment, as a download",
    responses={
        200: {"content": {"application/octet-stream": BINARY}, "description": "The bytes."},
        **error_responses(*COMMON_ERRORS, 404),
    },
)
def attachment(job_id: str, ctx: Ctx, caller: Viewer) -> Response:
    job = load_job(ctx, job_id)
    data = _bytes_of(ctx, job)
    media_type = job.content_type or ""
    if not _MEDIA_TYPE.match(media_type):
        media_type = "application/octet-stream"
    return Response(
        data,
        media_type=media_type,
        headers={
            "Content-Disposition": content_disposition(job.filename),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )


@router.get(
    "/{job_id}/pages/{n}.png",
    response_class=Response,
    summary="Page n (from 1) as OCR saw it: upright, in the evidence's pixel coordinates",
    responses={
        200: {"content": {"image/png": BINARY}, "description": "The page as PNG."},
        **error_responses(*COMMON_ERRORS, 404),
    },
)
def page_image(job_id: str, n: int, ctx: Ctx, caller: Viewer) -> Response:
    job = load_job(ctx, job_id)
    data = _bytes_of(ctx, job)
    try:
        with open_pages(data, ctx.page_limits) as source:
            if not 1 <= n <= len(source):
                raise ApiError(404, "not_found", f"The document has {len(source)} page(s).")
            pixels = source.page(n - 1)
    except PageError as exc:
        raise ApiError(404, "not_found", f"The document cannot be read ({exc.code}).") from None
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", compress_level=1)
    return Response(
        out.getvalue(),
        media_type="image/png",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"},
    )
