"""The API for the authority's own users and tools: send, list, read, status, directory.

It listens on loopback by default, on its own port, and every call needs the node's bearer
token; it is never mounted on the peer endpoint, so a peer cannot reach it even by guessing.
Errors come back as ``{"error": {"code", "message", "hint"}}`` with the stable code, so a
script can act on the code and a person can read the rest.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from node.outbound import Draft
from node.store import InboundRecord, OutboundRecord
from protocol.errors import ApiBadRequest, ApiUnauthorized, RogatoryError
from protocol.kinds import Kind, Priority

if TYPE_CHECKING:
    from node.node import Node

__all__ = ["OPERATOR", "RECEIVER", "local_application"]

# Who is calling: the operator's token does everything; the designated receiver's token reads
# spontaneous information before its conditions are accepted, and answers them.
MAX_SEND_MANY = 1000
OPERATOR = "operator"
RECEIVER = "designated-receiver"
PRINCIPAL = web.RequestKey("principal", str)
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")

log = logging.getLogger("rogatory.api")

_STATUS = {"api.unauthorized": 401, "store.not_found": 404, "case.content_withheld": 403,
           "store.disk_full": 507, "api.idempotency_key_reused": 422}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(error: RogatoryError, status: int | None = None) -> web.Response:
    if status is None:
        status = _STATUS.get(error.code, 400)
    return web.json_response(
        {"error": {"code": error.code, "message": error.message, "detail": error.detail,
                   "hint": error.hint}},
        status=status,
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else b64(data)


def outbound_json(record: OutboundRecord) -> dict[str, Any]:
    return {
        "direction": "out",
        "id": record.message_id,
        "envelope_hash": record.envelope_hash,
        "to": record.recipient,
        "kind": record.kind,
        "case": record.case_ref,
        "in_reply_to": record.in_reply_to,
        "priority": record.priority,
        "created": record.created,
        "expires": record.expires,
        "state": record.state,
        "attempts": record.attempts,
        "last_error": record.last_error,
        "delivered_at": record.delivered_at,
        "receipt": _b64(record.receipt),
    }


def inbound_json(record: InboundRecord) -> dict[str, Any]:
    return {
        "direction": "in",
        "id": record.message_id,
        "envelope_hash": record.envelope_hash,
        "from": record.sender,
        "kind": record.kind,
        "case": record.case_ref,
        "in_reply_to": record.in_reply_to,
        "priority": record.priority,
        "created": record.created,
        "received_at": record.received_at,
        "content_type": record.content_type,
        "opened_at": record.opened_at,
        "receipt": _b64(record.receipt),
    }


def _draft_from(body: object, by: str, header_key: str | None = None) -> Draft:
    if not isinstance(body, dict):
        raise ApiBadRequest("the body must be a JSON object")
    key = _idempotency_key(body.get("idempotency_key"), header_key)
    try:
        recipient = body["to"]
        kind = Kind(body["kind"])
        priority = Priority(body.get("priority", "normal"))
    except KeyError as exc:
        raise ApiBadRequest(f"missing field {exc.args[0]!r}") from None
    except ValueError as exc:
        raise ApiBadRequest(str(exc)) from None
    if ("payload" in body) == ("payload_b64" in body):
        raise ApiBadRequest("give exactly one of payload (text) or payload_b64")
    try:
        if "payload" in body:
            payload = str(body["payload"]).encode("utf-8")
        else:
            payload = base64.b64decode(str(body["payload_b64"]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiBadRequest(f"payload_b64 is not base64: {exc}") from None
    files = body.get("attachments", [])
    if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
        raise ApiBadRequest("attachments must be a list of file paths on the node's machine")
    if any(not Path(f).is_absolute() for f in files):
        raise ApiBadRequest("attachment paths must be absolute")
    fields = {"case": str, "in_reply_to": str, "content_type": str, "lifetime": int,
              "override_reason": str}
    extra = {k: body[k] for k in fields if k in body}
    for name, value in extra.items():
        if not isinstance(value, fields[name]) or isinstance(value, bool):
            raise ApiBadRequest(f"{name} must be a {fields[name].__name__}")
    if not isinstance(recipient, str):
        raise ApiBadRequest("to must be an authority id such as BR:MJSP")
    return Draft(
        recipient=recipient,
        kind=kind,
        content_type=extra.pop("content_type", "text/plain; charset=utf-8").replace(" ", ""),
        payload=payload,
        priority=priority,
        attachments=tuple(Path(f) for f in files),
        by=by,
        idempotency_key=key,
        **extra,
    )


def _idempotency_key(member: object, header: str | None) -> str:
    """The caller's key for a submit: the ``idempotency_key`` member or the
    ``Idempotency-Key`` header (they must agree when both are given)."""
    for name, value in (("idempotency_key", member), ("Idempotency-Key", header)):
        if value is not None and not (isinstance(value, str)
                                      and IDEMPOTENCY_KEY.fullmatch(value)):
            raise ApiBadRequest(f"{name} must be 1 to 128 letters, digits or ._:+/=-")
    if header is not None and member is not None and member != header:
        raise ApiBadRequest("the Idempotency-Key header and idempotency_key differ")
    return header or (member if isinstance(member, str) else "")


def attachment_index(request: web.Request) -> int:
    try:
        return int(request.match_info["index"])
    except ValueError:
        raise ApiBadRequest("the attachment index is an integer") from None


async def stream_attachment(request: web.Request, chunks: AsyncIterator[bytes],
                            headers: dict[str, str]) -> web.StreamResponse:
    """Send an attachment's plaintext as it is decrypted and checked.

    The headers promise the whole file; a stream that fails to verify must not look like one,
    so the connection is cut, leaving the client short of Content-Length.
    """
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except RogatoryError as exc:
        log.error("attachment %s of %s failed while streaming: %s",
                  request.match_info.get("index"), request.match_info.get("id"), exc)
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


# What the designated receiver's token may do: read, and answer spontaneous information.
_RECEIVER_ROUTES = frozenset({
    ("GET", "/api/v1/messages"), ("GET", "/api/v1/messages/{id}"),
    ("GET", "/api/v1/messages/{id}/attachments/{index}"),
    ("GET", "/api/v1/spontaneous"), ("POST", "/api/v1/spontaneous/{id}/answer"),
})


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiBadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiBadRequest("the body must be a JSON object")
    return body


def local_application(node: Node, token: str, receiver_token: str | None = None) -> web.Application:
    principals = [(f"Bearer {token}".encode(), OPERATOR)]
    if receiver_token:
        principals.append((f"Bearer {receiver_token}".encode(), RECEIVER))

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode()
        matches = [who for expected, who in principals if hmac.compare_digest(given, expected)]
        if not matches:
            return error_response(ApiUnauthorized("missing or wrong bearer token"))
        route = request.match_info.route.resource
        path = route.canonical if route is not None else ""
        if matches[0] == RECEIVER and (request.method, path) not in _RECEIVER_ROUTES:
            return error_response(ApiUnauthorized(
                "the designated receiver's token only reads messages and answers conditions"))
        request[PRINCIPAL] = matches[0]
        try:
            return await handler(request)
        except RogatoryError as exc:
            return error_response(exc)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("local API failure")
            return error_response(RogatoryError("internal error; see the node log"), 500)

    async def status(request: web.Request) -> web.Response:
        return web.json_response(await node.status())

    async def send(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiBadRequest("the body is not JSON") from None
        record = await node.submit(_draft_from(body, f"token:{request[PRINCIPAL]}",
                                               request.headers.get("Idempotency-Key")))
        return web.json_response(outbound_json(record), status=202)

    async def send_many(request: web.Request) -> web.Response:
        """Many messages in one call, for tools that queue in bulk: one answer per message.

        They are submitted together, so they share commits; each succeeds or fails alone, and
        a failure is reported in its place with its code.
        """
        body = await _json_body(request)
        items = body.get("messages")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_SEND_MANY:
            raise ApiBadRequest(f"messages must be a list of 1 to {MAX_SEND_MANY} messages")
        by = f"token:{request[PRINCIPAL]}"
        drafts = [_draft_from(item, by) for item in items]  # all well-formed, or none is queued
        results = await asyncio.gather(*(node.submit(d) for d in drafts),
                                       return_exceptions=True)
        answers: list[dict[str, Any]] = []
        for result in results:
            if isinstance(result, RogatoryError):
                answers.append({"error": {"code": result.code, "message": result.message}})
            elif isinstance(result, BaseException):
                raise result
            else:
                answers.append(outbound_json(result))
        return web.json_response({"results": answers}, status=207)

    async def messages(request: web.Request) -> web.Response:
        direction = request.query.get("direction", "in")
        try:
            limit = min(int(request.query.get("limit", "100")), 1000)
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            raise ApiBadRequest("limit and offset must be integers") from None
        if limit < 1 or offset < 0:
            raise ApiBadRequest("limit must be 1..1000 and offset not negative")
        if direction == "in":
            rows = [inbound_json(r) for r in await node.call(node.store.inbound, limit, offset)]
        elif direction == "out":
            rows = [outbound_json(r) for r in await node.call(node.store.outbound, limit, offset)]
        else:
            raise ApiBadRequest("direction must be in or out")
        return web.json_response({"messages": rows})

    async def message(request: web.Request) -> web.Response:
        return web.json_response(await node.read_message(request.match_info["id"],
                                                         request[PRINCIPAL]))

    async def attachment(request: web.Request) -> web.StreamResponse:
        spec, chunks = await node.attachment(request.match_info["id"], attachment_index(request),
                                             request[PRINCIPAL])
        return await stream_attachment(request, chunks, {
            "Content-Type": spec.media_type, "Content-Length": str(spec.size),
            "X-Rogatory-Name": quote(spec.name), "X-Rogatory-SHA256": spec.sha256})

    async def cases(request: web.Request) -> web.Response:
        found = await node.cases()
        if request.query.get("overdue") in ("1", "true"):
            found = [case for case in found if case["overdue"]]
        return web.json_response({"cases": found})

    async def reply(request: web.Request) -> web.Response:
        body = await _json_body(request)
        fields = body.get("fields", {})
        if not isinstance(fields, dict):
            raise ApiBadRequest("fields must be an object")
        try:
            kind = Kind(body.get("kind"))
        except ValueError:
            raise ApiBadRequest(f"unknown kind {body.get('kind')!r}") from None
        counterpart = body.get("with", "")
        if not isinstance(counterpart, str):
            raise ApiBadRequest("with must be an authority id")
        files = body.get("attachments", [])
        if not isinstance(files, list) or not all(
                isinstance(f, str) and Path(f).is_absolute() for f in files):
            raise ApiBadRequest("attachments must be a list of absolute file paths")
        record = await node.reply(request.match_info["ref"], counterpart, kind, fields,
                                  tuple(Path(f) for f in files))
        return web.json_response(outbound_json(record), status=202)

    async def spontaneous(request: web.Request) -> web.Response:
        return web.json_response({"spontaneous": await node.spontaneous()})

    async def answer(request: web.Request) -> web.Response:
        body = await _json_body(request)
        accepted, reason = body.get("accepted"), body.get("reason", "")
        if type(accepted) is not bool or not isinstance(reason, str):
            raise ApiBadRequest("accepted must be true or false, reason a string")
        record = await node.answer_conditions(request.match_info["id"], accepted=accepted,
                                              reason=reason)
        return web.json_response(outbound_json(record), status=202)

    async def statistics(request: web.Request) -> web.Response:
        return web.json_response({"cases": await node.statistics()})

    async def case(request: web.Request) -> web.Response:
        return web.json_response(await node.case(request.match_info["ref"],
                                                 request.query.get("with", "")))

    async def directory(request: web.Request) -> web.Response:
        adopted = await node.adopt_directory(await request.read())
        return web.json_response({"serial": adopted.serial, "digest": adopted.digest})

    async def alarms(request: web.Request) -> web.Response:
        return web.json_response({"alarms": [dataclasses.asdict(a) for a in await node.alarms()]})

    async def checkpoint(request: web.Request) -> web.Response:
        return web.Response(body=await node.checkpoint(), content_type="text/plain")

    async def bundle(request: web.Request) -> web.Response:
        return web.Response(body=await node.export_bundle(), content_type="application/json")

    app = web.Application(middlewares=[authenticate])
    app.router.add_get("/api/v1/audit/bundle", bundle)
    app.router.add_get("/api/v1/audit/alarms", alarms)
    app.router.add_get("/api/v1/audit/checkpoint", checkpoint)
    app.router.add_get("/api/v1/status", status)
    app.router.add_post("/api/v1/messages", send)
    app.router.add_post("/api/v1/messages/batch", send_many)
    app.router.add_get("/api/v1/messages", messages)
    app.router.add_get("/api/v1/messages/{id}", message)
    app.router.add_get("/api/v1/messages/{id}/attachments/{index}", attachment)
    app.router.add_get("/api/v1/cases", cases)
    app.router.add_get("/api/v1/cases/{ref}", case)
    app.router.add_post("/api/v1/cases/{ref}/messages", reply)
    app.router.add_get("/api/v1/spontaneous", spontaneous)
    app.router.add_post("/api/v1/spontaneous/{id}/answer", answer)
    app.router.add_get("/api/v1/statistics/cases", statistics)
    app.router.add_post("/api/v1/directory", directory)
    return app
