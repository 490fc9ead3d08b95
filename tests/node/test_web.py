"""The caseworkers' web interface over real HTTP, against two running nodes (FR:MJ, BR:MJSP).

The session cookie is ``Secure`` with the ``__Host-`` prefix, so a cookie jar would not send it
over plain http to 127.0.0.1; the tests carry the Cookie header by hand (``Browser``). Nothing
is mocked: what a refusal leaves behind is read from the node's SQLite store and audit log.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Mapping
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from node.audit_bundle import verify_bundle
from node.config import CONFIG_NAME, load_config, render_config
from node.federation import Federation
from node.node import Node
from node.outbound import Draft
from node.tls import client_pin
from node.users import Role
from node.web.paging import PAGE_SIZE
from protocol.errors import ConfigError
from protocol.kinds import Kind
from tests.integration.kit import (
    BR,
    DELIVERY,
    FR,
    MEMBERS,
    log_entries,
    outbound_state,
    snapshot,
    start_federation,
    start_node,
    stop_node,
)

SESSION_COOKIE = "__Host-rogatory-session"
LOGIN_COOKIE = "__Host-rogatory-login"
PASSWORD = "correct horse battery staple"
USERS = {  # name: role, on FR:MJ
    "alice": Role.CASEWORKER,
    "carol": Role.CASEWORKER,
    "hugo": Role.HEAD_OF_UNIT,
    "audrey": Role.AUDITOR,
}
PAGES = ["/", "/inbox", "/outbox", "/cases", "/cases/FR-2025-1?with=BR:MJSP", "/requests/new",
         "/requests/new?form=mla&measure=taking-evidence", "/messages/" + "ab" * 16,
         "/messages/" + "ab" * 16 + "/attachments/0", "/spontaneous", "/directory", "/audit",
         "/audit/bundle", "/statistics"]
POSTS = ["/requests/new", "/requests/check", "/cases/FR-2025-1/reply",
         "/spontaneous/" + "ab" * 16 + "/answer", "/logout"]
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]*)"')


# --- a browser that keeps its own cookies -------------------------------------------------------


@dataclasses.dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    text: str

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")

    def cookie(self, name: str) -> SimpleCookie:
        jar: SimpleCookie = SimpleCookie()
        for header in self.headers.getall("Set-Cookie", []):
            parsed: SimpleCookie = SimpleCookie()
            parsed.load(header)
            if name in parsed:
                jar[name] = parsed[name]
        return jar

    def set_cookie_header(self, name: str) -> str:
        return next(h for h in self.headers.getall("Set-Cookie", [])
                    if h.startswith(name + "="))

    def code(self) -> str:
        found = re.search(r"<code[^>]*>([a-z_]+\.[a-z_.]+)</code>", self.text)
        return found.group(1) if found else ""


class Browser:
    """One user agent: it holds the cookies the node set and sends them back by hand."""

    def __init__(self, http: aiohttp.ClientSession, node: Node) -> None:
        self.http = http
        self.node = node
        self.base = f"http://127.0.0.1:{node.web_port}"
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    @property
    def origin(self) -> str:
        return self.base

    async def request(self, method: str, path: str, *, data: Any = None,
                      headers: Mapping[str, str] | None = None,
                      cookies: Mapping[str, str] | None = None) -> Answer:
        jar = self.cookies if cookies is None else cookies
        sent = dict(headers or {})
        if jar:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        async with self.http.request(method, self.base + path, data=data, headers=sent,
                                     allow_redirects=False) as response:
            body = await response.read()
            answer = Answer(response.status, response.headers, body.decode("utf-8", "replace"))
        for name in (SESSION_COOKIE, LOGIN_COOKIE):
            morsel = answer.cookie(name).get(name)
            if morsel is not None and cookies is None:
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return answer

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, data: Any = None, **kwargs: Any) -> Answer:
        return await self.request("POST", path, data=data, **kwargs)

    async def login_page(self, next_path: str = "/") -> str:
        page = await self.get("/login?next=" + quote(next_path))
        assert page.status == 200
        found = CSRF_FIELD.search(page.text)
        assert found is not None
        return found.group(1)

    async def sign_in(self, name: str, password: str = PASSWORD, next_path: str = "/") -> Answer:
        token = await self.login_page(next_path)
        return await self.post("/login", {"csrf": token, "name": name, "password": password,
                                          "next": next_path})

    async def signed_in(self, name: str) -> Browser:
        answer = await self.sign_in(name)
        assert answer.status == 303, answer.text[:2000]
        assert SESSION_COOKIE in self.cookies
        page = await self.get("/directory")
        found = CSRF_FIELD.search(page.text)
        assert page.status == 200 and found is not None
        self.csrf = found.group(1)
        return self


# --- fixtures and readers -----------------------------------------------------------------------


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Federation]:
    federation = await start_federation(tmp_path, MEMBERS[:2], delivery=DELIVERY, web=True)
    try:
        await add_users(federation.nodes[FR], USERS)
        await add_users(federation.nodes[BR], {"bruno": Role.CASEWORKER})
        yield federation
    finally:
        await federation.stop()


async def add_users(node: Node, users: Mapping[str, Role]) -> None:
    def add() -> None:
        with node.store.transaction():
            for name, role in users.items():
                node.store.users.add(name, role, PASSWORD, now=int(time.time()))
    await node.call(add)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


def browser(http: aiohttp.ClientSession, fed: Federation, authority: str = FR) -> Browser:
    return Browser(http, fed.nodes[authority])


async def log_size(node: Node) -> int:
    return await node.call(node.store.audit.size)


async def state(node: Node) -> dict[str, Any]:
    """What a refused form must leave as it was: the store's message tables, the audit log,
    the case book, and any file under web-uploads."""
    counts = await snapshot(node)

    def cases() -> int:
        return int(node.store.db.execute("SELECT count(*) FROM case_events").fetchone()[0])

    uploads = node.config.home / "web-uploads"
    return {**counts, "log": await log_size(node), "case_events": await node.call(cases),
            "uploads": sorted(str(p) for p in uploads.rglob("*")) if uploads.exists() else []}


def request_form(to: str = BR, reference: str = "FR-2025-17", **more: str) -> dict[str, str]:
    """A partly filled MLA request form, as the browser posts it (no measure, no person)."""
    return {"form": "mla", "to": to, "language": "en",
            "requesting_authority.authority": FR, "requesting_authority.reference": reference,
            "requesting_authority.name": "Bureau de l'entraide pénale internationale",
            "summary_of_facts": "Funds moved through shell companies.",
            "count:offences": "0", "count:persons": "0", "count:measures": "0",
            "urgency.urgent": "no", **more}


# --- no session, no access ----------------------------------------------------------------------


async def test_every_page_redirects_to_sign_in_without_a_session(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    before = await state(fr)
    anonymous = browser(http, fed)
    for cookies in ({}, {SESSION_COOKIE: "forged-or-expired-token"}):
        for path in PAGES:
            answer = await anonymous.get(path, cookies=cookies)
            assert answer.status == 303, (path, answer.status)
            target = urlsplit(answer.location)
            assert target.path == "/login" and not target.netloc, answer.location
            assert parse_qs(target.query)["next"] == [path], answer.location
            assert not answer.cookie(SESSION_COOKIE)
    assert await state(fr) == before


async def test_every_form_post_needs_a_session(fed: Federation,
                                               http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    before = await state(fr)
    anonymous = browser(http, fed)
    for cookies in ({}, {SESSION_COOKIE: "forged-or-expired-token"}):
        for path in POSTS:
            answer = await anonymous.post(path, request_form(_action="send",
                                                             override_reason="urgent"),
                                          cookies=cookies)
            assert (answer.status, answer.code()) == (401, "web.login_required"), path
            assert answer.headers["Content-Type"].startswith("text/html")
    assert await state(fr) == before


async def test_the_sign_in_page_itself_needs_no_session(fed: Federation,
                                                        http: aiohttp.ClientSession) -> None:
    answer = await browser(http, fed).get("/login")
    assert answer.status == 200
    assert 'name="password"' in answer.text and 'type="password"' in answer.text
    static = await browser(http, fed).get("/static/rogatory.css")
    assert static.status == 200


# --- forged forms -------------------------------------------------------------------------------


async def test_a_forged_form_post_is_refused_and_queues_nothing(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    alice = await browser(http, fed).signed_in("alice")
    other = await browser(http, fed).signed_in("alice")  # a second session of the same user
    carol = await browser(http, fed).signed_in("carol")
    assert len({alice.csrf, other.csrf, carol.csrf}) == 3
    sending = request_form(_action="send", override_reason="the court sits tomorrow")
    before = await state(fr)
    forged: list[tuple[str, dict[str, str], dict[str, str]]] = [
        ("no token", sending, {}),
        ("empty token", {**sending, "csrf": ""}, {}),
        ("wrong token", {**sending, "csrf": "A" * 43}, {}),
        ("another session's token", {**sending, "csrf": other.csrf}, {}),
        ("another user's token", {**sending, "csrf": carol.csrf}, {}),
        ("the session token itself", {**sending, "csrf": alice.cookies[SESSION_COOKIE]}, {}),
        ("wrong header token", sending, {"X-CSRF-Token": carol.csrf}),
        ("foreign origin", {**sending, "csrf": alice.csrf}, {"Origin": "https://evil.example"}),
        ("null origin", {**sending, "csrf": alice.csrf}, {"Origin": "null"}),
        ("other port", {**sending, "csrf": alice.csrf},
         {"Origin": f"http://127.0.0.1:{fr.api_port}"}),
    ]
    for what, data, headers in forged:
        for path in ("/requests/new", "/requests/check", "/cases/FR-2025-17/reply", "/logout"):
            answer = await alice.post(path, data, headers=headers)
            assert (answer.status, answer.code()) == (403, "web.csrf_invalid"), (what, path)
    assert await state(fr) == before
    # The session survived the forged sign-out; with its own token the same post is sent.
    answer = await alice.post("/requests/new", {**sending, "csrf": alice.csrf},
                              headers={"Origin": alice.origin})
    assert answer.status == 303, answer.text[:3000]
    after = await state(fr)
    assert after["messages_out"] == before["messages_out"] + 1


async def test_a_json_post_without_the_header_token_is_refused(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    alice = await browser(http, fed).signed_in("alice")
    # A body the form parser does not read: only the X-CSRF-Token header could carry the token.
    answer = await alice.post("/requests/check", b'{"csrf": "%s"}' % alice.csrf.encode(),
                              headers={"Content-Type": "application/json"})
    assert (answer.status, answer.code()) == (403, "web.csrf_invalid")
    answer = await alice.post("/requests/check", request_form(),
                              headers={"X-CSRF-Token": alice.csrf})
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("application/json")


async def test_the_sign_in_form_needs_its_double_submit_token(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    size = await log_size(fr)
    user = browser(http, fed)
    token = await user.login_page()
    assert user.cookies[LOGIN_COOKIE] == token
    good = {"csrf": token, "name": "alice", "password": PASSWORD, "next": "/inbox"}
    attempts: list[tuple[str, dict[str, str], dict[str, str], dict[str, str] | None]] = [
        ("no token", {k: v for k, v in good.items() if k != "csrf"}, {}, None),
        ("no cookie", good, {}, {}),
        ("token differs from cookie", {**good, "csrf": "B" * 43}, {}, None),
        ("cookie differs from token", good, {}, {LOGIN_COOKIE: "C" * 43}),
        ("foreign origin", good, {"Origin": "https://evil.example"}, None),
    ]
    for what, data, headers, cookies in attempts:
        answer = await user.post("/login", data, headers=headers, cookies=cookies)
        assert (answer.status, answer.code()) == (403, "web.csrf_invalid"), what
        assert not answer.cookie(SESSION_COOKIE), what
    # None of these was a sign-in attempt: nothing was checked, nothing logged.
    assert await log_size(fr) == size
    answer = await user.post("/login", good)
    assert (answer.status, answer.location) == (303, "/inbox")
    assert [t for t, _ in await log_entries(fr, size)] == ["user-login"]


async def multipart(parts: list[tuple[str, bytes, str | None]]) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("form-data")
    for name, value, filename in parts:
        body: bytes | io.BytesIO = io.BytesIO(value) if len(value) >= 1024 * 1024 else value
        part = writer.append(body, {"Content-Type": "application/octet-stream"
                                     if filename else "text/plain; charset=utf-8"})
        part.set_content_disposition("form-data", name=name,
                                     **({"filename": filename} if filename else {}))
    return writer


async def test_a_multipart_post_is_checked_before_any_file_is_written(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    alice = await browser(http, fed).signed_in("alice")
    fields = [(k, v.encode(), None) for k, v in
              request_form(_action="send", override_reason="the court sits tomorrow").items()]
    evidence = ("attachments", b"EVIDENCE-BYTES" * 4096, "statement.pdf")
    uploads = fr.config.home / "web-uploads"
    before = await state(fr)
    bad: list[tuple[str, list[tuple[str, bytes, str | None]]]] = [
        ("file first", [evidence, ("csrf", alice.csrf.encode(), None), *fields]),
        ("field first", [*fields, ("csrf", alice.csrf.encode(), None), evidence]),
        ("no token", [*fields, evidence]),
        ("wrong token first", [("csrf", b"W" * 43, None), evidence, *fields]),
    ]
    for what, parts in bad:
        for path in ("/requests/new", "/cases/FR-2025-17/reply"):
            answer = await alice.post(path, await multipart(parts))
            assert (answer.status, answer.code()) == (403, "web.csrf_invalid"), (what, path)
            assert not [p for p in uploads.rglob("*") if p.is_file()], what
    assert await state(fr) == before
    # A route that takes no files refuses multipart bodies outright.
    answer = await alice.post("/spontaneous/" + "ab" * 16 + "/answer",
                              await multipart([("csrf", alice.csrf.encode(), None), evidence]))
    assert answer.status == 400
    # With the token first, the same post is sent with its file, and the upload is cleaned up.
    answer = await alice.post("/requests/new",
                              await multipart([("csrf", alice.csrf.encode(), None), *fields,
                                               evidence]))
    assert answer.status == 303, answer.text[:3000]
    sent = parse_qs(urlsplit(answer.location).query)["sent"][0]
    shown = await fr.read_message(sent)
    assert [a["name"] for a in shown["attachments"]] == ["statement.pdf"]
    assert not [p for p in uploads.rglob("*") if p.is_file()]


async def test_oversized_form_fields_are_refused_before_they_fill_memory(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    alice = await browser(http, fed).signed_in("alice")
    before = await state(fr)
    huge = ("summary_of_facts", b"x" * (5 * 1024 * 1024 + 1), None)
    answer = await alice.post("/requests/new", await multipart(
        [("csrf", alice.csrf.encode(), None), huge, ("_action", b"send", None)]))
    assert (answer.status, answer.code()) == (400, "api.bad_request")
    spread = [("csrf", alice.csrf.encode(), None)] + [
        (f"f{i}", b"y" * (1024 * 1024), None) for i in range(6)]
    answer = await alice.post("/requests/new", await multipart(spread))
    assert (answer.status, answer.code()) == (400, "api.bad_request")
    assert await state(fr) == before


# --- where the interface is served --------------------------------------------------------------


async def test_the_interface_is_not_served_on_the_peer_endpoint(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    record = fr.directory.record(FR)
    alice = await browser(http, fed).signed_in("alice")
    cookie = {"Cookie": f"{SESSION_COOKIE}={alice.cookies[SESSION_COOKIE]}"}
    async with aiohttp.ClientSession() as peer:
        for path in ("/login", "/inbox", "/audit", "/static/rogatory.js", "/"):
            async with peer.get(record.endpoint + path, ssl=client_pin(record.tls_fingerprint),
                                headers=cookie, allow_redirects=False) as response:
                body = await response.text()
                assert response.status in (404, 405), (path, response.status)
                assert "Sign in" not in body and "csrf" not in body
        async with peer.post(record.endpoint + "/login", ssl=client_pin(record.tls_fingerprint),
                             data={"name": "alice", "password": PASSWORD}) as response:
            assert response.status in (404, 405)
            assert SESSION_COOKIE not in response.headers.get("Set-Cookie", "")
    # Nor on the local API's port.
    async with http.get(f"http://127.0.0.1:{fr.api_port}/login",
                        allow_redirects=False) as response:
        assert response.status in (401, 404), response.status
        assert "Sign in" not in await response.text()


def other_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses, as far as name resolution tells."""
    found: set[str] = set()
    for host in (socket.gethostname(), socket.getfqdn()):
        try:
            found.update(str(a[4][0]) for a in socket.getaddrinfo(host, None, socket.AF_INET))
        except OSError:
            continue
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent; this only picks a route
            found.add(probe.getsockname()[0])
    except OSError:
        pass
    return sorted(a for a in found if not a.startswith("127.") and a != "0.0.0.0")


async def test_the_web_site_listens_on_loopback_only(fed: Federation) -> None:
    fr = fed.nodes[FR]
    assert fr.config.web_host == "127.0.0.1" and fr.web_port
    assert fr.web_port not in (fr.peer_port, fr.api_port)
    # 127.0.0.2 is this machine too: a socket bound to 0.0.0.0 would accept it, ours must not.
    for address in ["127.0.0.2", *other_addresses()]:
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex((address, fr.web_port)) == errno.ECONNREFUSED, address
    with socket.create_connection(("127.0.0.1", fr.web_port), timeout=2):
        pass


def write_config(home: Path, **changes: Any) -> None:
    config = dataclasses.replace(load_config(home), **changes)
    (home / CONFIG_NAME).write_text(render_config(config), "utf-8")


@pytest.mark.parametrize("clash", ["peer", "api"])
def test_config_refuses_a_web_port_shared_with_another_listener(tmp_path: Path,
                                                                 clash: str) -> None:
    fed = Federation.create(tmp_path, MEMBERS[:1], web=True)
    home = fed.home(FR)
    config = load_config(home)
    assert config.web_enabled
    port = config.peer_port if clash == "peer" else config.api_port
    write_config(home, web_port=port)
    with pytest.raises(ConfigError) as caught:
        load_config(home)
    assert caught.value.code == "config.invalid"
    # Disabled, the port it would have used does not matter.
    (home / CONFIG_NAME).write_text(render_config(dataclasses.replace(
        config, web_port=port, web_enabled=False)), "utf-8")
    assert load_config(home).web_port == port


@pytest.mark.parametrize("hosts", [("localhost", "127.0.0.1"), ("127.0.0.1", "0.0.0.0")])
def test_config_refuses_the_same_port_under_another_host_name(tmp_path: Path,
                                                              hosts: tuple[str, str]) -> None:
    fed = Federation.create(tmp_path, MEMBERS[:1], web=True)
    home = fed.home(FR)
    config = load_config(home)
    write_config(home, web_host=hosts[0], peer_host=hosts[1], web_port=config.peer_port)
    with pytest.raises(ConfigError):
        load_config(home)


# --- signing in -------------------------------------------------------------------------------


async def test_lockout_after_five_wrong_passwords_and_every_attempt_logged(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    start = await log_size(fr)
    user = browser(http, fed)
    outcomes = []
    for i in range(5):
        answer = await user.sign_in("alice", f"wrong password number {i}")
        outcomes.append((answer.status, answer.code()))
        assert not answer.cookie(SESSION_COOKIE)
        assert "Sign in" in answer.text and 'value="alice"' in answer.text  # the form again
    assert outcomes == [(401, "web.login_failed")] * 4 + [(429, "web.locked_out")]
    for password in (PASSWORD, "still wrong password"):
        answer = await user.sign_in("alice", password)
        assert (answer.status, answer.code()) == (429, "web.locked_out")
        assert not answer.cookie(SESSION_COOKIE) and SESSION_COOKIE not in user.cookies
    # Another account is not affected; a name no account has is logged without a name.
    assert (await user.sign_in("carol")).status == 303
    answer = await user.sign_in("nobody-here", PASSWORD)
    assert (answer.status, answer.code()) == (401, "web.login_failed")
    entries = await log_entries(fr, start)
    assert [t for t, _ in entries] == ["user-login"] * 9
    assert [(f["user"], f["outcome"]) for _, f in entries] == (
        [("alice", "failure")] * 4 + [("alice", "locked")] * 3
        + [("carol", "success"), ("", "failure")])
    now = time.time()
    assert all(now - 60 < f["at"] <= now + 1 for _, f in entries)
    # No password, right or wrong, is in the log.
    raw = b"".join(await fr.call(fr.store.audit.entries, start, start + len(entries)))
    assert b"password" not in raw and PASSWORD.encode() not in raw


async def test_a_user_name_is_matched_case_insensitively_and_trimmed(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    answer = await browser(http, fed).sign_in("  Alice ")
    assert answer.status == 303
    entries = await log_entries(fed.nodes[FR])
    assert entries[-1] == ("user-login", {**entries[-1][1], "user": "alice",
                                          "outcome": "success"})


@pytest.mark.parametrize("target", ["//evil.example", "//evil.example/inbox",
                                    "https://evil.example", "http://evil.example/",
                                    "/\\evil.example", "\\\\evil.example", "evil.example",
                                    "javascript:alert(1)", ""])
async def test_sign_in_never_redirects_off_site(fed: Federation, http: aiohttp.ClientSession,
                                                target: str) -> None:
    user = browser(http, fed)
    token = await user.login_page()
    answer = await user.post("/login", {"csrf": token, "name": "alice", "password": PASSWORD,
                                        "next": target})
    assert (answer.status, answer.location) == (303, "/")
    # The sign-in page does not offer such a target in its form either.
    page = await user.get("/login?next=" + quote(target))
    assert 'name="next" value="/"' in page.text


async def test_sign_in_does_not_redirect_through_whitespace(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    user = browser(http, fed)
    token = await user.login_page()
    answer = await user.post("/login", {"csrf": token, "name": "alice", "password": PASSWORD,
                                        "next": "/\t/evil.example"})
    assert answer.status == 303
    assert answer.location.replace("\t", "").replace("\n", "").replace("\r", "")[:2] != "//"


async def test_sign_in_keeps_an_on_site_target(fed: Federation,
                                               http: aiohttp.ClientSession) -> None:
    answer = await browser(http, fed).sign_in("alice", next_path="/cases?status=open")
    assert (answer.status, answer.location) == (303, "/cases?status=open")


# --- roles ------------------------------------------------------------------------------------


async def received_by(fed: Federation, receiver: str, text: bytes = b"Please hear the witness.",
                      ) -> str:
    sender = fed.nodes[FR if receiver == BR else BR]
    queued = await sender.submit(Draft(receiver, Kind.REQUEST, "text/plain", text))
    await outbound_state(sender, queued.message_id, lambda r: r.state == "delivered")
    return queued.message_id


async def test_an_auditor_sees_the_audit_but_never_content(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    audrey = await browser(http, fed).signed_in("audrey")
    for path in ("/audit", "/statistics", "/directory"):
        answer = await audrey.get(path)
        assert answer.status == 200, path
    message_id = await received_by(fed, FR)
    start = await log_size(fr)
    for path in ("/inbox", "/outbox", "/cases", "/requests/new", f"/messages/{message_id}",
                 f"/messages/{message_id}/attachments/0", "/spontaneous"):
        answer = await audrey.get(path)
        assert (answer.status, answer.code()) == (403, "web.forbidden"), path
        assert "Please hear the witness." not in answer.text
    for path in ("/audit", "/statistics", "/directory"):
        answer = await audrey.get(path)
        assert answer.status == 200, path
    bundle = await audrey.get("/audit/bundle")
    assert bundle.status == 200 and bundle.headers["Content-Type"] == "application/json"
    assert "attachment" in bundle.headers["Content-Disposition"]
    assert (await audrey.get("/")).location == "/audit"
    answer = await audrey.post("/requests/new", {**request_form(_action="send",
                                                                override_reason="x"),
                                                 "csrf": audrey.csrf})
    assert (answer.status, answer.code()) == (403, "web.forbidden")
    # Refused readings are not openings.
    assert "package-opened" not in [t for t, _ in await log_entries(fr, start)]
    assert (await snapshot(fr))["messages_out"] == 0


async def test_the_audit_page_lists_received_envelopes(fed: Federation,
                                                       http: aiohttp.ClientSession) -> None:
    await received_by(fed, FR)
    audrey = await browser(http, fed).signed_in("audrey")
    answer = await audrey.get("/audit")
    assert answer.status == 200, answer.code()
    assert "envelope-received" in answer.text and "user-login" in answer.text
    # An envelope-received entry has "received" where the others have "at": both are shown.
    assert answer.text.count(" UTC</td>") >= 4


async def test_a_caseworker_neither_audits_nor_answers_conditions(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    alice = await browser(http, fed).signed_in("alice")
    for path in ("/audit", "/audit/bundle"):
        answer = await alice.get(path)
        assert (answer.status, answer.code()) == (403, "web.forbidden"), path
    answer = await alice.post("/spontaneous/" + "ab" * 16 + "/answer",
                              {"csrf": alice.csrf, "answer": "accept"})
    assert (answer.status, answer.code()) == (403, "web.forbidden")
    for path in ("/inbox", "/outbox", "/cases", "/requests/new", "/spontaneous", "/directory",
                 "/statistics"):
        assert (await alice.get(path)).status == 200, path
    assert (await alice.get("/")).location == "/inbox"
    hugo = await browser(http, fed).signed_in("hugo")
    assert (await hugo.get("/audit")).status == 200
    # A head of unit may answer; an unknown message is then not found, not forbidden.
    answer = await hugo.post("/spontaneous/" + "ab" * 16 + "/answer",
                             {"csrf": hugo.csrf, "answer": "accept"})
    assert answer.status == 404


# --- the session cookie -------------------------------------------------------------------------


def attributes(header: str) -> tuple[str, dict[str, str]]:
    name_value, *rest = [p.strip() for p in header.split(";")]
    attrs = {}
    for item in rest:
        key, _, value = item.partition("=")
        attrs[key.lower()] = value
    return name_value.split("=", 1)[0], attrs


async def test_the_session_cookie_is_locked_down(fed: Federation,
                                                 http: aiohttp.ClientSession) -> None:
    user = browser(http, fed)
    await user.login_page()
    answer = await user.sign_in("alice")
    for cookie_name in (SESSION_COOKIE,):
        name, attrs = attributes(answer.set_cookie_header(cookie_name))
        assert name.startswith("__Host-")
        assert "httponly" in attrs and "secure" in attrs
        assert attrs["samesite"].lower() == "strict"
        assert attrs["path"] == "/"
        assert "domain" not in attrs
    login_page = await browser(http, fed).get("/login")
    name, attrs = attributes(login_page.set_cookie_header(LOGIN_COOKIE))
    assert name.startswith("__Host-") and "httponly" in attrs and "secure" in attrs
    assert attrs["samesite"].lower() == "strict" and attrs["path"] == "/"
    assert "domain" not in attrs
    # The token is long and random: two sign-ins give two unrelated tokens.
    first = user.cookies[SESSION_COOKIE]
    await user.sign_in("alice")
    assert len(first) >= 43 and user.cookies[SESSION_COOKIE] != first


async def test_sign_out_ends_the_session_on_the_server(fed: Federation,
                                                       http: aiohttp.ClientSession) -> None:
    alice = await browser(http, fed).signed_in("alice")
    old = dict(alice.cookies)
    assert (await alice.get("/inbox")).status == 200
    answer = await alice.post("/logout", {"csrf": alice.csrf})
    assert (answer.status, answer.location) == (303, "/login")
    _, attrs = attributes(answer.set_cookie_header(SESSION_COOKIE))
    assert attrs.get("max-age") == "0" or "expires" in attrs
    # Replaying the old cookie, as a copy of it would: the server has forgotten it.
    replay = await alice.get("/inbox", cookies=old)
    assert replay.status == 303 and replay.location.startswith("/login")
    replay = await alice.post("/requests/new", {**request_form(_action="send",
                                                               override_reason="x"),
                                                "csrf": alice.csrf}, cookies=old)
    assert (replay.status, replay.code()) == (401, "web.login_required")
    fr = fed.nodes[FR]
    assert await fr.call(lambda: fr.store.db.execute(
        "SELECT count(*) FROM web_sessions").fetchone()[0]) == 0


# --- headers ----------------------------------------------------------------------------------


async def test_every_page_carries_the_security_headers(fed: Federation,
                                                       http: aiohttp.ClientSession) -> None:
    message_id = await received_by(fed, FR)
    alice = await browser(http, fed).signed_in("alice")
    hugo = await browser(http, fed).signed_in("hugo")
    pages = [(alice, p) for p in ("/inbox", "/outbox", "/cases", "/requests/new", "/spontaneous",
                                  "/directory", "/statistics", f"/messages/{message_id}",
                                  "/audit", "/messages/" + "cd" * 16)]
    pages += [(hugo, "/directory"), (browser(http, fed), "/login")]
    for user, path in pages:
        answer = await user.get(path)
        headers = answer.headers
        csp = headers.get("Content-Security-Policy", "")
        assert csp, path
        directives = dict([*d.strip().split(" ", 1), ""][:2] for d in csp.split(";"))
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, path
        assert directives["default-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        assert directives["form-action"] == "'self'"
        assert headers.get("X-Frame-Options") == "DENY", path
        assert headers.get("X-Content-Type-Options") == "nosniff", path
        assert headers.get("Cache-Control") == "no-store", path
        if answer.status == 200:
            # Pages that work under that policy: no inline script, style or handler.
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", answer.text), path
            assert not re.search(r"\sstyle=|\son[a-z]+=|javascript:", answer.text), path


async def test_redirects_carry_the_security_headers_too(fed: Federation,
                                                        http: aiohttp.ClientSession) -> None:
    answer = await browser(http, fed).sign_in("alice")
    assert answer.status == 303 and answer.cookie(SESSION_COOKIE)
    assert answer.headers.get("Cache-Control") == "no-store"
    assert answer.headers.get("X-Frame-Options") == "DENY"


# --- opening a message, and the audit bundle ----------------------------------------------------


async def test_opening_a_message_is_logged_with_the_user_and_the_bundle_verifies(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    br = fed.nodes[BR]
    message_id = await received_by(fed, BR, b"Please freeze account 42.")
    bruno = await browser(http, fed, BR).signed_in("bruno")
    start = await log_size(br)
    inbox = await bruno.get("/inbox")
    assert inbox.status == 200 and f"/messages/{message_id}" in inbox.text
    assert [t for t, _ in await log_entries(br, start)] == []  # listing is not opening
    answer = await bruno.get(f"/messages/{message_id}")
    assert answer.status == 200 and "Please freeze account 42." in answer.text
    opened = [f for t, f in await log_entries(br, start) if t == "package-opened"]
    assert len(opened) == 1
    entry = opened[0]
    inbound = await br.call(br.store.inbound_by_id, message_id)
    assert entry["by"] == "user:bruno"
    assert (entry["id"], entry["from"], entry["envelope"]) == (
        message_id, FR, inbound.envelope_hash)
    # Each showing is logged, not only the first.
    await bruno.get(f"/messages/{message_id}")
    opened = [f for t, f in await log_entries(br, start) if t == "package-opened"]
    assert [f["by"] for f in opened] == ["user:bruno"] * 2
    # The sender's own copy is not an opening of a received package.
    fr = fed.nodes[FR]
    alice = await browser(http, fed).signed_in("alice")
    fr_start = await log_size(fr)
    assert (await alice.get(f"/messages/{message_id}")).status == 200
    assert "package-opened" not in [t for t, _ in await log_entries(fr, fr_start)]
    # The audit bundle, with user-login and package-opened entries, verifies offline.
    config = load_config(fed.home(BR))
    types = {t for t, _ in await log_entries(br)}
    assert {"user-login", "package-opened", "envelope-received"} <= types
    report = verify_bundle(await br.export_bundle(), config.secretariat_keys, config.threshold)
    assert report.ok, report.text()
    assert "VERIFIED" in report.text()
    # The bundle a head of unit downloads from the web is the same kind of file, and verifies.
    hugo = await browser(http, fed).signed_in("hugo")
    download = await hugo.get("/audit/bundle")
    report = verify_bundle(download.text.encode(), config.secretariat_keys, config.threshold)
    assert report.ok, report.text()


async def test_the_session_cookie_of_one_node_means_nothing_to_another(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    alice = await browser(http, fed).signed_in("alice")
    stranger = browser(http, fed, BR)
    answer = await stranger.get("/inbox", cookies=alice.cookies)
    assert answer.status == 303 and answer.location.startswith("/login")


# --- drafting and sending a request -------------------------------------------------------------


async def test_the_completeness_check_answers_json(fed: Federation,
                                                   http: aiohttp.ClientSession) -> None:
    alice = await browser(http, fed).signed_in("alice")
    answer = await alice.post("/requests/check", request_form(),
                              headers={"X-CSRF-Token": alice.csrf})
    assert answer.status == 200
    result = json.loads(answer.text)
    assert result["error"] is None and result["language"] == ""
    fields = [g["field"] for g in result["gaps"]]
    assert "measures" in fields and "offences" in fields and "proceeding.nature" in fields
    # What was filled in is no gap.
    assert "summary_of_facts" not in fields and "language" not in fields
    assert "requesting_authority.reference" not in fields
    assert all(g["message"] and g["why"] for g in result["gaps"])
    # Fill one more: it leaves the list.
    more = await alice.post("/requests/check",
                            request_form(**{"proceeding.nature": "investigation"}),
                            headers={"X-CSRF-Token": alice.csrf})
    fewer = [g["field"] for g in json.loads(more.text)["gaps"]]
    assert fewer == [f for f in fields if f != "proceeding.nature"]
    # A value the schema refuses is reported as an error with its path.
    bad = await alice.post("/requests/check", request_form(**{"urgency.deadline": "tomorrow"}),
                           headers={"X-CSRF-Token": alice.csrf})
    error = json.loads(bad.text)["error"]
    assert error["code"] == "package.malformed" and "urgency.deadline" in error["message"]
    # The same check, posted the way the form does (token in the body), is the same answer.
    same = await alice.post("/requests/check", {**request_form(), "csrf": alice.csrf})
    assert json.loads(same.text) == result


async def test_an_incomplete_request_is_sent_only_with_a_reason(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    alice = await browser(http, fed).signed_in("alice")
    before = await state(fr)
    answer = await alice.post("/requests/new", {**request_form(_action="send"),
                                                "csrf": alice.csrf})
    assert (answer.status, answer.code()) == (400, "package.incomplete"), answer.text[:2000]
    assert 'id="request-form"' in answer.text  # the form again, filled as it was
    assert "Funds moved through shell companies." in answer.text
    answer = await alice.post("/requests/new", {**request_form(_action="send",
                                                               override_reason="   "),
                                                "csrf": alice.csrf})
    assert (answer.status, answer.code()) == (400, "package.incomplete")
    # "check" draws the form with its gaps and sends nothing.
    answer = await alice.post("/requests/new", {**request_form(_action="check"),
                                                "csrf": alice.csrf})
    assert answer.status == 200 and 'data-gap-for="measures"' in answer.text
    assert await state(fr) == before
    reason = "the hearing is tomorrow; the rest follows"
    answer = await alice.post("/requests/new", {**request_form(_action="send",
                                                               override_reason=reason),
                                                "csrf": alice.csrf})
    assert answer.status == 303, answer.text[:3000]
    target = urlsplit(answer.location)
    assert target.path == "/cases/FR-2025-17"
    query = parse_qs(target.query)
    assert query["with"] == [BR]
    record = await fr.call(fr.store.outbound_by_id, query["sent"][0])
    assert (record.recipient, record.case_ref, record.kind) == (BR, "FR-2025-17", "request")
    after = await state(fr)
    assert after["messages_out"] == before["messages_out"] + 1
    case = await alice.get(answer.location)
    assert case.status == 200 and reason in case.text and query["sent"][0] in case.text
    # The override is in the tamper-evident log, with who made it and the reason's digest.
    overridden = [f for t, f in await log_entries(fr) if t == "check-overridden"]
    assert [(f["id"], f["envelope"], f["by"], f["reason"]) for f in overridden] == [
        (record.message_id, record.envelope_hash, "user:alice",
         hashlib.sha256(reason.encode()).hexdigest())]
    assert overridden[0]["gaps"] > 0 and overridden[0]["language"] == "accepted"


async def test_a_request_without_a_reference_or_recipient_is_not_sent(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    alice = await browser(http, fed).signed_in("alice")
    before = await state(fr)
    for form in (request_form(reference=""), request_form(to="")):
        answer = await alice.post("/requests/new", {**form, "_action": "send",
                                                    "override_reason": "urgent",
                                                    "csrf": alice.csrf})
        assert answer.status == 400
    assert await state(fr) == before


async def test_a_confiscation_request_can_be_sent(fed: Federation,
                                                  http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    alice = await browser(http, fed).signed_in("alice")
    form = {**request_form(), "form": "confiscation", "count:property": "0"}
    del form["count:measures"]
    # In document order: the schema's "action" select comes before the send button.
    data = aiohttp.FormData([*form.items(), ("action", "give-effect-to-order"),
                             ("override_reason", "urgent"), ("_action", "send"),
                             ("csrf", alice.csrf)])
    answer = await alice.post("/requests/new", data)
    assert answer.status == 303, answer.code()
    assert (await snapshot(fr))["messages_out"] == 1


# --- configuration reaches the running node -----------------------------------------------------


async def test_the_configured_lockout_applies(fed: Federation,
                                              http: aiohttp.ClientSession) -> None:
    await stop_node(fed, FR)
    write_config(fed.home(FR), web_max_failures=2)
    await start_node(fed, FR)
    user = browser(http, fed)
    await user.sign_in("alice", "wrong password one")
    answer = await user.sign_in("alice", "wrong password two")
    assert (answer.status, answer.code()) == (429, "web.locked_out")


# --- long lists -------------------------------------------------------------------------------


async def test_a_long_outbox_is_paged_newest_first_and_filters_count_across_pages(
        fed: Federation, http: aiohttp.ClientSession) -> None:
    """Every message can be reached, the newest on the first page, however long the history;
    the count says where the page stands, and the links keep the filters."""
    fr = fed.nodes[FR]
    earlier = (await state(fr))["messages_out"]
    sent = [await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", f"item {n}".encode()))
            for n in range(2 * PAGE_SIZE + 30)]
    total = earlier + len(sent)
    alice = await browser(http, fed).signed_in("alice")

    def ids(html: str) -> list[str]:
        return re.findall(r'href="/messages/([0-9a-f]{32})"', html)

    first = await alice.get("/outbox")
    assert first.status == 200
    assert ids(first.text)[:3] == [r.message_id for r in reversed(sent[-3:])]
    assert len(ids(first.text)) == PAGE_SIZE
    assert f"1 to {PAGE_SIZE} of {total} messages, newest first" in first.text
    pages = -(-total // PAGE_SIZE)
    assert f"page 1 of {pages}" in first.text and 'rel="prev"' not in first.text
    assert re.search(r'rel="next" href="\?[^"]*page=2"', first.text)

    last = await alice.get(f"/outbox?page={pages}")
    assert len(ids(last.text)) == total - (pages - 1) * PAGE_SIZE
    assert 'rel="next"' not in last.text and 'rel="prev"' in last.text
    listed = [i for p in range(1, pages + 1)
              for i in ids((await alice.get(f"/outbox?page={p}")).text)]
    assert len(listed) == len(set(listed)) == total
    mine = {r.message_id for r in sent}
    assert [i for i in listed if i in mine] == [r.message_id for r in reversed(sent)]

    beyond = await alice.get(f"/outbox?page={pages + 1}")
    assert ids(beyond.text) == [] and f"No messages on this page, of {total}." in beyond.text
    assert ids((await alice.get("/outbox?page=nonsense")).text) == ids(first.text)

    none = await alice.get("/outbox?kind=outcome")
    assert ids(none.text) == [] and f"({total} in all)" in none.text
    kept = await alice.get("/outbox?kind=request&page=2")
    assert re.search(r'rel="prev" href="\?[^"]*kind=request[^"]*page=1"', kept.text)


async def test_a_long_case_list_is_paged(fed: Federation, http: aiohttp.ClientSession) -> None:
    fr = fed.nodes[FR]
    for n in range(PAGE_SIZE + 5):
        await fr.submit(Draft(BR, Kind.REQUEST, "text/plain", b"request", case=f"PAGED-{n:03d}"))
    total = len(await fr.cases())
    alice = await browser(http, fed).signed_in("alice")
    first, second = (await alice.get("/cases"), await alice.get("/cases?page=2"))
    refs = [re.findall(r">(PAGED-\d{3})</a>", page.text) for page in (first, second)]
    assert f"1 to {PAGE_SIZE} of {total} cases" in first.text
    assert f"{PAGE_SIZE + 1} to {total} of {total} cases" in second.text
    assert len(refs[0]) + len(refs[1]) == PAGE_SIZE + 5 and not set(refs[0]) & set(refs[1])
