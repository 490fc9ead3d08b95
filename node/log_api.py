"""The read-only log endpoints on the peer port: checkpoint, proofs, and this witness's views.

They give away hashes, sizes and signatures, never entries, so peers and auditors can check a
log's consistency without learning what it records.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

from aiohttp import web

from protocol.errors import LogError, RogatoryError, StoreNotFound

__all__ = ["log_routes"]

TEXT = "text/plain"


def _hashes(hashes: list[bytes]) -> web.Response:
    body = "".join(base64.b64encode(h).decode("ascii") + "\n" for h in hashes)
    return web.Response(text=body, content_type=TEXT)


def _int(request: web.Request, name: str) -> int:
    try:
        value = int(request.query[name])
    except (KeyError, ValueError):
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None
    if value < 0:
        raise web.HTTPBadRequest(text=f"{name} must not be negative")
    return value


def log_routes(
    *,
    checkpoint: Callable[[], Awaitable[bytes]],
    consistency: Callable[[int, int], Awaitable[list[bytes]]],
    inclusion: Callable[[int, int], Awaitable[list[bytes]]],
    witness_view: Callable[[str], Awaitable[bytes | None]],
) -> list[web.RouteDef]:
    async def get_checkpoint(request: web.Request) -> web.Response:
        return web.Response(body=await checkpoint(), content_type=TEXT, charset="utf-8")

    async def get_consistency(request: web.Request) -> web.Response:
        try:
            return _hashes(await consistency(_int(request, "old"), _int(request, "new")))
        except (LogError, StoreNotFound, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None

    async def get_inclusion(request: web.Request) -> web.Response:
        try:
            return _hashes(await inclusion(_int(request, "index"), _int(request, "size")))
        except (LogError, StoreNotFound, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None

    async def get_witness_view(request: web.Request) -> web.Response:
        try:
            note = await witness_view(request.match_info["authority"])
        except RogatoryError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        if note is None:
            raise web.HTTPNotFound(text="this node has not witnessed that log")
        return web.Response(body=note, content_type=TEXT, charset="utf-8")

    return [
        web.get("/v1/log/checkpoint", get_checkpoint),
        web.get("/v1/log/consistency", get_consistency),
        web.get("/v1/log/inclusion", get_inclusion),
        web.get("/v1/witness/{authority}/checkpoint", get_witness_view),
    ]
