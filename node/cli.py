"""The ``rogatory`` command.

One dispatch point: every known failure is a ``RogatoryError`` and becomes exactly one line on
stderr (``error: <code>: <message>. <hint>``) and exit status 1; anything else is a bug and
keeps its traceback. Secrets come from environment variables or a prompt, never from argv,
where other local users could read them in the process list. Commands that need the node's
heavier modules (aiohttp, TLS, the audit bundle) import them when they run, so that the many
short calls a caseworker or a script makes start in a third of a second.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import calendar
import contextlib
import datetime
import getpass
import hashlib
import json
import logging
import os
import runpy
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from keys.directory import (
    SignedRecord,
    add_signature,
    build_directory,
    read_draft,
    unsigned_directory,
    verify_directory,
)
from keys.identity import decode_public
from keys.keystore import KeyStore, SecretariatKey
from node.client import LocalClient
from node.config import load_config
from node.statistics import compute_statistics, draw_charts, format_tables, write_csv, write_json
from protocol.attachment import safe_name
from protocol.case_message import CONTENT_TYPE as CASE_MESSAGE_TYPE
from protocol.case_message import (
    REFUSAL_GROUNDS,
    CaseMessage,
    Conditions,
    encode_case_message,
)
from protocol.errors import (
    AttachmentExists,
    AttachmentMismatch,
    CaseOverdue,
    ConfigError,
    KeystorePassphraseMissing,
    LogAlarm,
    LogInvalid,
    PackageIncomplete,
    PackageLanguageNotAccepted,
    RogatoryError,
    TransportUnreachable,
    error_for_code,
)
from protocol.kinds import Kind, Priority
from protocol.request_package import CONTENT_TYPE as REQUEST_CONTENT_TYPE
from protocol.request_package import (
    FORMS,
    MEASURES,
    check_completeness,
    check_language,
    parse_request,
    require_complete,
    template,
)
from protocol.suites import Suite

__all__ = ["main"]

PASSPHRASE_ENV = "ROGATORY_PASSPHRASE"
ATTACHMENT_TIMEOUT = 6 * 3600.0
"""Seconds to wait for a node to encrypt attachments into its outbox before it answers."""

SECRETARIAT_PASSPHRASE_ENV = "ROGATORY_SECRETARIAT_PASSPHRASE"


def passphrase(variable: str, *, confirm: bool = False) -> bytes:
    """From the environment, else a prompt on a terminal; never from the command line."""
    value = os.environ.get(variable, "")
    if value:
        return value.encode("utf-8")
    if not sys.stdin.isatty():
        raise KeystorePassphraseMissing(f"set {variable} or run from a terminal")
    first = getpass.getpass("Passphrase: ")
    if confirm and getpass.getpass("Again: ") != first:
        raise KeystorePassphraseMissing("the two passphrases differ")
    if not first:
        raise KeystorePassphraseMissing("empty passphrase")
    return first.encode("utf-8")


def _home(args: argparse.Namespace) -> Path:
    return Path(args.home).expanduser()


# --- web users -----------------------------------------------------------------------------

USER_PASSWORD_ENV = "ROGATORY_USER_PASSWORD"


@contextlib.contextmanager
def _user_book(args: argparse.Namespace) -> Iterator[Any]:
    """The node's user accounts, opened directly: users are managed on the node's machine.

    Everything done inside is one transaction of the node's store.
    """
    from node.store import Store

    config = load_config(_home(args))
    store = Store(config.database_path)
    store.users.max_failures, store.users.lockout = config.web_max_failures, config.web_lockout
    try:
        with store.transaction():
            yield store.users
    finally:
        store.close()


def _user_password() -> str:
    value = os.environ.get(USER_PASSWORD_ENV, "")
    if value:
        return value
    if not sys.stdin.isatty():
        raise KeystorePassphraseMissing(f"set {USER_PASSWORD_ENV} or run from a terminal")
    first = getpass.getpass("Password for the user: ")
    if getpass.getpass("Again: ") != first:
        raise KeystorePassphraseMissing("the two passwords differ")
    return first


def cmd_user_add(args: argparse.Namespace) -> None:
    from node.users import Role

    with _user_book(args) as users:
        account = users.add(args.name, Role(args.role), _user_password(),
                            display_name=args.display_name, now=int(time.time()))
    print(f"added {account.name} ({account.display_name}), {account.role.value}")


def cmd_user_list(args: argparse.Namespace) -> None:
    now = int(time.time())
    with _user_book(args) as users:
        for account in users.accounts():
            locked = f"  locked until {_when(account.locked_until)}" \
                if account.locked_until > now else ""
            print(f"{account.name:24} {account.role.value:14} {account.display_name}{locked}")


def cmd_user_unlock(args: argparse.Namespace) -> None:
    with _user_book(args) as users:
        users.unlock(args.name)
    print(f"unlocked {args.name}")


def cmd_user_password(args: argparse.Namespace) -> None:
    with _user_book(args) as users:
        users.set_password(args.name, _user_password())
    print(f"new password set for {args.name}; their sessions are closed")


# --- init, serve, keys --------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> None:
    from node.provision import initialise_node

    profile: dict[str, Any] = {
        "languages": args.language, "request_types": args.request_type,
        "legal_bases": args.legal_basis, "channels": args.channel, "formats": args.format,
        "time_zone": args.time_zone, "office_hours": args.office_hours,
        "urgent_procedure": args.urgent_procedure, "contact_24_7": args.contact_24_7,
        "notes": args.notes,
    }
    signed = initialise_node(
        _home(args), authority=args.authority, name=args.name,
        passphrase=passphrase(PASSPHRASE_ENV, confirm=True), now=int(time.time()),
        peer_host=args.host, peer_port=args.peer_port, api_port=args.api_port,
        web_port=args.web_port, tls=not args.plain_http, secretariat=tuple(args.secretariat),
        threshold=args.threshold, profile={k: v for k, v in profile.items() if v},
        suite=Suite.from_name(args.suite),
    )
    config = load_config(_home(args))
    print(f"initialised {signed.record.authority} in {config.home}")
    print(f"  identity key  {signed.record.identity_key.hex()} (id {config.authority})")
    print(f"  endpoint      {signed.record.endpoint}")
    print(f"  TLS pin       {signed.record.tls_fingerprint or '(plain HTTP)'}")
    print(f"  record        {config.record_path}  <- send this to the secretariat")
    if config.web_enabled:
        print(f"  web interface http://{config.web_host}:{config.web_port}/ "
              "(add users with `rogatory user add`)")
    if not args.secretariat:
        print("  note: no secretariat keys pinned yet; add them to rogatory.toml [directory]")


def cmd_serve(args: argparse.Namespace) -> None:
    from node.node import Node

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    node = Node.from_home(_home(args), passphrase(PASSPHRASE_ENV))

    async def run() -> None:
        await node.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        web = (f", web interface on http://{node.config.web_host}:{node.web_port}/"
               if node.web_port else "")
        print(f"{node.authority} serving peers on port {node.peer_port}, "
              f"local API on port {node.api_port}{web}", flush=True)
        await stop.wait()
        await node.stop()

    asyncio.run(run())


def cmd_keys_rotate(args: argparse.Namespace) -> None:
    from node.provision import refresh_record

    config = load_config(_home(args))
    now = int(time.time())
    store = KeyStore.open(config.keystore_path, passphrase(PASSPHRASE_ENV))
    rotated = store.rotate_prekeys(now, suite=Suite.from_name(args.suite))
    signed = refresh_record(config, rotated, now)
    print(f"{config.authority}: {len(rotated.prekeys)} private prekeys held, "
          f"{len(signed.record.prekeys)} published")
    print(f"new signed record in {config.record_path}; the secretariat must publish it in the "
          "next directory before senders can use the new prekey")


# --- directory ----------------------------------------------------------------------------


def _read_file(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no such file: {path}") from None


def _write_directory(path: str, file: bytes) -> None:
    tmp = Path(path + ".tmp")
    tmp.write_bytes(file)
    os.replace(tmp, path)


def _records(paths: Sequence[str]) -> list[SignedRecord]:
    records = []
    for path in paths:
        signed = SignedRecord.from_json(json.loads(_read_file(path)))
        signed.verify()
        records.append(signed)
    return records


def cmd_directory_keygen(args: argparse.Namespace) -> None:
    key = SecretariatKey.create(Path(args.out), passphrase(SECRETARIAT_PASSPHRASE_ENV,
                                                           confirm=True))
    print(key.public_text)


def cmd_directory_create(args: argparse.Namespace) -> None:
    body = build_directory(args.federation, args.serial, int(time.time()),
                           _records(args.records))
    _write_directory(args.out, unsigned_directory(body))
    print(f"directory serial {args.serial} with {len(args.records)} records written to "
          f"{args.out}; now sign it with M secretariat keys")


def cmd_directory_add(args: argparse.Namespace) -> None:
    draft = read_draft(_read_file(args.file))
    current = dict(draft.records)
    for signed in _records(args.records):
        current[signed.record.authority] = signed
    serial = draft.serial + 1
    body = build_directory(draft.federation, serial, int(time.time()), current.values())
    _write_directory(args.file, unsigned_directory(body))
    print(f"{args.file}: serial {serial}, {len(current)} records; signatures cleared, "
          "sign again")


def cmd_directory_sign(args: argparse.Namespace) -> None:
    key = SecretariatKey.open(Path(args.key), passphrase(SECRETARIAT_PASSPHRASE_ENV))
    signed = add_signature(_read_file(args.file), key.identity)
    _write_directory(args.file, signed)
    print(f"{args.file}: signed by {key.identity.key_id}; "
          f"{len(read_draft(signed).signers)} signature(s)")


def _pins(args: argparse.Namespace) -> tuple[list[bytes], int]:
    if args.home:
        config = load_config(Path(args.home))
        return config.secretariat_keys, config.threshold
    if not args.secretariat:
        raise ConfigError("give --home or the --secretariat keys and --threshold")
    return [decode_public("secretariat", k) for k in args.secretariat], args.threshold


def cmd_directory_verify(args: argparse.Namespace) -> None:
    keys, threshold = _pins(args)
    directory = verify_directory(_read_file(args.file), keys, threshold)
    print(f"valid: federation {directory.federation}, serial {directory.serial}, "
          f"{len(directory.records)} records, digest {directory.digest}")


def cmd_directory_show(args: argparse.Namespace) -> None:
    draft = read_draft(_read_file(args.file))
    print(f"federation {draft.federation}  serial {draft.serial}  issued "
          f"{_when(draft.issued, seconds=True)} UTC  "
          f"signatures {len(draft.signers)} (not checked here; use `directory verify`)")
    for signed in draft.records.values():
        record = signed.record
        print(f"\n{record.authority}  {record.name}")
        print(f"  endpoint   {record.endpoint}  tls {record.tls_fingerprint[:16] or '-'}")
        print("  prekeys    " + ", ".join(
            f"{p.prekey.id} ({p.prekey.suite.value})" for p in record.prekeys))
        for label, value in (("languages", record.languages),
                             ("requests", record.request_types),
                             ("legal bases", record.legal_bases),
                             ("time zone", record.time_zone),
                             ("24/7", record.contact_24_7),
                             ("revoked", [r.key_id for r in record.revoked])):
            if value:
                text = ", ".join(value) if isinstance(value, list | tuple) else value
                print(f"  {label:10} {text}")


# --- messages through the local API -------------------------------------------------------


def _client(args: argparse.Namespace) -> LocalClient:
    return LocalClient(load_config(_home(args)))


def _attachments(args: argparse.Namespace) -> list[str]:
    """Absolute paths: the node reads the files itself, from the same machine."""
    paths = []
    for name in getattr(args, "attach", None) or []:
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"no such file to attach: {name}")
        paths.append(str(path))
    return paths


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def _wait(client: LocalClient, message_id: str, timeout: float = 24 * 3600) -> None:
    """Follow a message until it is delivered, refused or failed; a progress bar for uploads."""
    deadline = time.monotonic() + timeout
    shown = False
    while True:
        message = client.message(message_id)
        sent, total = message.get("transfer", {}).get("sent", 0), message.get(
            "transfer", {}).get("total", 0)
        if total:
            width = 30
            done = int(width * sent / total)
            sys.stderr.write(f"\r  [{'#' * done}{'.' * (width - done)}] "
                             f"{100 * sent // total:3d}%  {_size(sent)} of {_size(total)}  ")
            sys.stderr.flush()
            shown = True
        if message["state"] not in ("queued", "retrying"):  # retrying: the node goes on
            if shown:
                sys.stderr.write("\n")
            print(f"{message['state']}" + (f": {message['last_error']}"
                                           if message["state"] != "delivered" else ""))
            if message["state"] != "delivered":
                raise error_for_code(message["last_error"] or "transport.unreachable",
                                     f"{message_id} {message['state']}")
            return
        if time.monotonic() > deadline:
            raise TransportUnreachable(f"{message_id} still queued after {timeout:.0f}s")
        time.sleep(0.2)


def cmd_send(args: argparse.Namespace) -> None:
    if (args.text is None) == (args.file is None):
        raise ConfigError("give exactly one of --text or --file")
    payload = args.text.encode() if args.text is not None else _read_file(args.file)
    message = {
        "to": args.to, "kind": args.kind, "priority": args.priority,
        "content_type": args.content_type, "payload_b64": base64.b64encode(payload).decode(),
        "case": args.case, "in_reply_to": args.in_reply_to,
        "override_reason": args.override_reason, "attachments": _attachments(args),
    }
    client = _client(args)
    if message["attachments"]:
        client.timeout = ATTACHMENT_TIMEOUT  # the node encrypts them before it answers
    result = client.send(message)
    print(f"queued {result['id']} to {result['to']} (envelope {result['envelope_hash']})")
    if args.wait:
        _wait(client, result["id"])


def _save_attachments(client: LocalClient, message: dict[str, Any], folder: Path) -> None:
    """Each attachment under its safe name; checked against the manifest before it appears."""
    folder.mkdir(parents=True, exist_ok=True)
    for spec in message.get("attachments", []):
        final = folder / safe_name(spec["name"])
        if final.exists():
            raise AttachmentExists(f"{final}; nothing is overwritten")
        partial = folder / f".{final.name}.{os.getpid()}.part"
        digest = hashlib.sha256()
        try:
            with partial.open("xb") as out:
                def sink(chunk: bytes, out: Any = out, digest: Any = digest) -> None:
                    digest.update(chunk)
                    out.write(chunk)
                client.download(f"/messages/{message['id']}/attachments/{spec['index']}",
                                sink)
                out.flush()
                os.fsync(out.fileno())
            if partial.stat().st_size != spec["size"] or digest.hexdigest() != spec["sha256"]:
                raise AttachmentMismatch(f"{spec['name']} does not match its signed manifest")
            try:
                os.link(partial, final)
            except FileExistsError:
                raise AttachmentExists(f"{final}; nothing is overwritten") from None
        finally:
            partial.unlink(missing_ok=True)
        print(f"saved {final} ({_size(spec['size'])}, SHA-256 {spec['sha256'][:16]}..., "
              "verified)")


def cmd_inbox(args: argparse.Namespace) -> None:
    direction = "out" if args.sent else "in"
    rows = _client(args).messages(direction, args.limit)
    if not rows:
        print("no messages")
    for row in rows:
        when = _when(row["created"])
        party = row.get("from") or row.get("to")
        state = row.get("state") or ("opened" if row.get("opened_at") else "new")
        print(f"{row['id']}  {when}  {party:10} {row['kind']:28} {state:10} {row['case']}")


def cmd_show(args: argparse.Namespace) -> None:
    client = LocalClient(load_config(_home(args)), receiver=args.as_receiver)
    message = client.message(args.id)
    if message.get("withheld"):
        conditions = message["conditions"]
        print(f"spontaneous information {message['id']} from {message['from']}: content "
              f"withheld until its conditions are accepted ({message['conditions_state']})")
        print(f"  confidential         {'yes' if conditions['confidential'] else 'no'}")
        print(f"  designated receiver  {conditions['designated_receiver']}")
        for restriction in conditions["use_restrictions"]:
            print(f"  use restriction      {restriction}")
        print(f"answer with `rogatory conditions accept {message['id']}` or `... decline`; "
              "the designated receiver may read it first with `rogatory show --as-receiver`")
        return
    payload = base64.b64decode(message.pop("payload_b64"))
    message.pop("package_b64", None)
    if message.get("content_type") == CASE_MESSAGE_TYPE and not args.save:
        payload = json.dumps(json.loads(payload), indent=2, ensure_ascii=False).encode()
    for key, value in message.items():
        if key != "receipt":
            print(f"{key:14} {value}")
    attachments = message.pop("attachments", [])
    for spec in attachments:
        print(f"attachment {spec['index']}: {spec['name']} ({spec['media_type']}, "
              f"{_size(spec['size'])}, SHA-256 {spec['sha256']})")
    if args.save:
        Path(args.save).write_bytes(payload)
        print(f"payload ({len(payload)} bytes) saved to {args.save}")
    else:
        print()
        print(payload.decode("utf-8", errors="replace"))
    if args.save_attachments:
        _save_attachments(client, {**message, "attachments": attachments},
                          Path(args.save_attachments))


def _when(at: int | None, seconds: bool = False) -> str:
    """A Unix time as UTC, the one way the CLI prints times (callers add " UTC" where the
    column has room)."""
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.gmtime(at))


def cmd_cases(args: argparse.Namespace) -> None:
    """With ``--overdue``, a check for cron or monitoring: exit status 1 when any is late."""
    rows = _client(args).cases(overdue=args.overdue)
    if not rows:
        print("no overdue cases" if args.overdue else "no cases")
        return
    print(f"{'REF':20} {'COUNTERPART':12} {'ROLE':10} {'STATE':32} {'SINCE':16} {'DUE':16}")
    for row in rows:
        marks = ("  OVERDUE" if row["overdue"] else "") + ("  ANOMALY" if row["anomaly"] else "")
        print(f"{row['case_ref']:20} {row['counterpart']:12} {row['role']:10} "
              f"{row['state']:32} {_when(row['state_since']):16} {_when(row['due_at']):16}"
              f"{marks}")
    if args.overdue:
        owed = ", ".join(f"{r['case_ref']} with {r['counterpart']}" for r in rows[:5])
        raise CaseOverdue(f"{len(rows)} case(s): {owed}" + (" ..." if len(rows) > 5 else ""))


def cmd_case_show(args: argparse.Namespace) -> None:
    case = _client(args).case(args.ref, args.counterpart or "")
    print(f"case {case['case_ref']} with {case['counterpart']}: {case['role']} side, "
          f"{case['state']} since {_when(case['state_since'])} UTC")
    details = [f"form {case['form'] or '-'}", "urgent" if case["urgent"] else "normal",
               f"due {_when(case['due_at'])}" + (" (OVERDUE)" if case["overdue"] else "")]
    print("  " + ", ".join(details))
    if case["requested_reference"]:
        print(f"  requested authority's reference: {case['requested_reference']}")
    for gap in case["gaps"]:
        print(f"  missing: {gap['field']} ({gap['message']})")
    if case["refusal_grounds"]:
        print(f"  refused on: {', '.join(case['refusal_grounds'])}")
    if case["anomaly"]:
        print(f"  anomaly: {case['anomaly']}")
    for event in case["timeline"]:
        print(f"{_when(event['at'])}  {event['direction']:8} {event['kind']:32} "
              f"-> {event['state_after']:32} {event['message_id']}")
        if event.get("detail"):
            print(f"    {event['detail']}")
        if event["override_reason"]:
            print(f"    sent incomplete; reason: {event['override_reason']}")
        if event["anomaly"]:
            print(f"    not applied: {event['anomaly']}")


def _reply(args: argparse.Namespace, kind: Kind, fields: dict[str, Any]) -> None:
    client = _client(args)
    if getattr(args, "attach", None):
        client.timeout = ATTACHMENT_TIMEOUT
    result = client.reply(args.ref, kind.value, fields, args.counterpart or "",
                          _attachments(args))
    print(f"queued {kind.value} {result['id']} to {result['to']} on case {args.ref}")
    if getattr(args, "wait", False):
        _wait(client, result["id"])


def cmd_case_acknowledge(args: argparse.Namespace) -> None:
    _reply(args, Kind.ACKNOWLEDGEMENT, {"reference": args.reference, "note": args.note})


def cmd_case_status(args: argparse.Namespace) -> None:
    _reply(args, Kind.STATUS, {"text": args.text})


def cmd_case_ask(args: argparse.Namespace) -> None:
    _reply(args, Kind.ADDITIONAL_INFORMATION_REQUEST, {"questions": args.question})


def cmd_case_answer(args: argparse.Namespace) -> None:
    _reply(args, Kind.ADDITIONAL_INFORMATION, {"text": args.text})


def cmd_case_postpone(args: argparse.Namespace) -> None:
    _reply(args, Kind.POSTPONEMENT, {"until": args.until, "reason": args.reason})


def cmd_case_outcome(args: argparse.Namespace) -> None:
    _reply(args, Kind.OUTCOME, {"final": not args.partial, "summary": args.summary})


def cmd_case_refuse(args: argparse.Namespace) -> None:
    _reply(args, Kind.REFUSAL, {"grounds": args.ground, "explanation": args.explanation})


def cmd_case_withdraw(args: argparse.Namespace) -> None:
    _reply(args, Kind.WITHDRAWAL, {"reason": args.reason})


def _send_case_message(args: argparse.Namespace, message: CaseMessage, *, case: str = "",
                       in_reply_to: str = "", priority: str = "normal") -> dict[str, Any]:
    return _client(args).send({
        "to": args.to, "kind": message.kind.value, "content_type": CASE_MESSAGE_TYPE,
        "payload_b64": base64.b64encode(encode_case_message(message)).decode(),
        "case": case, "in_reply_to": in_reply_to, "priority": priority,
    })


def cmd_consult(args: argparse.Namespace) -> None:
    """Consultation before a formal request (CTOC/COP/WG.3/2017 §4): text and a draft."""
    draft = None
    if args.draft:
        draft = parse_request(_read_file(args.draft))
    message = CaseMessage.build(Kind.CONSULTATION, text=args.text, draft=draft)
    result = _send_case_message(args, message, case=args.case)
    print(f"queued consultation {result['id']} to {result['to']} on case {args.case}")


def cmd_spontaneous(args: argparse.Namespace) -> None:
    if (args.information is None) == (args.file is None):
        raise ConfigError("give exactly one of --information or --file")
    text = args.information if args.file is None else _read_file(args.file).decode("utf-8")
    conditions = Conditions(confidential=args.confidential,
                            use_restrictions=tuple(args.restriction),
                            designated_receiver=args.designated_receiver)
    message = CaseMessage.build(Kind.SPONTANEOUS_INFORMATION, conditions=conditions,
                                information=text)
    result = _send_case_message(args, message, case=args.case, priority=args.priority)
    print(f"queued spontaneous information {result['id']} to {result['to']}; its content "
          "stays withheld there until the conditions are accepted")


def cmd_conditions_list(args: argparse.Namespace) -> None:
    rows = _client(args).spontaneous()
    if not rows:
        print("no spontaneous information")
    for row in rows:
        restrictions = "; ".join(row["conditions"]["use_restrictions"]) or "none"
        print(f"{row['message_id']}  {row['direction']:8} {row['counterpart']:12} "
              f"{row['state']:16} {_when(row['at'])}  restrictions: {restrictions}")


def _answer(args: argparse.Namespace, accepted: bool) -> None:
    client = LocalClient(load_config(_home(args)), receiver=args.as_receiver)
    result = client.answer_conditions(args.id, accepted, args.reason)
    print(f"queued {'acceptance' if accepted else 'refusal'} of the conditions of {args.id} "
          f"to {result['to']} ({result['id']})")


def cmd_conditions_accept(args: argparse.Namespace) -> None:
    _answer(args, True)


def cmd_conditions_decline(args: argparse.Namespace) -> None:
    _answer(args, False)


def _day(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return calendar.timegm(datetime.date.fromisoformat(text).timetuple())
    except ValueError:
        raise ConfigError(f"{text!r} is not a date YYYY-MM-DD") from None


def cmd_stats(args: argparse.Namespace) -> None:
    """The figures CTOC/COP/2010 §26 asks central authorities to keep, from this node's cases."""
    rows = _client(args).statistics_cases()
    stats = compute_statistics(rows, since=_day(args.since), until=_day(args.until))
    sys.stdout.write(format_tables(stats))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        written = [*write_csv(stats, out), write_json(stats, out)]
        if args.charts:
            written += draw_charts(stats, out, args.charts)
        print(f"\nwritten: {', '.join(str(p) for p in written)}")


def cmd_status(args: argparse.Namespace) -> None:
    print(json.dumps(_client(args).status(), indent=2))


def cmd_audit_alarms(args: argparse.Namespace) -> None:
    alarms = _client(args).alarms()
    if not alarms:
        print("no alarms")
        return
    for alarm in alarms:
        when = _when(alarm["at"], seconds=True)
        print(f"#{alarm['id']}  {when} UTC  {alarm['code']:22} log of {alarm['authority']} "
              f"({alarm['source']})\n    {alarm['detail']}")
    raise LogAlarm(f"{len(alarms)} alarm(s) raised by the witness; they are never cleared")


def cmd_audit_export(args: argparse.Namespace) -> None:
    data = _client(args).audit_bundle()
    Path(args.out).write_bytes(data)
    print(f"audit bundle written to {args.out} ({len(data)} bytes); check it with "
          f"`rogatory audit verify {args.out}`")


def cmd_audit_verify(args: argparse.Namespace) -> None:
    from node.audit_bundle import verify_bundle

    keys, threshold = _pins(args)
    report = verify_bundle(_read_file(args.bundle), keys, threshold)
    sys.stdout.write(report.text())
    if not report.ok:
        raise LogInvalid(f"{len(report.problems)} problem(s) in {args.bundle}")


# --- request packages ---------------------------------------------------------------------


def cmd_request_check(args: argparse.Namespace) -> None:
    """Like the UNODC Request Writer Tool: every essential field left out, and why it matters."""
    package = parse_request(_read_file(args.file))
    gaps = check_completeness(package)
    print(f"{args.file}: {package.form} request, reference "
          f"{package.reference or '(none)'}, language {package.language or '(none)'}")
    for gap in gaps:
        print(f"\n{gap.field}\n  {gap.message}\n  why: {gap.why}")
    refused: PackageLanguageNotAccepted | None = None
    if args.to:
        # The recipient's record, from the node's directory, checked against its pinned keys.
        config = load_config(_home(args))
        directory = verify_directory(_read_file(str(config.directory_path)),
                                     config.secretariat_keys, config.threshold)
        record = directory.record(args.to)
        accepted = ", ".join(record.languages) or "no constraint stated"
        try:
            check_language(package, record.languages)
            print(f"\nlanguage: {args.to} accepts {package.language!r} ({accepted})")
        except PackageLanguageNotAccepted as exc:
            refused = exc
            print(f"\nlanguage: not accepted by {args.to}: {exc.detail}; attach a translation")
    if gaps:
        try:
            require_complete(package, override_reason=None)
        except PackageIncomplete as exc:
            if refused is None:
                raise
            raise PackageIncomplete(
                f"{exc.detail}; and the language is not accepted by {args.to}") from None
    if refused is not None:
        raise refused
    print("\ncomplete: no essential field is missing")


def cmd_request_send(args: argparse.Namespace) -> None:
    """Send a request package; its reference becomes the case reference on both nodes."""
    data = _read_file(args.file)
    package = parse_request(data)
    if not package.reference:
        raise PackageIncomplete("requesting_authority.reference: the case needs a reference")
    client = _client(args)
    if args.attach:
        client.timeout = ATTACHMENT_TIMEOUT
    result = client.send({
        "to": args.to, "kind": Kind.REQUEST.value, "content_type": REQUEST_CONTENT_TYPE,
        "payload_b64": base64.b64encode(data).decode(), "case": package.reference,
        "priority": "urgent" if package.urgent else "normal",
        "override_reason": args.override_reason, "attachments": _attachments(args),
    })
    print(f"queued {package.form} request {result['id']} to {result['to']}, "
          f"case {package.reference}")
    if args.override_reason:
        print(f"  sent with a recorded override: {args.override_reason}")


def cmd_request_template(args: argparse.Namespace) -> None:
    skeleton = template(args.form, measures=args.measure)
    print(json.dumps(skeleton, indent=2, ensure_ascii=False))


def cmd_demo(args: argparse.Namespace) -> None:
    script = Path(__file__).resolve().parent.parent / "examples" / "three_authorities.py"
    if not script.exists():
        raise ConfigError(f"{script} not found; the demo runs from a source checkout")
    sys.argv = [str(script), *([args.keep] if args.keep else []),
                *(["--web"] if args.web else [])]
    runpy.run_path(str(script), run_name="__main__")


# --- the parser ---------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rogatory", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, fn: Callable[[argparse.Namespace], None], help_text: str,
                parent: Any = sub, home: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text)
        p.set_defaults(fn=fn)
        if home:
            p.add_argument("--home", default=os.environ.get("ROGATORY_HOME", "."),
                           help="the node's folder (default: $ROGATORY_HOME or .)")
        return p

    p = command("init", cmd_init, "create a node: keys, TLS certificate, config, signed record")
    p.add_argument("--authority", required=True, help="CC:NAME, e.g. FR:MJ")
    p.add_argument("--name", required=True, help="the authority's full name")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--peer-port", type=int, default=8443)
    p.add_argument("--api-port", type=int, default=8080)
    p.add_argument("--web-port", type=int, default=None,
                   help="serve the caseworkers' web interface on this loopback port")
    p.add_argument("--plain-http", action="store_true", help="no TLS (debugging only)")
    p.add_argument("--secretariat", action="append", default=[], help="pinned key (repeat)")
    p.add_argument("--threshold", type=int, default=1)
    p.add_argument("--suite", default=Suite.HYBRID.value, choices=[s.value for s in Suite])
    for flag in ("language", "request-type", "legal-basis", "channel", "format"):
        p.add_argument(f"--{flag}", action="append", default=[])
    for flag in ("office-hours", "urgent-procedure", "contact-24-7", "notes"):
        p.add_argument(f"--{flag}", default="")
    p.add_argument("--time-zone", default="UTC")

    command("serve", cmd_serve, "run the node (peer endpoint, local API, delivery)")

    user = sub.add_parser("user", help="the web interface's users (on the node's machine)")
    usub = user.add_subparsers(dest="sub", required=True)
    p = command("add", cmd_user_add, "add a user; the password comes from "
                f"${USER_PASSWORD_ENV} or a prompt", usub)
    p.add_argument("name", help="login name: a-z, 0-9, '.', '_', '-'")
    p.add_argument("--role", required=True, choices=["caseworker", "head-of-unit", "auditor"])
    p.add_argument("--display-name", default="")
    command("list", cmd_user_list, "list the users and their roles", usub)
    p = command("unlock", cmd_user_unlock, "end a lockout after failed sign-ins", usub)
    p.add_argument("name")
    p = command("password", cmd_user_password, "set a new password (closes sessions)", usub)
    p.add_argument("name")
    command("status", cmd_status, "a running node's counters")

    p = command("send", cmd_send, "queue a message to another authority")
    p.add_argument("--to", required=True)
    p.add_argument("--kind", required=True, choices=[k.value for k in Kind])
    p.add_argument("--text")
    p.add_argument("--file")
    p.add_argument("--content-type", default="text/plain;charset=utf-8")
    p.add_argument("--case", default="")
    p.add_argument("--in-reply-to", default="")
    p.add_argument("--priority", default="normal", choices=[p.value for p in Priority])
    p.add_argument("--override-reason", default="",
                   help="why an incomplete request package is sent anyway (recorded)")
    p.add_argument("--attach", action="append", default=[], metavar="FILE",
                   help="a file to send beside the message, streamed and encrypted (repeat)")
    p.add_argument("--wait", action="store_true",
                   help="follow the delivery, with a progress bar for attachments")

    p = command("inbox", cmd_inbox, "list received (or, with --sent, sent) messages")
    p.add_argument("--sent", action="store_true")
    p.add_argument("--limit", type=int, default=50)

    p = command("show", cmd_show, "show one message and its payload")
    p.add_argument("id")
    p.add_argument("--save", help="write the payload to this file")
    p.add_argument("--as-receiver", action="store_true",
                   help="as the designated receiver (reads withheld spontaneous information)")
    p.add_argument("--save-attachments", metavar="DIR",
                   help="save the attachments here, verified, never overwriting a file")

    p = command("cases", cmd_cases, "the cases this node tracks, with their states")
    p.add_argument("--overdue", action="store_true", help="only the overdue ones")
    case = sub.add_parser("case", help="one case: show it, or answer on it").add_subparsers(
        dest="sub", required=True)
    replies: list[tuple[str, Callable[[argparse.Namespace], None], str]] = [
        ("show", cmd_case_show, "a case's state and timeline"),
        ("acknowledge", cmd_case_acknowledge, "acknowledge a request (names its gaps)"),
        ("status", cmd_case_status, "report progress"),
        ("ask", cmd_case_ask, "ask for additional information"),
        ("answer", cmd_case_answer, "give the additional information asked for"),
        ("postpone", cmd_case_postpone, "postpone execution (UNTOC art. 18(25))"),
        ("outcome", cmd_case_outcome, "return execution results, partial or final"),
        ("refuse", cmd_case_refuse, "refuse, with grounds (UNTOC art. 18(21), (23))"),
        ("withdraw", cmd_case_withdraw, "withdraw the request"),
    ]
    for name, fn, help_text in replies:
        p = command(name, fn, help_text, parent=case)
        p.add_argument("ref")
        p.add_argument("--with", dest="counterpart", help="the other authority (if several)")
        if name != "show":
            p.add_argument("--attach", action="append", default=[], metavar="FILE",
                           help="evidence to send with it (repeat)")
            p.add_argument("--wait", action="store_true", help="follow the delivery")
        if name == "acknowledge":
            p.add_argument("--reference", required=True, help="your own reference")
            p.add_argument("--note", default="")
        elif name in ("status", "answer"):
            p.add_argument("--text", required=True)
        elif name == "ask":
            p.add_argument("--question", action="append", required=True, help="repeatable")
        elif name == "postpone":
            p.add_argument("--reason", required=True)
            p.add_argument("--until", default="", help="YYYY-MM-DD")
        elif name == "outcome":
            p.add_argument("--summary", required=True)
            p.add_argument("--partial", action="store_true", help="more results will follow")
        elif name == "refuse":
            p.add_argument("--ground", action="append", required=True,
                           choices=list(REFUSAL_GROUNDS), help="repeatable")
            p.add_argument("--explanation", required=True)
        elif name == "withdraw":
            p.add_argument("--reason", required=True)

    p = command("consult", cmd_consult, "consult another authority before a formal request")
    p.add_argument("--to", required=True)
    p.add_argument("--case", required=True, help="the reference the request will carry")
    p.add_argument("--text", required=True)
    p.add_argument("--draft", help="a draft request package (JSON) to discuss")

    p = command("spontaneous", cmd_spontaneous,
                "send information without request, under conditions (UNTOC art. 18(4)-(5))")
    p.add_argument("--to", required=True)
    p.add_argument("--information")
    p.add_argument("--file")
    p.add_argument("--confidential", action="store_true")
    p.add_argument("--restriction", action="append", default=[], help="repeatable")
    p.add_argument("--designated-receiver", required=True,
                   help="who at the recipient may read it before accepting the conditions")
    p.add_argument("--case", default="")
    p.add_argument("--priority", default="normal", choices=[p.value for p in Priority])

    conditions = sub.add_parser("conditions", help="conditions of spontaneous information")
    conditions_sub = conditions.add_subparsers(dest="sub", required=True)
    command("list", cmd_conditions_list, "spontaneous information and its answers",
            parent=conditions_sub)
    for name, fn in (("accept", cmd_conditions_accept), ("decline", cmd_conditions_decline)):
        p = command(name, fn, f"{name} the conditions (signed, sent to the sender)",
                    parent=conditions_sub)
        p.add_argument("id")
        p.add_argument("--reason", default="")
        p.add_argument("--as-receiver", action="store_true")

    p = command("stats", cmd_stats, "statistics (CTOC/COP/2010 §26): tables, CSV, JSON, charts")
    p.add_argument("--since", help="YYYY-MM-DD, sent on or after")
    p.add_argument("--until", help="YYYY-MM-DD, sent before")
    p.add_argument("--out", help="write statistics.csv, durations.csv, statistics.json here")
    p.add_argument("--charts", choices=["png", "svg"], help="also draw charts in --out")

    keys = sub.add_parser("keys", help="key management").add_subparsers(dest="sub",
                                                                          required=True)
    p = command("rotate", cmd_keys_rotate, "new prekey; destroy those past their grace",
                parent=keys)
    p.add_argument("--suite", default=Suite.HYBRID.value, choices=[s.value for s in Suite])

    directory = sub.add_parser("directory", help="the signed authority directory")
    dsub = directory.add_subparsers(dest="sub", required=True)
    p = command("keygen", cmd_directory_keygen, "create a secretariat signing key", dsub,
                home=False)
    p.add_argument("--out", required=True)
    p = command("create", cmd_directory_create, "a new unsigned directory from records", dsub,
                home=False)
    p.add_argument("--federation", required=True)
    p.add_argument("--serial", type=int, default=1)
    p.add_argument("--out", required=True)
    p.add_argument("records", nargs="+", help="authority-record.json files")
    p = command("add", cmd_directory_add, "add or replace records; bumps the serial", dsub,
                home=False)
    p.add_argument("--file", required=True)
    p.add_argument("records", nargs="+")
    p = command("sign", cmd_directory_sign, "add a secretariat signature", dsub, home=False)
    p.add_argument("--file", required=True)
    p.add_argument("--key", required=True, help="secretariat key file")
    p = command("verify", cmd_directory_verify, "check signatures and every record", dsub,
                home=False)
    p.add_argument("--file", required=True)
    p.add_argument("--home", help="use this node's pinned keys and threshold")
    p.add_argument("--secretariat", action="append", default=[])
    p.add_argument("--threshold", type=int, default=1)
    p = command("show", cmd_directory_show, "list the records", dsub, home=False)
    p.add_argument("--file", required=True)

    audit = sub.add_parser("audit", help="the tamper-evident log").add_subparsers(
        dest="sub", required=True)
    command("alarms", cmd_audit_alarms, "alarms raised while witnessing peers' logs",
            parent=audit)
    p = command("export", cmd_audit_export, "write an audit bundle of this node", parent=audit)
    p.add_argument("--out", required=True)
    p = command("verify", cmd_audit_verify, "check an audit bundle offline", parent=audit,
                home=False)
    p.add_argument("bundle")
    p.add_argument("--home", help="use this node's pinned secretariat keys and threshold")
    p.add_argument("--secretariat", action="append", default=[])
    p.add_argument("--threshold", type=int, default=1)

    request = sub.add_parser("request", help="request packages: completeness and templates")
    rsub = request.add_subparsers(dest="sub", required=True)
    p = command("check", cmd_request_check,
                "list the essential fields a request lacks, and why each matters", parent=rsub)
    p.add_argument("file", help="a request package (JSON)")
    p.add_argument("--to", help="also check the language against this authority's record "
                                "in the node's verified directory (see --home)")
    p = command("send", cmd_request_send, "send a request package; it opens the case",
                parent=rsub)
    p.add_argument("file", help="a request package (JSON)")
    p.add_argument("--to", required=True)
    p.add_argument("--attach", action="append", default=[], metavar="FILE",
                   help="an annex to send with it (repeat)")
    p.add_argument("--override-reason", default="",
                   help="why an incomplete request, or one in a language the recipient does "
                        "not accept, is sent anyway (recorded in the case)")
    p = command("template", cmd_request_template, "print a blank request to fill in",
                parent=rsub, home=False)
    p.add_argument("form", help="one of: " + ", ".join(FORMS))
    p.add_argument("--measure", action="append", default=[],
                   help="(mla) a kind of assistance to include, repeatable: "
                        + ", ".join(m.type for m in MEASURES))

    p = command("demo", cmd_demo, "three authorities exchanging on loopback", home=False)
    p.add_argument("--keep", help="keep the node folders here")
    p.add_argument("--web", action="store_true",
                   help="then keep the nodes running with their web interfaces, until Ctrl-C")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        args.fn(args)
    except RogatoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
