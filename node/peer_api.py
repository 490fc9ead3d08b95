"""The endpoint peers call: POST an envelope (or a batch of them), get signed receipts back.

The body limit is enforced while reading, before the whole body is in memory: a declared
length over the limit is refused at once, and an undeclared (chunked) body is cut off as soon
as it passes the limit. Every answer, refusals included, is a signed receipt, so a sender can
always prove what it was told.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from node.inbound import Outcome
from node.outbound import MAX_BATCH, RECEIPT_MEDIA_TYPE, RECEIPTS_MEDIA_TYPE
from protocol.encoding import Reader, frame
from protocol.errors import (
    EnvelopeMalformed,
    RogatoryError,
    StoreDiskFull,
    TransportBodyTooSlow,
)

__all__ = ["peer_application"]

CHUNK = 64 * 1024


def _answer(outcome: Outcome) -> web.Response:
    return web.Response(status=outcome.status, body=outcome.receipt,
                        content_type=RECEIPT_MEDIA_TYPE)


async def _read_limited(request: web.Request, limit: int,
                        timeout: float = 60.0) -> bytes | None:
    """The body, or None as soon as it is known to exceed ``limit``.

    The whole body must arrive within ``timeout`` seconds: a client that trickles it in (a
    slowloris) would otherwise hold a connection and its buffer for as long as it likes.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        return None
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                chunk = await request.content.read(CHUNK)
                if not chunk:
                    return b"".join(parts)
                size += len(chunk)
                if size > limit:
                    return None
                parts.append(chunk)
    except TimeoutError:
        raise TransportBodyTooSlow(f"{size} bytes in {timeout:g} s") from None


def peer_application(
    *,
    accept: Callable[[bytes], Awaitable[Outcome]],
    accept_batch: Callable[[list[bytes]], Awaitable[list[Outcome]]] | None = None,
    refuse: Callable[[RogatoryError, bytes | None], Awaitable[Outcome]] | None = None,
    too_large: Callable[[], Awaitable[Outcome]],
    max_body: int,
    body_timeout: float = 60.0,
    routes: list[web.RouteDef] | None = None,
) -> web.Application:
    async def read_body(request: web.Request) -> bytes | web.Response:
        """The whole body, or the signed refusal to answer instead (too slow, too large).

        A refused body is never read to its end, so the connection is not reused.
        """
        try:
            body = await _read_limited(request, max_body, body_timeout)
        except TransportBodyTooSlow as exc:
            assert refuse is not None
            response = _answer(await refuse(exc, None))
        else:
            if body is not None:
                return body
            response = _answer(await too_large())
        response.force_close()
        return response

    async def post_envelope(request: web.Request) -> web.Response:
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            return _answer(await accept(body))
        except StoreDiskFull as exc:  # a full disk: a signed, transient refusal; nothing stored
            assert refuse is not None
            return _answer(await refuse(exc, body))

    async def post_batch(request: web.Request) -> web.Response:
        """Up to MAX_BATCH framed envelopes; the answer frames one receipt per envelope.

        A body that is not a sequence of frames is refused as a whole with one signed receipt,
        as a single malformed envelope would be.
        """
        body = await read_body(request)
        if isinstance(body, web.Response):
            return body
        try:
            reader = Reader(body, EnvelopeMalformed)
            envelopes = []
            while reader.remaining():
                envelopes.append(reader.framed())
                if len(envelopes) > MAX_BATCH:
                    raise EnvelopeMalformed(f"more than {MAX_BATCH} envelopes in a batch")
            if not envelopes:
                raise EnvelopeMalformed("an empty batch")
        except RogatoryError as exc:
            assert refuse is not None
            return _answer(await refuse(exc, body))  # one receipt, as for a malformed envelope
        assert accept_batch is not None
        try:
            outcomes = await accept_batch(envelopes)
        except StoreDiskFull as exc:  # none of the batch was committed: each refused, transiently
            assert refuse is not None
            outcomes = [await refuse(exc, envelope) for envelope in envelopes]
        return web.Response(status=200, body=frame(*(o.receipt for o in outcomes)),
                            content_type=RECEIPTS_MEDIA_TYPE)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    # client_max_size is a second bound for any route that reads the body whole.
    app = web.Application(client_max_size=max_body + 1)
    app.router.add_post("/v1/envelopes", post_envelope)
    if accept_batch is not None:
        app.router.add_post("/v1/envelopes/batch", post_batch)
    app.router.add_get("/v1/health", health)
    app.router.add_routes(routes or [])
    return app
