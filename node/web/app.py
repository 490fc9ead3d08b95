"""The caseworkers' web interface, served by the node on its own local port.

Server-rendered pages (Jinja2, autoescaped) that work without JavaScript; a small script adds
the completeness check as one types and upload progress. It is never mounted on the peer
endpoint, listens on loopback by default, and every page but the sign-in page needs a session:

- a session cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure``, ``__Host-`` prefix), whose
  token the store keeps only hashed (``node.users``);
- an anti-forgery token on every form, checked against the session on every POST, and the
  ``Origin`` header, when the browser sends one, checked against the page's own origin; the
  sign-in form has its own double-submit token since no session exists yet;
- roles: caseworkers handle cases, heads of unit also answer spontaneous information's
  conditions and see the audit view, auditors see the audit view, statistics and directory but
  never a message's content;
- every sign-in attempt, every opening of a received message and every request sent over the
  checks before sending goes into the audit log, naming the user.

Errors are pages that show the stable code, what was wrong and what to do.
"""

from __future__ import annotations

import asyncio
import base64
import gettext
import hmac
import logging
import secrets
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from aiohttp import BodyPartReader, web
from multidict import MultiDict, MultiDictProxy

from node.local_api import OPERATOR, RECEIVER, attachment_index, stream_attachment
from node.outbound import Draft
from node.store import MessageLine
from node.users import Role, Session
from node.web import request_form
from node.web.i18n import load_translations
from node.web.paging import Page, page_number
from protocol.attachment import safe_name
from protocol.case import CaseState, Direction, allowed_events
from protocol.case import Role as CaseRole
from protocol.case_message import CONTENT_TYPE as CASE_MESSAGE_TYPE
from protocol.case_message import REFUSAL_GROUNDS, parse_case_message
from protocol.errors import (
    ApiBadRequest,
    PackageError,
    RogatoryError,
    StoreNotFound,
    WebCsrfInvalid,
    WebLoginRequired,
)
from protocol.kinds import Kind, Priority
from protocol.receipt import parse_receipt
from protocol.request_package import CONTENT_TYPE as REQUEST_TYPE
from protocol.request_package import (
    FORMS,
    MEASURES,
    RequestPackage,
    check_completeness,
    check_language,
    parse_request,
    template,
)

if TYPE_CHECKING:
    from node.node import Node

__all__ = ["LOGIN_COOKIE", "SESSION_COOKIE", "web_application"]

log = logging.getLogger("rogatory.web")

SESSION_COOKIE = "__Host-rogatory-session"
LOGIN_COOKIE = "__Host-rogatory-login"
SESSION = web.RequestKey("session", Session)
TOKEN = web.RequestKey("token", str)
MAX_UPLOAD = 4 * 1024**3
MAX_FIELD = 5 * 1024 * 1024  # more than a request package may hold (4 MiB)
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

_STATUS = {"web.login_required": 401, "web.login_failed": 401, "web.locked_out": 429,
           "web.csrf_invalid": 403, "web.forbidden": 403, "store.not_found": 404,
           "case.content_withheld": 403}
_PUBLIC = ("/login", "/static/", "/favicon.ico")
_CASE_REPLIES = (Kind.ACKNOWLEDGEMENT, Kind.STATUS, Kind.ADDITIONAL_INFORMATION_REQUEST,
                 Kind.ADDITIONAL_INFORMATION, Kind.POSTPONEMENT, Kind.OUTCOME, Kind.REFUSAL,
                 Kind.WITHDRAWAL)
_CHART_TITLES = {
    "countries": "Requests by counterpart country",
    "assistance": "Requests by type of assistance",
    "outcome": "Outcome of requests",
    "refusal_grounds": "Grounds for refusal of refused requests",
    "time_to_execution": "Time to execution of executed requests",
}
_UPLOAD_ROUTES = frozenset({"/requests/new", "/cases/{ref}/reply"})
CASEWORK = (Role.CASEWORKER, Role.HEAD_OF_UNIT)
OVERSIGHT = (Role.HEAD_OF_UNIT, Role.AUDITOR)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _when(moment: int | float | None) -> str:
    if not moment:
        return ""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(moment))


def _country(authority: str) -> str:
    return authority.split(":", 1)[0]


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text) if text else b""


def web_application(node: Node, *, translations_folder: Path | None = None,
                    language: str = "en",
                    translations: gettext.NullTranslations | None = None) -> web.Application:
    """The interface's routes; ``translations`` (or a catalogue folder) sets its language."""
    if translations is None:
        translations = load_translations(translations_folder, language)
    _ = translations.gettext
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
        extensions=["jinja2.ext.i18n"], undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = _when
    env.filters["segment"] = lambda text: quote(str(text), safe="")
    env.filters["show"] = lambda value: _show(value, _)
    env.globals["country"] = _country

    def page(request: web.Request, template: str, status: int = 200,
             **context: Any) -> web.Response:
        session = request.get(SESSION)
        text = env.get_template(template).render(
            session=session, csrf=session.csrf if session else "", authority=node.authority,
            path=request.path, Role=Role, **context)
        return web.Response(text=text, content_type="text/html", status=status)

    def error_page(request: web.Request, error: RogatoryError) -> web.Response:
        return page(request, "error.html", _STATUS.get(error.code, 400), error=error)

    # --- middleware ---------------------------------------------------------------------

    @web.middleware
    async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects are raised: they need the headers too
            secure(request, exc)
            raise
        secure(request, response)
        return response

    def secure(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")

    def same_origin(request: web.Request) -> bool:
        """A form posted from another site is refused even before its token is looked at.

        Browsers send ``Origin`` on every POST; a client that sends none still needs the token.
        """
        origin = request.headers.get("Origin")
        return origin is None or origin == f"{request.scheme}://{request.host}"

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if not request.path.startswith(_PUBLIC):
                token = request.cookies.get(SESSION_COOKIE, "")
                try:
                    request[SESSION] = await node.web_session(token)
                except WebLoginRequired:
                    if request.method == "GET":
                        target = request.path_qs
                        raise web.HTTPSeeOther(
                            "/login?" + urlencode({"next": target})) from None
                    raise
                request[TOKEN] = token
                if request.method == "POST":
                    await check_csrf(request, request[SESSION].csrf)
            return await handler(request)
        except RogatoryError as exc:
            return error_page(request, exc)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("web interface failure on %s", request.path)
            return error_page(request, RogatoryError("internal error; see the node log"))

    async def check_csrf(request: web.Request, expected: str) -> None:
        if not same_origin(request):
            raise WebCsrfInvalid(f"a form posted from {request.headers.get('Origin')}")
        if request.content_type.startswith("multipart/"):
            # Checked by read_form on the first part, before any file is written.
            if request.match_info.route.resource is None or \
                    request.match_info.route.resource.canonical not in _UPLOAD_ROUTES:
                raise ApiBadRequest("this form takes no files")
            return
        given = request.headers.get("X-CSRF-Token", "")
        if not given and request.content_type == "application/x-www-form-urlencoded":
            given = str((await request.post()).get("csrf", ""))
        _same_token(given, expected)

    # --- signing in and out -------------------------------------------------------------

    def safe_next(target: str) -> str:
        """Only a path on this site; browsers drop tabs and newlines, so none is allowed."""
        parts = urlsplit(target)
        if (not target.startswith("/") or target.startswith("//") or "\\" in target
                or parts.scheme or parts.netloc
                or any(c.isspace() or not c.isprintable() for c in target)):
            return "/"
        return target

    async def login_form(request: web.Request) -> web.Response:
        # Kept while the cookie lives, so two sign-in tabs (or a redirected favicon) do not
        # invalidate each other's form.
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not (32 <= len(nonce) <= 64 and nonce.isascii()):
            nonce = secrets.token_urlsafe(32)
        response = page(request, "login.html", next=safe_next(request.query.get("next", "/")),
                        login_csrf=nonce, error=None, name="")
        response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, secure=True, samesite="Strict",
                            path="/")
        return response

    async def login(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        given = str(form.get("csrf", ""))
        if not same_origin(request) or not nonce or not hmac.compare_digest(
                given.encode(), nonce.encode()):
            raise WebCsrfInvalid("the sign-in form did not come from this node's page")
        name = str(form.get("name", "")).strip().lower()
        target = safe_next(str(form.get("next", "/")))
        try:
            token = await node.sign_in(name, str(form.get("password", "")))
        except RogatoryError as exc:
            fresh = secrets.token_urlsafe(32)
            response = page(request, "login.html", _STATUS.get(exc.code, 401), next=target,
                            login_csrf=fresh, error=exc, name=name)
            response.set_cookie(LOGIN_COOKIE, fresh, httponly=True, secure=True,
                                samesite="Strict", path="/")
            return response
        response = web.HTTPSeeOther(target)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, secure=True,
                            samesite="Strict", path="/")
        response.del_cookie(LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        raise response

    async def logout(request: web.Request) -> web.StreamResponse:
        await node.sign_out(request[TOKEN])
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True,
                            samesite="Strict")
        raise response

    # --- lists --------------------------------------------------------------------------

    async def home(request: web.Request) -> web.StreamResponse:
        session = request[SESSION]
        raise web.HTTPSeeOther("/audit" if session.role is Role.AUDITOR else "/inbox")

    def filters_of(request: web.Request) -> dict[str, str]:
        return {k: request.query.get(k, "").strip() for k in
                ("country", "kind", "status", "urgency", "overdue")}

    async def message_list(request: web.Request, direction: str) -> web.Response:
        request[SESSION].require(*CASEWORK)
        cases = {(c["case_ref"], c["counterpart"]): c for c in await node.cases()}
        chosen = filters_of(request)
        number = page_number(request.query)

        def row(line: MessageLine) -> dict[str, Any]:
            case = cases.get((line.case_ref, line.counterpart))
            return {"id": line.message_id, "counterpart": line.counterpart, "kind": line.kind,
                    "case": line.case_ref, "priority": line.priority, "at": line.at,
                    "delivery": line.delivery, "opened": line.opened_at,
                    "case_state": case["state"] if case else "",
                    "overdue": bool(case and case["overdue"])}

        def listing() -> tuple[Page, set[str], set[str], set[str]]:
            """On the store thread: one pass over the index, newest first, one page kept."""
            shown = Page(number)
            countries: set[str] = set()
            kinds: set[str] = set()
            statuses: set[str] = set()
            for line in node.store.message_index(direction):
                r = row(line)
                countries.add(_country(r["counterpart"]))
                kinds.add(r["kind"])
                statuses.update(s for s in (r["case_state"], r["delivery"]) if s)
                shown.offer(r, matches(r, chosen))
            return shown, countries, kinds, statuses

        shown, countries, kinds, statuses = await node.call(listing)
        return page(request, "messages.html", direction=direction, page=shown,
                    filters=chosen, countries=sorted(countries), kinds=sorted(kinds),
                    statuses=sorted(statuses))

    def matches(row: dict[str, Any], chosen: dict[str, str]) -> bool:
        if chosen["country"] and _country(row["counterpart"]) != chosen["country"]:
            return False
        if chosen["kind"] and row["kind"] != chosen["kind"]:
            return False
        if chosen["status"] and chosen["status"] not in (row["case_state"], row["delivery"]):
            return False
        if chosen["urgency"] and row["priority"] != chosen["urgency"]:
            return False
        return not (chosen["overdue"] and not row["overdue"])

    async def inbox(request: web.Request) -> web.Response:
        return await message_list(request, "in")

    async def outbox(request: web.Request) -> web.Response:
        return await message_list(request, "out")

    async def cases(request: web.Request) -> web.Response:
        request[SESSION].require(*CASEWORK)
        found = await node.cases()
        chosen = filters_of(request)
        shown = Page(page_number(request.query))
        for c in found:
            urgency = "urgent" if c["urgent"] else "normal"
            shown.offer(c, chosen["country"] in ("", _country(c["counterpart"]))
                        and chosen["status"] in ("", c["state"])
                        and chosen["urgency"] in ("", urgency)
                        and (not chosen["overdue"] or c["overdue"]))
        return page(request, "cases.html", page=shown, filters=chosen,
                    countries=sorted({_country(c["counterpart"]) for c in found}),
                    statuses=sorted({c["state"] for c in found}))

    # --- drafting a request -------------------------------------------------------------

    def recipients() -> list[Any]:
        directory = node.directory
        return [r for a, r in sorted(directory.records.items()) if a != node.authority]

    def recipient(to: object) -> Any:
        return next((r for r in recipients() if r.authority == to), None)

    def language_problem(package: RequestPackage, record: Any) -> str:
        """Why the recipient would refuse the request's language, or "" if it would not."""
        try:
            check_language(package, record.languages)
        except RogatoryError as exc:
            return exc.message
        return ""

    def draft_page(request: web.Request, form: str, value: dict[str, Any],
                   package: RequestPackage | None, to: str, gaps: list[Any],
                   error: RogatoryError | None = None, status: int = 200,
                   override: str = "", sent: bool = False) -> web.Response:
        record = recipient(to)
        problem = language_problem(package, record) \
            if package is not None and record is not None and package.language else ""
        return page(request, "request_form.html", status, form=form, forms=FORMS,
                    measures=MEASURES, widgets=request_form.widgets(form, value, gaps),
                    gaps=gaps, to=to, recipients=recipients(), record=record,
                    error=error, override=override, language_problem=problem,
                    sent=sent)

    async def new_request(request: web.Request) -> web.Response:
        request[SESSION].require(*CASEWORK)
        form = request.query.get("form", "mla")
        if form not in FORMS:
            raise ApiBadRequest(f"unknown form {form!r}; one of {', '.join(FORMS)}")
        measures = [m for m in request.query.getall("measure", []) if m]
        value = template(form, measures=measures)
        value["requesting_authority"]["authority"] = node.authority
        package = RequestPackage.from_json(value)
        return draft_page(request, form, value, package, request.query.get("to", ""),
                          check_completeness(package))

    async def read_form(request: web.Request,
                        upload_dir: Path | None) -> tuple[MultiDictProxy[Any], list[Path]]:
        """The posted fields; files are streamed into ``upload_dir``, never held in memory."""
        if not request.content_type.startswith("multipart/"):
            return await request.post(), []
        fields: MultiDict[Any] = MultiDict()
        files: list[Path] = []
        reader = await request.multipart()
        total = text_bytes = 0
        first = await reader.next()
        if not isinstance(first, BodyPartReader) or first.name != "csrf":
            raise WebCsrfInvalid("the form's anti-forgery token must come first")
        token = await first.read_chunk(256)
        if await first.read_chunk(1):
            raise WebCsrfInvalid("the form's anti-forgery token is too long")
        _same_token(token.decode("utf-8", "replace"), request[SESSION].csrf)
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiBadRequest("nested multipart bodies are not accepted")
            if part.filename is None:
                value = bytearray()
                while chunk := await part.read_chunk(64 * 1024):
                    value += chunk
                    text_bytes += len(chunk)
                    if text_bytes > MAX_FIELD:
                        raise ApiBadRequest(f"a form's fields are limited to {MAX_FIELD} bytes")
                fields.add(part.name or "", value.decode("utf-8", "replace"))
                continue
            if not part.filename:
                await part.release()
                continue
            if upload_dir is None:
                raise ApiBadRequest("this form takes no files")
            name = safe_name(unicodedata.normalize("NFC", Path(part.filename).name))
            target = upload_dir / str(len(files)) / name
            target.parent.mkdir(parents=True)
            with target.open("wb") as out:
                while chunk := await part.read_chunk(1024 * 1024):
                    total += len(chunk)
                    if total > MAX_UPLOAD:
                        raise ApiBadRequest(f"uploads are limited to {MAX_UPLOAD} bytes")
                    out.write(chunk)
            files.append(target)
        return MultiDictProxy(fields), files

    def upload_folder() -> Path:
        root = node.config.home / "web-uploads"
        root.mkdir(mode=0o700, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=root))

    async def post_request(request: web.Request) -> web.StreamResponse:
        session = request[SESSION]
        session.require(*CASEWORK)
        folder = upload_folder()
        try:
            data, files = await read_form(request, folder)
            form = str(data.get("form", "mla"))
            if form not in FORMS:
                raise ApiBadRequest(f"unknown form {form!r}")
            to = str(data.get("to", ""))
            action = str(data.get(request_form.ACTION, "check"))
            override = str(data.get("override_reason", "")).strip()
            value = request_form.package_from_form(form, data)
            try:
                package = RequestPackage.from_json(value)
            except PackageError as exc:
                return draft_page(request, form, value, None, to, [], exc, 400, override)
            gaps = check_completeness(package)
            if action != "send":
                return draft_page(request, form, value, package, to, gaps, override=override)
            if not to:
                return draft_page(request, form, value, package, to, gaps,
                                  ApiBadRequest("choose the requested authority"), 400, override)
            if not package.reference:
                return draft_page(request, form, value, package, to, gaps, ApiBadRequest(
                    "the request needs your reference (requesting authority, reference): it "
                    "becomes the case reference on both sides"), 400, override)
            try:
                record = await node.submit(Draft(
                    recipient=to, kind=Kind.REQUEST, content_type=REQUEST_TYPE,
                    payload=package.body, case=package.reference,
                    priority=Priority.URGENT if package.urgent else Priority.NORMAL,
                    override_reason=override, attachments=tuple(files),
                    by=f"user:{session.user}"))
            except RogatoryError as exc:
                return draft_page(request, form, value, package, to, gaps, exc, 400, override)
            log.info("%s sent request %s to %s", session.user, record.message_id, to)
            raise web.HTTPSeeOther(f"/cases/{quote(package.reference, safe='')}?"
                                   + urlencode({"with": to, "sent": record.message_id}))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def check_request(request: web.Request) -> web.Response:
        """The completeness check the form runs as the caseworker types (JSON)."""
        request[SESSION].require(*CASEWORK)
        data = await request.post()
        form = str(data.get("form", "mla"))
        if form not in FORMS:
            raise ApiBadRequest(f"unknown form {form!r}")
        value = request_form.package_from_form(form, data)
        try:
            package = RequestPackage.from_json(value)
        except PackageError as exc:
            return web.json_response({"error": {"code": exc.code, "message": exc.message,
                                                "detail": exc.detail}, "gaps": []})
        record = recipient(data.get("to"))
        return web.json_response({
            "error": None,
            "language": language_problem(package, record) if record is not None else "",
            "gaps": [{"field": g.field, "message": _(g.message), "why": _(g.why)}
                     for g in check_completeness(package)]})

    # --- cases and messages -------------------------------------------------------------

    def receipt_view(receipt: bytes | None, counterpart: str) -> dict[str, Any]:
        """What the case view says of a receipt: re-verified now, against the directory."""
        if not receipt:
            return {"state": "none"}
        try:
            parsed = parse_receipt(receipt)
            key = node.directory.record(parsed.receiver).identity_key
            parsed.verify(key)
            return {"state": "verified", "status": parsed.status.value, "code": parsed.code,
                    "by": parsed.receiver, "at": parsed.received, "digest": parsed.digest}
        except RogatoryError as exc:
            return {"state": "invalid", "code": exc.code, "message": exc.message}

    async def case(request: web.Request) -> web.Response:
        request[SESSION].require(*CASEWORK)
        ref = request.match_info["ref"]
        found = await node.case(ref, request.query.get("with", ""))
        timeline = []
        for event in found["timeline"]:
            shown = {**event, "receipt": None, "issued": None, "opened": None,
                     "delivery": "", "progress": None}
            if event["message_id"] and event["direction"] == "sent":
                try:
                    out = await node.call(node.store.outbound_by_id, event["message_id"])
                    shown["receipt"] = receipt_view(out.receipt, found["counterpart"])
                    shown["delivery"] = out.state
                    shown["progress"] = node.worker.progress.get(out.message_id)
                except StoreNotFound:
                    pass
            elif event["message_id"] and event["direction"] == "received":
                try:
                    inbound = await node.call(node.store.inbound_by_id, event["message_id"])
                    shown["issued"] = receipt_view(inbound.receipt, node.authority)
                    shown["opened"] = inbound.opened_at
                except StoreNotFound:
                    pass
            timeline.append(shown)
        allowed = {event.kind for event in allowed_events(
            CaseState.from_name(found["state"]), CaseRole(found["role"]))
            if event.direction is Direction.SENT}
        return page(request, "case.html", case=found, timeline=timeline,
                    replies=[k for k in _CASE_REPLIES if k in allowed], grounds=REFUSAL_GROUNDS,
                    sent=request.query.get("sent", ""))

    def reply_fields(kind: Kind, data: MultiDictProxy[Any]) -> dict[str, Any]:
        def text(name: str) -> str:
            return str(data.get(name, "")).replace("\r\n", "\n").strip()

        if kind is Kind.ACKNOWLEDGEMENT:
            return {"reference": text("reference"), "note": text("note")}
        if kind in (Kind.STATUS, Kind.ADDITIONAL_INFORMATION):
            return {"text": text("text")}
        if kind is Kind.ADDITIONAL_INFORMATION_REQUEST:
            return {"questions": [q.strip() for q in text("questions").split("\n")
                                  if q.strip()]}
        if kind is Kind.POSTPONEMENT:
            return {"until": text("until"), "reason": text("reason")}
        if kind is Kind.OUTCOME:
            return {"final": data.get("final") == "yes", "summary": text("summary")}
        if kind is Kind.REFUSAL:
            return {"grounds": [g for g in data.getall("grounds", []) if isinstance(g, str)],
                    "explanation": text("explanation")}
        if kind is Kind.WITHDRAWAL:
            return {"reason": text("reason")}
        raise ApiBadRequest(f"{kind.value} is not answered from the case view")

    async def reply(request: web.Request) -> web.StreamResponse:
        session = request[SESSION]
        session.require(*CASEWORK)
        ref = request.match_info["ref"]
        folder = upload_folder()
        try:
            data, files = await read_form(request, folder)
            counterpart = str(data.get("with", ""))
            try:
                kind = Kind(str(data.get("kind", "")))
            except ValueError:
                raise ApiBadRequest(f"unknown kind {data.get('kind')!r}") from None
            if kind not in _CASE_REPLIES:
                raise ApiBadRequest(f"{kind.value} is not answered from the case view")
            record = await node.reply(ref, counterpart, kind, reply_fields(kind, data),
                                      tuple(files))
            log.info("%s sent %s on case %s", session.user, kind.value, ref)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        raise web.HTTPSeeOther(f"/cases/{quote(ref, safe='')}?"
                               + urlencode({"with": counterpart, "sent": record.message_id}))

    def principal(session: Session) -> str:
        return RECEIVER if session.role is Role.HEAD_OF_UNIT else OPERATOR

    async def message(request: web.Request) -> web.Response:
        session = request[SESSION]
        session.require(*CASEWORK)
        shown = await node.read_message(request.match_info["id"], principal(session),
                                        f"user:{session.user}")
        content: dict[str, Any] = {"type": "text", "text": ""}
        payload = _b64decode(shown.get("payload_b64", ""))
        content_type = shown.get("content_type", "")
        if shown.get("withheld"):
            content = {"type": "withheld"}
        elif content_type == REQUEST_TYPE:
            package = parse_request(payload)
            gaps = check_completeness(package)
            content = {"type": "request", "form": package.form, "gaps": gaps,
                       "widgets": request_form.widgets(package.form, package.to_json(), gaps)}
        elif content_type == CASE_MESSAGE_TYPE:
            parsed = parse_case_message(payload)
            content = {"type": "case", "fields": _flatten(parsed.to_json()), "gaps": []}
        else:
            content = {"type": "text", "text": payload.decode("utf-8", "replace")}
        return page(request, "message.html", message=shown, content=content)

    async def attachment(request: web.Request) -> web.StreamResponse:
        session = request[SESSION]
        session.require(*CASEWORK)
        spec, chunks = await node.attachment(request.match_info["id"], attachment_index(request),
                                             principal(session), f"user:{session.user}")
        return await stream_attachment(request, chunks, {
            "Content-Type": "application/octet-stream", "Content-Length": str(spec.size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(spec.name)}"})

    # --- spontaneous information --------------------------------------------------------

    async def spontaneous(request: web.Request) -> web.Response:
        request[SESSION].require(*CASEWORK)
        return page(request, "spontaneous.html", items=await node.spontaneous())

    async def answer(request: web.Request) -> web.StreamResponse:
        session = request[SESSION]
        session.require(Role.HEAD_OF_UNIT)
        data = await request.post()
        accepted = data.get("answer") == "accept"
        if data.get("answer") not in ("accept", "decline"):
            raise ApiBadRequest("answer accept or decline")
        await node.answer_conditions(request.match_info["id"], accepted=accepted,
                                     reason=str(data.get("reason", "")).strip())
        log.info("%s %s the conditions of %s", session.user,
                 "accepted" if accepted else "declined", request.match_info["id"])
        raise web.HTTPSeeOther("/spontaneous")

    # --- directory, audit, statistics ---------------------------------------------------

    async def directory(request: web.Request) -> web.Response:
        q = {k: request.query.get(k, "").strip() for k in
             ("q", "country", "assistance", "language")}
        records = sorted(node.directory.records.values(), key=lambda r: r.authority)

        def keep(record: Any) -> bool:
            if q["country"] and _country(record.authority) != q["country"].upper():
                return False
            if q["assistance"] and q["assistance"] not in record.request_types:
                return False
            if q["language"] and not any(
                    lang.lower().startswith(q["language"].lower()) for lang in record.languages):
                return False
            text = f"{record.authority} {record.name} {record.notes}".lower()
            return not q["q"] or q["q"].lower() in text

        return page(request, "directory.html", records=[r for r in records if keep(r)],
                    query=q, serial=node.directory.serial, issued=node.directory.issued,
                    assistance=sorted({t for r in records for t in r.request_types}),
                    languages=sorted({lang for r in records for lang in r.languages}),
                    countries=sorted({_country(r.authority) for r in records}))

    async def audit(request: web.Request) -> web.Response:
        request[SESSION].require(*OVERSIGHT)
        checkpoint = (await node.checkpoint()).decode("utf-8", "replace")
        return page(request, "audit.html", checkpoint=checkpoint,
                    witnessed=await node.witnessed(), alarms=await node.alarms(),
                    entries=await node.log_tail(100),
                    counts=await node.call(node.store.audit.counts))

    async def bundle(request: web.Request) -> web.Response:
        session = request[SESSION]
        session.require(*OVERSIGHT)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(node.clock()))
        name = f"audit-bundle-{node.authority.replace(':', '_')}-{stamp}.json"
        log.info("%s exported the audit bundle", session.user)
        return web.Response(body=await node.export_bundle(), content_type="application/json",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def statistics(request: web.Request) -> web.Response:
        from node.statistics import (
            DIMENSIONS,
            DIRECTIONS,
            TITLES,
            compute_statistics,
            svg_charts,
        )

        stats = compute_statistics(await node.statistics())
        drawn = await asyncio.to_thread(svg_charts, stats)
        charts = [(name, "data:image/svg+xml;base64,"
                   + base64.b64encode(svg.encode()).decode("ascii")) for name, svg in drawn]
        return page(request, "statistics.html", stats=stats, charts=charts,
                    dimensions=DIMENSIONS, directions=DIRECTIONS, titles=TITLES,
                    chart_titles=_CHART_TITLES)

    app = web.Application(middlewares=[headers, guard], client_max_size=MAX_FIELD)
    app.router.add_get("/login", login_form)
    app.router.add_get("/favicon.ico", _no_content)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/", home)
    app.router.add_get("/inbox", inbox)
    app.router.add_get("/outbox", outbox)
    app.router.add_get("/cases", cases)
    app.router.add_get("/cases/{ref}", case)
    app.router.add_post("/cases/{ref}/reply", reply)
    app.router.add_get("/requests/new", new_request)
    app.router.add_post("/requests/new", post_request)
    app.router.add_post("/requests/check", check_request)
    app.router.add_get("/messages/{id}", message)
    app.router.add_get("/messages/{id}/attachments/{index}", attachment)
    app.router.add_get("/spontaneous", spontaneous)
    app.router.add_post("/spontaneous/{id}/answer", answer)
    app.router.add_get("/directory", directory)
    app.router.add_get("/audit", audit)
    app.router.add_get("/audit/bundle", bundle)
    app.router.add_get("/statistics", statistics)
    app.router.add_static("/static/", STATIC)
    return app


async def _no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


def _same_token(given: str, expected: str) -> None:
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise WebCsrfInvalid("the form's anti-forgery token is missing or wrong")


def _show(value: object, translate: Callable[[str], str]) -> str:
    """A value of a structured message as a person reads it."""
    if isinstance(value, bool):
        return translate("yes") if value else translate("no")
    if isinstance(value, list | tuple):
        return ", ".join(_show(item, translate) for item in value)
    return "" if value is None else str(value)


def _flatten(value: Any, path: str = "") -> list[tuple[str, str]]:
    """A package or message as (path, text) lines, for a readable and printable page."""
    if isinstance(value, dict):
        lines: list[tuple[str, str]] = []
        for key, item in value.items():
            if key == "v":
                continue
            lines.extend(_flatten(item, f"{path}.{key}" if path else key))
        return lines
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return [(path, ", ".join(value))] if value else []
        lines = []
        for i, item in enumerate(value):
            lines.extend(_flatten(item, f"{path}[{i}]"))
        return lines
    if value is None or value == "":
        return []
    if isinstance(value, bool):
        return [(path, "yes" if value else "no")]
    return [(path, str(value))]
