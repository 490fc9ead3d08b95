"""The local API of a running node: bearer token, request validation, errors by code, exposure.

Calls go over real HTTP to the port the node bound; errors are checked by their stable code in
the ``{"error": {...}}`` body, and "nothing queued" by counting rows in the node's store.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import os
import socket
from typing import Any

import aiohttp
import pytest

from node.federation import Federation
from node.node import Node, read_api_token
from node.tls import client_pin
from protocol.errors import DirectoryRollback
from tests.integration.kit import BR, FR, outbound_state, snapshot, start_node, stop_node

TOKEN = object()
"""Stands for "the node's real token" in ``call``."""


def bearer(node: Node) -> str:
    return f"Bearer {node.config.api_token_path.read_text('ascii').strip()}"


async def call(node: Node, method: str, path: str, *, auth: object = TOKEN,
               body: bytes | None = None, key: str | None = None) -> tuple[int, Any]:
    """One call to the node's local API; returns the status and the decoded JSON answer.
    ``key`` goes in the Idempotency-Key header."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    if auth is TOKEN:
        headers["Authorization"] = bearer(node)
    elif isinstance(auth, str):
        headers["Authorization"] = auth
    url = f"http://127.0.0.1:{node.api_port}/api/v1{path}"
    async with aiohttp.ClientSession() as session, session.request(
        method, url, data=body, headers=headers
    ) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


def error_code(answer: Any) -> str:
    assert set(answer) == {"error"}
    assert {"code", "message", "detail", "hint"} <= set(answer["error"])
    return str(answer["error"]["code"])


def message(**fields: Any) -> bytes:
    return json.dumps({"to": BR, "kind": "request", "payload": "hello", **fields}).encode()


ROUTES = [
    ("GET", "/status", None),
    ("GET", "/messages", None),
    ("GET", "/messages/" + "0" * 32, None),
    ("POST", "/messages", message()),
    ("POST", "/directory", b"{}"),
]
BAD_AUTH = {
    "missing": None,
    "wrong-token": "Bearer not-the-token",
    "no-scheme": "TOKEN-WITHOUT-SCHEME",
    "empty-bearer": "Bearer ",
}


@pytest.mark.parametrize("auth", list(BAD_AUTH.values()), ids=list(BAD_AUTH))
async def test_calls_without_the_token_are_refused(pair: Federation, auth: str | None) -> None:
    fr = pair.nodes[FR]
    before = await snapshot(fr)
    if auth == "TOKEN-WITHOUT-SCHEME":
        auth = bearer(fr).removeprefix("Bearer ")
    for method, path, body in ROUTES:
        status, answer = await call(fr, method, path, auth=auth, body=body)
        assert (status, error_code(answer)) == (401, "api.unauthorized"), (method, path)
    assert await snapshot(fr) == before
    assert fr.directory.serial == 1


async def test_the_token_file_is_what_the_node_checks(pair: Federation) -> None:
    fr, br = pair.nodes[FR], pair.nodes[BR]
    assert read_api_token(fr.config) == bearer(fr).removeprefix("Bearer ")
    assert bearer(fr) != bearer(br)
    # BR's token does not open FR's API.
    status, answer = await call(fr, "GET", "/status", auth=bearer(br))
    assert (status, error_code(answer)) == (401, "api.unauthorized")
    status, answer = await call(fr, "GET", "/status")
    assert status == 200
    assert (answer["authority"], answer["directory_serial"]) == (FR, 1)


BAD_MESSAGES = {
    "not-json": b"{to: BR}",
    "not-utf8": b'{"to": "\xff"}',
    "json-array": b"[]",
    "unknown-kind": message(kind="subpoena"),
    "unknown-priority": message(priority="asap"),
    "both-payloads": message(payload_b64=base64.b64encode(b"x").decode()),
    "no-payload": json.dumps({"to": BR, "kind": "request"}).encode(),
    "bad-base64": json.dumps({"to": BR, "kind": "request", "payload_b64": "%%%"}).encode(),
    "missing-to": json.dumps({"kind": "request", "payload": "x"}).encode(),
    "to-not-string": message(to=7),
    "lifetime-not-int": message(lifetime="3600"),
    "case-not-string": message(case=17),
    "to-self": message(to=FR),
    "idempotency-key-with-a-space": message(idempotency_key="two words"),
    "idempotency-key-empty": message(idempotency_key=""),
    "idempotency-key-not-string": message(idempotency_key=7),
    "idempotency-key-too-long": message(idempotency_key="k" * 129),
}


@pytest.mark.parametrize("body", list(BAD_MESSAGES.values()), ids=list(BAD_MESSAGES))
async def test_bad_message_requests_queue_nothing(pair: Federation, body: bytes) -> None:
    fr = pair.nodes[FR]
    before = await snapshot(fr)
    status, answer = await call(fr, "POST", "/messages", body=body)
    assert (status, error_code(answer)) == (400, "api.bad_request"), answer
    assert await snapshot(fr) == before


async def test_a_good_message_is_queued_and_delivered(pair: Federation) -> None:
    fr, br = pair.nodes[FR], pair.nodes[BR]
    payload = os.urandom(64)
    status, sent = await call(fr, "POST", "/messages", body=json.dumps({
        "to": BR, "kind": "request", "priority": "urgent", "case": "C-1",
        "payload_b64": base64.b64encode(payload).decode(),
        "content_type": "application/octet-stream",
    }).encode())
    assert status == 202
    assert (sent["to"], sent["kind"], sent["priority"], sent["case"]) == (
        BR, "request", "urgent", "C-1")
    assert sent["state"] == "queued"

    await outbound_state(fr, sent["id"], lambda r: r.state == "delivered")
    status, listed = await call(fr, "GET", "/messages?direction=out")
    assert status == 200
    assert [(m["id"], m["state"]) for m in listed["messages"]] == [(sent["id"], "delivered")]
    status, received = await call(br, "GET", f"/messages/{sent['id']}")
    assert status == 200
    assert (received["from"], received["content_type"]) == (FR, "application/octet-stream")
    assert base64.b64decode(received["payload_b64"]) == payload


async def test_unknown_message_is_not_found(pair: Federation) -> None:
    fr = pair.nodes[FR]
    status, answer = await call(fr, "GET", "/messages/" + os.urandom(16).hex())
    assert (status, error_code(answer)) == (404, "store.not_found")


@pytest.mark.parametrize(
    "query", ["direction=sideways", "limit=ten", "offset=x", "limit=-1", "limit=0", "offset=-5"]
)
async def test_bad_listing_parameters(pair: Federation, query: str) -> None:
    status, answer = await call(pair.nodes[FR], "GET", f"/messages?{query}")
    assert (status, error_code(answer)) == (400, "api.bad_request")


async def test_directory_upload_refuses_rollback(pair: Federation) -> None:
    fr = pair.nodes[FR]
    older = fr.config.directory_path.read_bytes()
    newer = pair.directory_file(int(fr.clock()))
    status, answer = await call(fr, "POST", "/directory", body=newer)
    assert (status, answer["serial"]) == (200, 2)
    status, answer = await call(fr, "POST", "/directory", body=older)
    assert (status, error_code(answer)) == (400, "directory.rollback")
    assert fr.directory.serial == 2


async def test_the_peer_port_does_not_serve_the_local_api(pair: Federation) -> None:
    fr = pair.nodes[FR]
    record = fr.directory.record(FR)
    before = await snapshot(fr)
    headers = {"Authorization": bearer(fr), "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        pin = client_pin(record.tls_fingerprint)
        async with session.get(record.endpoint + "/v1/health", ssl=pin) as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})
        for method, path, body in ROUTES:
            async with session.request(method, record.endpoint + "/api/v1" + path, ssl=pin,
                                       data=body, headers=headers) as response:
                assert response.status in (404, 405), (method, path)
                assert response.content_type != "application/json"
    assert await snapshot(fr) == before


async def test_the_local_api_listens_on_loopback_only(pair: Federation) -> None:
    fr = pair.nodes[FR]
    assert fr.config.api_host == "127.0.0.1"
    # 127.0.0.2 is this machine too: a socket bound to 0.0.0.0 would accept it, ours must not.
    with socket.socket() as probe:
        probe.settimeout(2)
        assert probe.connect_ex(("127.0.0.2", fr.api_port)) == errno.ECONNREFUSED
    with socket.create_connection(("127.0.0.1", fr.api_port), timeout=2):
        pass
    status, _ = await call(fr, "GET", "/status")
    assert status == 200


async def test_a_directory_adopted_through_the_api_survives_a_restart(
        pair: Federation) -> None:
    """The adopted directory must reach directory.json, or the next start is a rollback."""
    fr = pair.nodes[FR]
    status, answer = await call(fr, "POST", "/directory",
                                body=pair.directory_file(int(fr.clock())))
    assert (status, answer["serial"]) == (200, 2)
    await stop_node(pair, FR)
    try:
        restarted = await start_node(pair, FR)
    except DirectoryRollback as exc:
        pytest.fail(f"restart refused: {exc}")
    assert restarted.directory.serial == 2
    assert restarted.config.directory_path.read_bytes() == restarted.directory.file


async def test_many_messages_in_one_call_each_answered_in_its_place(pair: Federation) -> None:
    fr = pair.nodes[FR]
    ok = {"to": BR, "kind": "request", "payload": "bulk"}
    # An outcome for a case never acknowledged: refused alone, nothing of it stored.
    bad = {"to": BR, "kind": "outcome", "payload": "done", "case": "NEVER-SENT"}
    before = await snapshot(fr)
    status, answer = await call(fr, "POST", "/messages/batch",
                                body=json.dumps({"messages": [ok, bad, ok]}).encode())
    assert status == 207
    first, refused, third = answer["results"]
    assert refused == {"error": {"code": "case.transition_invalid",
                                 "message": refused["error"]["message"]}}
    assert first["id"] != third["id"]
    for queued in (first, third):
        await outbound_state(fr, queued["id"], lambda r: r.state == "delivered")
    after = await snapshot(fr)
    assert after["messages_out"] == before["messages_out"] + 2

    # A malformed item refuses the whole call before anything is queued.
    status, answer = await call(fr, "POST", "/messages/batch",
                                body=json.dumps({"messages": [ok, {"kind": "request"}]}).encode())
    assert (status, error_code(answer)) == (400, "api.bad_request")
    status, answer = await call(fr, "POST", "/messages/batch",
                                body=json.dumps({"messages": []}).encode())
    assert (status, error_code(answer)) == (400, "api.bad_request")
    assert (await snapshot(fr))["messages_out"] == after["messages_out"]


# --- idempotency keys -------------------------------------------------------------------------


async def received_ids(node: Node) -> list[str]:
    status, listed = await call(node, "GET", "/messages?direction=in&limit=1000")
    assert status == 200
    return [m["id"] for m in listed["messages"]]


async def test_a_submit_retried_with_its_idempotency_key_is_sent_once(pair: Federation) -> None:
    """A tool that lost the answer (a timeout, a crash) sends again with the same key and gets
    the same message back, before delivery, after it and after the node restarts."""
    fr, br = pair.nodes[FR], pair.nodes[BR]
    key = "retry-" + os.urandom(8).hex()
    before = await snapshot(fr)
    answers = [await call(fr, "POST", "/messages", body=message(case="K-1"), key=key)
               for _ in range(2)]
    assert [status for status, _ in answers] == [202, 202]
    first = answers[0][1]
    assert answers[1][1]["id"] == first["id"]
    assert (await snapshot(fr))["messages_out"] == before["messages_out"] + 1
    await outbound_state(fr, first["id"], lambda r: r.state == "delivered")

    status, again = await call(fr, "POST", "/messages",
                               body=message(case="K-1", idempotency_key=key))
    assert (status, again["id"], again["state"]) == (202, first["id"], "delivered")
    await stop_node(pair, FR)
    fr = await start_node(pair, FR)
    status, again = await call(fr, "POST", "/messages", body=message(case="K-1"), key=key)
    assert (status, again["id"]) == (202, first["id"])
    assert (await snapshot(fr))["messages_out"] == before["messages_out"] + 1
    assert (await received_ids(br)).count(first["id"]) == 1


async def test_the_same_key_at_once_from_several_callers_queues_one_message(
        pair: Federation) -> None:
    fr = pair.nodes[FR]
    before = await snapshot(fr)
    key = "burst-" + os.urandom(8).hex()
    answers = await asyncio.gather(*(call(fr, "POST", "/messages", body=message(), key=key)
                                     for _ in range(6)))
    assert {status for status, _ in answers} == {202}
    assert len({answer["id"] for _, answer in answers}) == 1
    assert (await snapshot(fr))["messages_out"] == before["messages_out"] + 1


async def test_a_key_reused_for_other_content_is_refused_and_sends_nothing(
        pair: Federation) -> None:
    fr = pair.nodes[FR]
    key = "reused-" + os.urandom(8).hex()
    status, first = await call(fr, "POST", "/messages", body=message(payload="first"), key=key)
    assert status == 202
    before = await snapshot(fr)
    for body in (message(payload="second"), message(payload="first", priority="urgent"),
                 message(payload="first", to=FR.replace("FR", "KE"))):
        status, answer = await call(fr, "POST", "/messages", body=body, key=key)
        assert (status, error_code(answer)) == (422, "api.idempotency_key_reused"), answer
        assert first["id"] in answer["error"]["message"]
    # The header and the member must agree when both are given.
    status, answer = await call(fr, "POST", "/messages",
                                body=message(payload="first", idempotency_key="other"), key=key)
    assert (status, error_code(answer)) == (400, "api.bad_request")
    # (The first message may have been delivered meanwhile; nothing new was queued.)
    assert (await snapshot(fr))["messages_out"] == before["messages_out"]


async def test_a_batch_retried_with_keys_per_message_queues_nothing_new(
        pair: Federation) -> None:
    fr = pair.nodes[FR]
    keys = [f"batch-{n}-" + os.urandom(4).hex() for n in range(3)]
    body = json.dumps({"messages": [
        {"to": BR, "kind": "request", "payload": f"item {n}", "idempotency_key": key}
        for n, key in enumerate(keys)]}).encode()
    before = await snapshot(fr)
    status, first = await call(fr, "POST", "/messages/batch", body=body)
    assert status == 207
    status, again = await call(fr, "POST", "/messages/batch", body=body)
    assert status == 207
    assert [r["id"] for r in again["results"]] == [r["id"] for r in first["results"]]
    assert len({r["id"] for r in first["results"]}) == 3
    assert (await snapshot(fr))["messages_out"] == before["messages_out"] + 3
