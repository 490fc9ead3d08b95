"""Three central authorities on loopback: a request, an acknowledgement, spontaneous information.

France's Ministry of Justice (FR:MJ) sends Brazil's Ministry of Justice and Public Security
(BR:MJSP) a complete request package for bank records; Brazil acknowledges with its own
reference; Kenya's Office of the Director of Public Prosecutions (KE:ODPP) spontaneously
transmits information to France under use restrictions, which France's node withholds from its
caseworkers until France accepts them. Every envelope travels node to node over pinned
TLS, sealed with hybrid post-quantum HPKE and signed; every delivery is answered by a signed
receipt, with a proof that the receiver logged it, which the sender verifies against the
secretariat-signed directory. Then a replayed and a tampered envelope show what a receiving node
does with them, and France's audit log is exported and verified offline, witnessed by its peers.

Run it with ``rogatory demo`` (or ``python examples/three_authorities.py``). With ``--web`` the
three nodes keep running afterwards with their web interfaces on, and a caseworker, a head of
unit and an auditor on each, until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from keys.directory import Directory
from node.audit_bundle import verify_bundle
from node.federation import Federation, Member
from node.node import Node
from node.outbound import ENVELOPE_MEDIA_TYPE, Draft
from node.store import OutboundRecord
from node.tls import client_pin
from protocol.case_message import CONTENT_TYPE as CASE_MESSAGE_TYPE
from protocol.case_message import CaseMessage, Conditions, encode_case_message
from protocol.envelope import verify_package
from protocol.kinds import Kind, Priority
from protocol.receipt import Receipt, parse_receipt
from protocol.request_package import CONTENT_TYPE as REQUEST_CONTENT_TYPE
from protocol.request_package import encode_request, parse_request

REQUESTS = Path(__file__).resolve().parent / "requests"

MEMBERS = [
    Member("FR:MJ", "Ministère de la Justice, Bureau de l'entraide pénale internationale",
           {"languages": ["fr", "en"], "time_zone": "Europe/Paris",
            "request_types": ["mla", "extradition"], "legal_bases": ["UNTOC", "UNCAC", "bilateral"],
            "channels": ["rogatory"], "formats": ["application/json", "application/pdf"],
            "urgent_procedure": "call the duty magistrate", "contact_24_7": "+33 1 00 00 00 00"}),
    Member("BR:MJSP", "Ministério da Justiça e Segurança Pública, DRCI",
           {"languages": ["pt", "en", "es"], "time_zone": "America/Sao_Paulo",
            "request_types": ["mla", "asset-recovery"], "legal_bases": ["UNTOC", "UNCAC"],
            "channels": ["rogatory"], "formats": ["application/json"]}),
    Member("KE:ODPP", "Office of the Director of Public Prosecutions",
           {"languages": ["en", "sw"], "time_zone": "Africa/Nairobi",
            "request_types": ["mla", "spontaneous"], "legal_bases": ["UNTOC", "UNCAC"],
            "channels": ["rogatory"], "formats": ["application/json"]}),
]


def say(text: str = "") -> None:
    print(text, flush=True)


def short(digest: str) -> str:
    return digest[:16] + "…"


async def delivered(node: Node, message_id: str, timeout: float = 20.0) -> OutboundRecord:
    """Wait until the outbox entry is closed by a receipt (or fails)."""
    deadline = time.monotonic() + timeout
    while True:
        record = await node.call(node.store.outbound_by_id, message_id)
        if record.state in ("delivered", "refused", "failed"):
            return record
        if time.monotonic() > deadline:
            raise TimeoutError(f"{message_id} still {record.state}: {record.last_error}")
        await asyncio.sleep(0.02)


def check_receipt(record: OutboundRecord, directory: Directory, sender: str) -> Receipt:
    """What an auditor does with a stored receipt: verify it from the directory alone."""
    assert record.receipt is not None
    receipt = parse_receipt(record.receipt)
    receipt.verify(directory.receiver_key(record.recipient, receipt.receiver_key))
    receipt.check_names(envelope_hash=record.envelope_hash, message_id=record.message_id,
                        sender=sender, receiver=record.recipient)
    return receipt


async def send(node: Node, draft: Draft, label: str) -> OutboundRecord:
    queued = await node.submit(draft)
    say(f"→ {node.authority} sends {label} to {draft.recipient}")
    say(f"    message {queued.message_id}, case {draft.case or '-'}, "
        f"envelope {short(queued.envelope_hash)} ({len(queued.envelope)} bytes)")
    record = await delivered(node, queued.message_id)
    if record.state != "delivered":
        raise RuntimeError(f"{label} was not delivered: {record.state} {record.last_error}")
    receipt = check_receipt(record, node.directory, node.authority)
    say(f"    receipt: {receipt.status.value} by {receipt.receiver} at "
        f"{time.strftime('%H:%M:%S', time.gmtime(receipt.received))} UTC, "
        f"signature verified against key {receipt.receiver_key}")
    say(f"    logged by {receipt.receiver} at index {receipt.log_index}; inclusion proof "
        "verified against its signed checkpoint")
    return record


async def send_wait(node: Node, queued: OutboundRecord, label: str) -> OutboundRecord:
    """Like ``send``, for a message the node composed itself (a reply on a case)."""
    say(f"→ {node.authority} sends {label} to {queued.recipient}")
    record = await delivered(node, queued.message_id)
    if record.state != "delivered":
        raise RuntimeError(f"{label} was not delivered: {record.state} {record.last_error}")
    receipt = check_receipt(record, node.directory, node.authority)
    say(f"    receipt: {receipt.status.value} by {receipt.receiver}, signature and log proof "
        "verified")
    return record


async def read(node: Node, message_id: str) -> dict[str, object]:
    message = await node.read_message(message_id)
    package = base64.b64decode(str(message["package_b64"]))
    sender = str(message["from"])
    verify_package(package, node.directory.record(sender).identity_key)
    body = json.loads(base64.b64decode(str(message["payload_b64"])))
    say(f"← {node.authority} opens {message['kind']} {message_id} from {sender}: "
        f"sender's inner signature verified")
    return {"message": message, "body": body}


async def post_raw(node: Node, target: Node, data: bytes) -> Receipt:
    record = node.directory.record(target.authority)
    async with aiohttp.ClientSession() as session, session.post(
        record.endpoint + "/v1/envelopes", data=data, ssl=client_pin(record.tls_fingerprint),
        headers={"Content-Type": ENVELOPE_MEDIA_TYPE},
    ) as response:
        receipt = parse_receipt(await response.read())
    return receipt.verify(node.directory.receiver_key(target.authority, receipt.receiver_key))


DEMO_USERS = (("caseworker", "caseworker"), ("head", "head-of-unit"), ("auditor", "auditor"))


async def open_web(nodes: dict[str, Node]) -> None:
    """Keep the nodes serving their web interfaces, with demo users, until interrupted."""
    from node.users import Role

    password = secrets.token_urlsafe(12)
    say("The web interfaces (each node's own, on loopback):")
    for authority, node in nodes.items():
        def add(node: Node = node) -> None:
            with node.store.transaction():
                for name, role in DEMO_USERS:
                    node.store.users.add(name, Role(role), password, now=int(time.time()))
        await node.call(add)
        say(f"  {authority:8} http://127.0.0.1:{node.web_port}/")
    say(f"Sign in as {', '.join(n for n, _ in DEMO_USERS)}, each with the password {password}")
    say("Ctrl-C stops the nodes.")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def scenario(root: Path, web: bool = False) -> None:
    say("Rogatory demo: three central authorities, one machine, no central relay")
    say("=" * 78)
    federation = Federation.create(root, MEMBERS, web=web)
    say(f"Secretariat: {len(federation.secretariat)} keys; directory serial "
        f"{federation.serial} signed by {federation.threshold} of them")
    nodes = await federation.start()
    try:
        for authority, node in nodes.items():
            record = node.directory.record(authority)
            suite = node.directory.strongest_suite(authority, int(time.time()))
            say(f"  {authority:8} {record.endpoint:24} identity {node.keystore.identity.key_id}"
                f"  prekey suite {suite.value}")
        say()
        fr, br, ke = nodes["FR:MJ"], nodes["BR:MJSP"], nodes["KE:ODPP"]

        say("1. A mutual legal assistance request, checked complete before it leaves")
        package = parse_request((REQUESTS / "mla.json").read_bytes())
        ref = package.reference
        sent = await send(fr, Draft("BR:MJSP", Kind.REQUEST, REQUEST_CONTENT_TYPE,
                                    encode_request(package), case=ref,
                                    priority=Priority.URGENT), "an urgent MLA request")
        opened = await read(br, sent.message_id)
        measures = opened["body"]["measures"]  # type: ignore[index]
        say(f"    measures requested: {', '.join(m['type'] for m in measures)}")
        say("    (this first opening sent France a signed retrieval receipt)")
        say()

        say("2. The requested authority acknowledges it with its own reference")
        ack = await br.reply(ref, "FR:MJ", Kind.ACKNOWLEDGEMENT,
                             {"reference": "DRCI 2026/0042", "note": "assigned to the CGCJI"})
        await send_wait(br, ack, "an acknowledgement")
        answer = await read(fr, ack.message_id)
        say(f"    in reply to {answer['message']['in_reply_to']}; their reference "  # type: ignore[index]
            f"{answer['body']['reference']}; gaps named: "  # type: ignore[index]
            f"{len(answer['body']['gaps']) or 'none'}")  # type: ignore[index]
        case = await fr.case(ref, "BR:MJSP")
        say(f"    France's case {ref}: {case['state']}")
        say()

        say("3. Spontaneous transmission with use restrictions (UNTOC art. 18(4)-(5))")
        info = CaseMessage.build(
            Kind.SPONTANEOUS_INFORMATION,
            conditions=Conditions(
                confidential=True,
                use_restrictions=("use only for the investigation of the offences described",),
                designated_receiver="Head of the Economic and Financial Crime Unit"),
            information="Transfers linked to a shell company registered in Nairobi.")
        spont = await send(ke, Draft("FR:MJ", Kind.SPONTANEOUS_INFORMATION,
                                     CASE_MESSAGE_TYPE, encode_case_message(info)),
                           "spontaneous information")
        shown = await fr.read_message(spont.message_id)
        say(f"    France's caseworkers see: withheld={shown.get('withheld')}, conditions "
            f"{shown['conditions']['use_restrictions']}")
        answer_sent = await fr.answer_conditions(spont.message_id, accepted=True)
        await send_wait(fr, answer_sent, "its signed acceptance of the conditions")
        released = await read(fr, spont.message_id)
        say(f"    released once accepted: {released['body']['information']}")  # type: ignore[index]
        say()

        say("4. What a receiving node does with a replay and a forgery")
        again = await post_raw(fr, br, sent.envelope)
        same = again.data == (await br.call(br.store.inbound_by_id, sent.message_id)).receipt
        say(f"    same request bytes again: {again.status.value}, "
            f"{'the original receipt returned' if same else 'a NEW receipt (wrong!)'}")
        tampered = bytearray(sent.envelope)
        tampered[-100] ^= 1
        refused = await post_raw(fr, br, bytes(tampered))
        say(f"    one bit flipped: {refused.status.value}, code {refused.code}, signed by "
            f"{refused.receiver}")
        say()

        say("5. Audit: every node logs what it sent, received and receipted")
        for node in nodes.values():
            await node.witness.round()  # each node checks and cosigns the others' logs
        bundle = await fr.export_bundle()
        config = fr.config
        report = verify_bundle(bundle, config.secretariat_keys, config.threshold)
        say(f"    FR:MJ's audit bundle ({len(bundle)} bytes) checked offline with only the "
            "secretariat keys:")
        for line in report.text().splitlines():
            if line.startswith(("Log entries", "Checkpoint", "Witness", "Receipts issued",
                                "  20", "VERIFIED", "FAILED", "PROBLEM")):
                say(f"      {line.strip()}")
        alarms = sum([len(await node.alarms()) for node in nodes.values()])
        say(f"    witness alarms raised: {alarms}")
        say()

        say("Summary")
        for authority, node in nodes.items():
            status = await node.status()
            say(f"  {authority:8} received {status['inbound']}, sent {status['outbound']}, "
                f"pending {status['pending']}")
        say("Every receipt verified against the secretariat-signed directory.")
        if web:
            say()
            await open_web(nodes)
    finally:
        await federation.stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    web = "--web" in args
    folders = [a for a in args if a != "--web"]
    if folders:
        root = Path(folders[0])
        root.mkdir(parents=True, exist_ok=True)
        asyncio.run(scenario(root, web))
        say(f"Node folders kept in {root}")
        return 0
    with tempfile.TemporaryDirectory(prefix="rogatory-demo-") as tmp:
        asyncio.run(scenario(Path(tmp), web))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
