"""Google's batch endpoint: one ``multipart/mixed`` POST carrying many API calls.

Each part is an ``application/http`` request (request line, headers, body); the stand-in
runs each against its own app in-process, in order, and answers ``multipart/mixed``
whose parts carry ``Content-ID: <response-ID>``, which is how ``googleapiclient``'s
``BatchHttpRequest`` pairs replies with calls. Each inner call goes through the normal
routes, so faults and token checks apply per call; a fault for the API can also fail
the whole batch.
"""

from __future__ import annotations

import email.policy
import secrets
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from http import HTTPStatus

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.demo.google_standin.state import APIS, GoogleStandinState, google_error

#: Google refuses batches larger than this.
MAX_PARTS = 1000


@dataclass(frozen=True)
class _Call:
    content_id: str
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


def _parse(content_type: str, body: bytes) -> list[_Call] | None:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    parsed = BytesParser(policy=email.policy.compat32).parsebytes(head + body)
    if not parsed.is_multipart():
        return None
    calls = []
    for part in parsed.get_payload():
        if not isinstance(part, Message):
            return None
        payload = part.get_payload()
        if not isinstance(payload, str):
            return None
        text = payload.replace("\r\n", "\n")
        head_text, _, inner_body = text.partition("\n\n")
        lines = head_text.split("\n")
        request_line = lines[0].split(" ")
        if len(request_line) < 2:
            return None
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        headers.pop("host", None)
        headers.pop("content-length", None)
        calls.append(
            _Call(
                content_id=str(part.get("Content-ID", "")).strip().strip("<>"),
                method=request_line[0],
                target=request_line[1],
                headers=headers,
                body=inner_body.encode("utf-8", "surrogateescape"),
            )
        )
    return calls


def _part(boundary: str, call: _Call, reply: httpx.Response) -> bytes:
    try:
        reason = HTTPStatus(reply.status_code).phrase
    except ValueError:
        reason = ""
    lines = [
        f"--{boundary}",
        "Content-Type: application/http",
        f"Content-ID: <response-{call.content_id}>",
        "",
        f"HTTP/1.1 {reply.status_code} {reason}",
        f"Content-Type: {reply.headers.get('content-type', 'application/json; charset=UTF-8')}",
        f"Content-Length: {len(reply.content)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + reply.content + b"\r\n"


def router(state: GoogleStandinState) -> APIRouter:
    api = APIRouter()

    async def run_batch(request: Request, api_name: str | None) -> Response:
        calls = _parse(request.headers.get("content-type", ""), await request.body())
        if calls is None:
            return google_error(400, "badRequest", message="Failed to parse batch request")
        if len(calls) > MAX_PARTS:
            return google_error(400, "badRequest", message="Too many requests in batch")
        if api_name is None and calls:
            api_name = calls[0].target.lstrip("/").split("/", 1)[0]
        if api_name in APIS and (fault := state.fault_response(api_name)) is not None:
            return fault
        boundary = "batch_" + secrets.token_hex(12)
        out = []
        transport = httpx.ASGITransport(app=request.app)
        async with httpx.AsyncClient(transport=transport, base_url=str(request.base_url)) as c:
            for call in calls:
                reply = await c.request(
                    call.method, call.target, headers=call.headers, content=call.body
                )
                out.append(_part(boundary, call, reply))
        out.append(f"--{boundary}--\r\n".encode())
        return Response(b"".join(out), media_type=f"multipart/mixed; boundary={boundary}")

    @api.post("/batch")
    async def batch(request: Request) -> Response:
        return await run_batch(request, None)

    @api.post("/batch/{api_name}/{version}")
    async def batch_for(request: Request, api_name: str, version: str) -> Response:
        return await run_batch(request, api_name)

    return api
