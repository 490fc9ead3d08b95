"""Fuzzing every parser (issue #7): nothing that arrives from outside may crash Rogatory.

Each property feeds one parser two kinds of input: raw bytes (``st.binary``), and *mutants* of
a valid encoding, built here with the module's own encoder and fixed keys and then changed:
bytes flipped, set, inserted, deleted, duplicated or cut, length prefixes rewritten, or the JSON
inside changed and signed again, so that a mutant gets past the signature to the code behind it.
Every property asserts the same thing: the parser returns a value, or raises a ``RogatoryError``
whose ``code`` is a key of ``ERRORS_BY_CODE`` (and names that very class); any other exception,
or a call still running after ``HANG_SECONDS``, fails. Where a module promises one encoding per
value, whatever it accepts must also re-encode to the very bytes it was given; a Merkle proof
that verifies against a root the caller trusts must be the true one.

The last test does the same to a running node over HTTPS: mutated envelopes and batches, odd
Content-Types, chunked bodies and Content-Lengths that are not the body's; every answer a
signed receipt with a known code and the status PROTOCOL.md §10 gives it (the one exception:
bytes that are not HTTP at all, which aiohttp refuses before the node sees them), and the
node's store changed only by an envelope it accepted.

``ROGATORY_FUZZ_EXAMPLES`` sets the examples per property (200 by default: the short mode CI
runs); ``scripts/fuzz.py`` runs the long mode and prints the counts this module writes to the
JSON file named by ``ROGATORY_FUZZ_REPORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import os
import random
import signal
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.http_exceptions import HttpProcessingError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from keys.directory import (
    AuthorityRecord,
    Directory,
    SignedRecord,
    build_directory,
    read_draft,
    sign_record,
    verify_directory,
)
from keys.identity import IdentityKey
from keys.prekeys import Prekey, sign_prekey
from node.federation import Federation
from node.inbound import http_status_for
from node.outbound import (
    BATCH_MEDIA_TYPE,
    ENVELOPE_MEDIA_TYPE,
    MAX_BATCH,
    RECEIPT_MEDIA_TYPE,
    RECEIPTS_MEDIA_TYPE,
    Draft,
    compose,
)
from node.tls import client_pin
from protocol import merkle
from protocol.attachment import (
    AttachmentSpec,
    Decryptor,
    encode_manifest,
    encrypt_chunks,
    parse_manifest,
)
from protocol.case_message import CONTENT_TYPE as CASE_CONTENT_TYPE
from protocol.case_message import (
    CaseMessage,
    Conditions,
    check_content,
    encode_case_message,
    parse_case_message,
)
from protocol.checkpoint import (
    COSIGNATURE_HEADER,
    Checkpoint,
    TlogProof,
    cosign,
    open_checkpoint,
    parse_checkpoint_text,
    parse_tlog_proof,
    sign_checkpoint,
    verify_cosignature,
    with_signatures,
)
from protocol.encoding import (
    Reader,
    b64decode,
    b64encode,
    canonical_json,
    frame,
    parse_canonical_json,
)
from protocol.envelope import (
    HPKE_INFO_LABEL,
    ReceiverPrekey,
    envelope_hash,
    open_envelope,
    parse_envelope,
    parse_package,
    seal,
    verify_package,
)
from protocol.errors import (
    ERRORS_BY_CODE,
    EncodingError,
    EnvelopeMalformed,
    EnvelopeUnknownSender,
    LogMalformed,
    ReceiptMalformed,
    RogatoryError,
)
from protocol.header import EnvelopeHeader
from protocol.kinds import Kind, Priority
from protocol.log_entry import (
    EntryType,
    encode_entry,
    log_origin,
    parse_entry,
    received_entry,
    verify_receipt_proof,
)
from protocol.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    key_hash,
    parse_note,
    parse_verifier_key,
    std_b64encode,
    verifier_key,
    verify_note,
)
from protocol.receipt import ReceiptStatus, parse_receipt, sign_receipt
from protocol.request_package import CONTENT_TYPE as REQUEST_CONTENT_TYPE
from protocol.request_package import (
    Gap,
    check_completeness,
    check_language,
    encode_request,
    parse_request,
)
from protocol.signing import LABELS, public_key_of, sign
from protocol.suites import Suite, hpke_seal, key_id, public_from_private
from tests.integration.kit import BR, FR, snapshot

ROOT = Path(__file__).resolve().parent.parent.parent

EXAMPLES = int(os.environ.get("ROGATORY_FUZZ_EXAMPLES", "200"))
HTTP_CASES = int(os.environ.get("ROGATORY_FUZZ_HTTP_CASES", "50" if EXAMPLES <= 200 else "300"))
HTTP_SEED = int(os.environ.get("ROGATORY_FUZZ_SEED", str(random.SystemRandom().randrange(2**32))))
HANG_SECONDS = 10.0

settings.register_profile(
    "rogatory-fuzz",
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example, HealthCheck.filter_too_much],
    print_blob=True,
)
FUZZ = settings.get_profile("rogatory-fuzz")


# --- the one check: a value, or a RogatoryError with a known code ------------------------------


def _new_stats() -> dict[str, Any]:
    return {"cases": 0, "returned": 0, "rejected": 0, "failures": 0, "codes": Counter()}


STATS: dict[str, dict[str, Any]] = {}
"""Per parser: calls, values returned, refusals by code, and failures (bugs, shrinking included)."""


class Hang(Exception):
    """A parser call ran for longer than HANG_SECONDS."""


def _alarm(signum: int, frame: object) -> None:
    raise Hang(f"no answer within {HANG_SECONDS:g} s")


@contextlib.contextmanager
def _deadline() -> Iterator[None]:
    if not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def stats(name: str) -> dict[str, Any]:
    return STATS.setdefault(name, _new_stats())


def run(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[bool, Any]:
    """Call a parser: ``(True, value)``, or ``(False, error)`` for a well-coded refusal.

    Anything else (another exception, a hang, an unknown code) is counted and re-raised.
    """
    entry = stats(name)
    entry["cases"] += 1
    try:
        with _deadline():
            value = fn(*args, **kwargs)
    except RogatoryError as exc:
        if exc.code not in ERRORS_BY_CODE or ERRORS_BY_CODE[exc.code] is not type(exc):
            entry["failures"] += 1
            raise AssertionError(
                f"{name}: {type(exc).__name__} has unknown code {exc.code!r}") from exc
        entry["rejected"] += 1
        entry["codes"][exc.code] += 1
        return False, exc
    except BaseException:
        entry["failures"] += 1
        raise
    entry["returned"] += 1
    return True, value


def expect(name: str, holds: bool, message: str) -> None:
    """A property of an accepted value (canonical re-encoding, a sound proof)."""
    if not holds:
        stats(name)["failures"] += 1
        raise AssertionError(f"{name}: {message}")


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    path = os.environ.get("ROGATORY_FUZZ_REPORT")
    if path:
        Path(path).write_text(json.dumps(STATS, indent=1, sort_keys=True), encoding="utf-8")


# --- mutations -----------------------------------------------------------------------------------


class Chooser:
    """Where a mutation's choices come from: hypothesis draws, or a seeded ``random.Random``."""

    def __init__(self, draw: Callable[[Any], Any] | None = None,
                 rng: random.Random | None = None) -> None:
        self._draw = draw
        self._rng = rng

    def integer(self, low: int, high: int) -> int:
        if self._draw is not None:
            return int(self._draw(st.integers(low, high)))
        assert self._rng is not None
        return self._rng.randint(low, high)

    def choice(self, items: Sequence[Any]) -> Any:
        return items[self.integer(0, len(items) - 1)]

    def blob(self, max_size: int) -> bytes:
        if self._draw is not None:
            return bytes(self._draw(st.binary(max_size=max_size)))
        assert self._rng is not None
        return self._rng.randbytes(self._rng.randint(0, max_size))

    def text(self, max_size: int) -> str:
        if self._draw is not None:
            return str(self._draw(st.text(max_size=max_size)))
        assert self._rng is not None
        return "".join(chr(self._rng.choice((self._rng.randint(0x20, 0x7e),
                                             self._rng.randint(0, 0x2fff))))
                       for _ in range(self._rng.randint(0, max_size)))


INTERESTING_BYTES = (0x00, 0x01, 0x09, 0x0a, 0x0d, 0x20, 0x22, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
                     0x30, 0x31, 0x39, 0x3a, 0x3d, 0x41, 0x5b, 0x5c, 0x5d, 0x5f, 0x61, 0x65,
                     0x7b, 0x7d, 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xef, 0xf0, 0xff)
TOKENS = (
    b'"', b"\\", b'\\"', b"\\u0000", b"\\ud800", b"\\udc00", b"\\u00e9", b"\\u202e", b"\\/",
    b"null", b"true", b"false", b"-0", b"0", b"00", b"1e3", b"1.0", b"-1", b"9007199254740992",
    b"99999999999999999999", b"[", b"]", b"{", b"}", b"[]", b"{}", b",", b":", b'"":', b" ",
    b"\t", b"\n", b"\n\n", b"\r\n", b"\x00", b"\xe2\x80\x94 ", b"\xe2\x80\xae", b"\xc3\xa9",
    b"e\xcc\x81", b"\xf0\x9f\x98\x80", b"\xed\xa0\x80", b"\xc0\x80", b"\xff\xfe", b"=", b"==",
    b"+", b"/", b"-", b"_", b"A", b"a", b"..", b"../", b"CON", b"\x00\x00\x00\x00",
    b"\x00\x00\x00\x01", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x10\x00",
    b"RGTE\x01", b"RGTR\x01", b"index ", b"extra ", b"c2sp.org/tlog-proof@v1\n",
    b"cosignature/v1", b"\x01" * 32,
)
OPERATIONS = ("flip", "set", "set", "insert", "insert", "delete", "truncate", "duplicate",
              "length", "arith", "splice")


def mutate(data: bytes, chooser: Chooser, *, max_ops: int = 6,
           pool: Sequence[bytes] = ()) -> bytes:
    """Apply 1..max_ops byte-level mutations: what a broken or hostile peer might send."""
    buffer = bytearray(data)
    for _ in range(chooser.integer(1, max_ops)):
        operation = chooser.choice(OPERATIONS)
        size = len(buffer)
        position = chooser.integer(0, size)
        at = min(position, size - 1)
        if operation == "flip" and size:
            buffer[at] ^= 1 << chooser.integer(0, 7)
        elif operation == "set" and size:
            buffer[at] = (chooser.choice(INTERESTING_BYTES) if chooser.integer(0, 1)
                          else chooser.integer(0, 255))
        elif operation == "arith" and size:
            buffer[at] = (buffer[at] + chooser.choice((-2, -1, 1, 2))) % 256
        elif operation == "insert":
            piece = chooser.choice(TOKENS) if chooser.integer(0, 2) else chooser.blob(8)
            buffer[position:position] = piece
        elif operation == "delete" and size:
            del buffer[position:position + chooser.integer(1, 16)]
        elif operation == "truncate":
            del buffer[position:]
        elif operation == "duplicate" and size:
            start = chooser.integer(0, size - 1)
            piece = bytes(buffer[start:start + chooser.integer(1, 64)])
            buffer[position:position] = piece
        elif operation == "length" and size >= 4:
            at = min(position, size - 4)
            value = chooser.choice((0, 1, 2, 31, 32, 63, 64, 65, size, size - at, 4096, 4097,
                                    2**16, 2**31 - 1, 2**31, 2**32 - 1))
            buffer[at:at + 4] = value.to_bytes(4, "big")
        elif operation == "splice" and pool:
            other = chooser.choice(pool)
            if other:
                start = chooser.integer(0, len(other) - 1)
                buffer[position:position] = other[start:start + chooser.integer(1, 256)]
    return bytes(buffer)


INTERESTING_VALUES: tuple[Any, ...] = (
    None, True, False, 0, 1, -1, 2, 63, 64, 255, 256, 65536, 2**31, 2**32, 2**44, 2**53 - 1,
    2**53, -(2**53), 2**63 - 1, 2**63, 2**64, 1.5, -0.0, 1e300, "", " ", "a", "v", "\x00",
    "\t", "\n", "\x7f", "\x85", "\u200b", "\u202e", "\u2066", "\ud800", "\udfff", "\ufeff",
    "e\u0301", "\u00e9", "\U0001f600", "x" * 300, "y" * 70000, "2026-02-30", "2026-01-01",
    "0000-00-00", "0" * 32, "f" * 32, "f" * 64, "F" * 64, "0" * 24, "XA:MOJ", "XB:MOJ", "xa:moj",
    "XA:", "accepted", "rejected", "envelope.malformed", "request", "status", "mla", "other",
    "CON", "con.txt", "../etc/passwd", ".hidden", "a/b", "a\\b", "name.", "https://h:99999",
    "http://[::1", "text/plain", "application/pdf", "en", "pt-BR", [], {}, [None], [""],
    {"": None}, {"v": 1},
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _at(value: Any, path: Sequence[Any]) -> Any:
    for step in path:
        value = value[step]
    return value


def _names(value: Any) -> set[str]:
    return {step for path in _paths(value) for step in path if isinstance(step, str)}


def json_value(chooser: Chooser, names: Sequence[str], depth: int = 0) -> Any:
    """A random JSON value: mostly interesting ones, sometimes small random structures."""
    pick = chooser.integer(0, 9 if depth < 2 else 5)
    if pick <= 3:
        return copy.deepcopy(chooser.choice(INTERESTING_VALUES))
    if pick == 4:
        return chooser.text(12)
    if pick == 5:
        return chooser.integer(-(2**64), 2**64)
    if pick <= 7:
        return [json_value(chooser, names, depth + 1) for _ in range(chooser.integer(0, 3))]
    return {chooser.choice(names): json_value(chooser, names, depth + 1)
            for _ in range(chooser.integer(0, 3))}


def _tweak(value: Any, chooser: Chooser, names: Sequence[str]) -> Any:
    """A near miss of ``value``: the kind of change a validator has to notice."""
    if isinstance(value, bool):
        return chooser.choice((not value, int(value), None, str(value).lower()))
    if isinstance(value, int):
        return value + chooser.choice((-1, 1, -(2**32), 2**32, 2**53, -value - 1, -2 * value))
    if isinstance(value, str):
        change = chooser.integer(0, 8)
        if change == 0 or not value:
            return value + chooser.choice(("\x00", "\u202e", " ", "\n", "x", "\ud800"))
        if change == 1:
            return value[:-1]
        if change == 2:
            return value.upper() if value != value.upper() else value.lower()
        if change == 3:
            return value * chooser.choice((2, 40, 2000))
        if change == 4:
            return " " + value
        if change == 5:
            return ""
        if change == 6:
            return [value]
        at = chooser.integer(0, len(value) - 1)
        return value[:at] + chr(chooser.integer(0, 0x3000)) + value[at + 1:]
    if isinstance(value, list):
        if not value:
            return [json_value(chooser, names)]
        return chooser.choice((value + value[:1], value[::-1], value * 65, [], value[1:]))
    if isinstance(value, dict):
        return {**value, chooser.choice(names): json_value(chooser, names)}
    return json_value(chooser, names)


def mutate_json(value: Any, chooser: Chooser, *, max_ops: int = 3) -> Any:
    """Change 1..max_ops places of a JSON value: replace, tweak, delete, add, wrap."""
    value = copy.deepcopy(value)
    names = sorted(_names(value) | {"", "v", "x"})
    for _ in range(chooser.integer(1, max_ops)):
        path = chooser.choice(list(_paths(value)))
        target = _at(value, path)
        operation = chooser.choice(("tweak", "tweak", "tweak", "replace", "replace", "delete",
                                    "add", "wrap"))
        if operation == "delete" and path:
            del _at(value, path[:-1])[path[-1]]
            continue
        if operation == "add" and isinstance(target, dict):
            target[chooser.choice(names)] = json_value(chooser, names)
            continue
        if operation == "add" and isinstance(target, list):
            target.append(copy.deepcopy(chooser.choice(target)) if target and chooser.integer(
                0, 1) else json_value(chooser, names))
            continue
        if operation == "wrap":
            new = [target] if chooser.integer(0, 1) else {chooser.choice(names): target}
        elif operation == "replace":
            new = json_value(chooser, names)
        else:
            new = _tweak(target, chooser, names)
        if path:
            _at(value, path[:-1])[path[-1]] = new
        else:
            value = new
    return value


def encode_json(value: Any, chooser: Chooser) -> bytes:
    """JSON bytes for a mutated value: mostly the canonical spelling, sometimes another."""
    style = chooser.integer(0, 9)
    options: dict[str, Any] = {"sort_keys": style != 7, "ensure_ascii": style == 8,
                               "separators": (", ", ": ") if style == 9 else (",", ":")}
    try:
        return json.dumps(value, **options).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return b"{}"


def mutants(seeds: Sequence[bytes], *, max_ops: int = 6) -> st.SearchStrategy[bytes]:
    """Byte-level mutants of valid encodings, spliced with each other now and then."""
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        chooser = Chooser(draw)
        return mutate(chooser.choice(seeds), chooser, max_ops=max_ops, pool=seeds)

    return build()


def json_mutants(values: Sequence[Any]) -> st.SearchStrategy[bytes]:
    """Structural mutants of valid JSON values, encoded (mostly) canonically."""
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        chooser = Chooser(draw)
        return encode_json(mutate_json(chooser.choice(values), chooser), chooser)

    return build()


def raw(prefixes: Sequence[bytes] = (), max_size: int = 4096) -> st.SearchStrategy[bytes]:
    """Random bytes, also behind the magic and version a parser checks first."""
    plain = st.binary(max_size=max_size)
    if not prefixes:
        return plain
    return st.one_of(plain, st.tuples(st.sampled_from(prefixes), plain).map(
        lambda parts: parts[0] + parts[1]))


# --- fixed keys and valid encodings of everything ---------------------------------------------

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400
SENDER, RECEIVER = "XA:MOJ", "XB:MOJ"


def derive(label: str, size: int = 32) -> bytes:
    digest = hashlib.sha512 if size == 64 else hashlib.sha256
    return digest(f"rogatory/fuzz/{label}".encode()).digest()


SENDER_SEED, RECEIVER_SEED, WITNESS_SEED = derive("XA"), derive("XB"), derive("witness")
SENDER_PUBLIC, RECEIVER_PUBLIC = public_key_of(SENDER_SEED), public_key_of(RECEIVER_SEED)
WITNESS_PUBLIC = public_key_of(WITNESS_SEED)
WITNESS_NAME = "witness.example/w1"
ORIGIN = log_origin(RECEIVER)
PREKEY_PRIVATE = {Suite.X25519: derive("prekey-x25519"),
                  Suite.HYBRID: derive("prekey-mlkem", 64) + derive("prekey-hybrid-x")}
PREKEY_PUBLIC = {suite: public_from_private(suite, private)
                 for suite, private in PREKEY_PRIVATE.items()}
HELD = {key_id(PREKEY_PUBLIC[suite]): ReceiverPrekey(key_id(PREKEY_PUBLIC[suite]), suite,
                                                     PREKEY_PRIVATE[suite], NOW - 10 * DAY,
                                                     NOW + 20 * DAY)
        for suite in PREKEY_PRIVATE}


class Senders:
    """The receiver's view of the directory: the sender's one identity key."""

    def sender_key(self, authority_id: str, key: str, *, now: int, created: int) -> bytes:
        if (authority_id, key) == (SENDER, key_id(SENDER_PUBLIC)):
            return SENDER_PUBLIC
        raise EnvelopeUnknownSender(f"{authority_id} {key}")


def make_header(kind: Kind = Kind.REQUEST, suite: Suite = Suite.X25519,
                recipient: str = RECEIVER, name: str = "m1") -> EnvelopeHeader:
    return EnvelopeHeader(
        id=hashlib.sha256(name.encode()).hexdigest()[:32], kind=kind, sender=SENDER,
        recipient=recipient, sender_key=key_id(SENDER_PUBLIC),
        recipient_prekey=key_id(PREKEY_PUBLIC[suite]), suite=suite, created=NOW - 60,
        expires=NOW + 7 * DAY, in_reply_to="", case="XA/2026/0001", priority=Priority.URGENT)


# Request packages: the project's own examples, as written and in canonical form.
REQUEST_FILES = [path.read_bytes() for path in sorted((ROOT / "examples" / "requests").glob(
    "*.json"))]
REQUESTS = [encode_request(parse_request(data)) for data in REQUEST_FILES]
REQUEST_VALUES = [json.loads(data) for data in REQUESTS]

# Case messages: one valid message of every kind.
CASE_FIELDS: dict[Kind, dict[str, Any]] = {
    Kind.ACKNOWLEDGEMENT: {"reference": "XB-MOJ-2026/0042", "note": "", "gaps": (
        {"field": "measures[0].accounts", "message": "missing: accounts", "why": "Banks."},)},
    Kind.STATUS: {"text": "The bank has been ordered to produce the statements."},
    Kind.ADDITIONAL_INFORMATION_REQUEST: {"questions": ("Which accounts?", "When?"), "gaps": ()},
    Kind.ADDITIONAL_INFORMATION: {"text": "Accounts 1234 and 5678."},
    Kind.POSTPONEMENT: {"until": "2026-03-01", "reason": "An ongoing investigation."},
    Kind.OUTCOME: {"final": True, "summary": "Statements attached."},
    Kind.REFUSAL: {"grounds": ("dual-criminality", "other"), "explanation": "Not an offence."},
    Kind.WITHDRAWAL: {"reason": "The proceedings were discontinued."},
    Kind.CONSULTATION: {"text": "Would this be acceptable?",
                        "draft": parse_request(REQUESTS[-1])},
    Kind.SPONTANEOUS_INFORMATION: {
        "conditions": Conditions(confidential=True, use_restrictions=("intelligence only",),
                                 designated_receiver="Financial investigation unit"),
        "information": "A transfer of EUR 2m is planned for Friday."},
    Kind.CONDITIONS_ANSWER: {"accepted": False, "reason": "We cannot keep it confidential."},
    Kind.RETRIEVAL: {"message_id": "0123456789abcdef" * 2, "envelope": "0123456789abcdef" * 4,
                     "opened_at": NOW},
}


def _case_message(kind: Kind) -> CaseMessage:
    fields = dict(CASE_FIELDS[kind])
    if "gaps" in fields:
        fields["gaps"] = tuple(Gap(**gap) for gap in fields["gaps"])
    return CaseMessage.build(kind, **fields)


CASES = {kind: encode_case_message(_case_message(kind)) for kind in CASE_FIELDS}
CASE_VALUES = [json.loads(data) for data in CASES.values()]

# Attachments: three streams (two chunks, empty, short) and the manifest that lists them.
MESSAGE_ID = make_header().id
PLAINTEXT = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(2200))[:70_000]


def _attachment(index: int, name: str, plaintext: bytes) -> tuple[AttachmentSpec, bytes]:
    key = derive(f"attachment/{index}")
    stream_header, chunks = encrypt_chunks(key, MESSAGE_ID, index, [plaintext])
    ciphertext = b"".join(chunks)
    spec = AttachmentSpec(index, name, "application/pdf", len(plaintext),
                          hashlib.sha256(plaintext).hexdigest(), key, stream_header)
    return spec, ciphertext


ATTACHMENTS = [_attachment(0, "statement.pdf", PLAINTEXT),
               _attachment(1, "\u00e9t\u00e9.txt", b""),
               _attachment(2, "short.bin", PLAINTEXT[:100])]
MANIFEST = encode_manifest(spec for spec, _ in ATTACHMENTS)
MANIFESTS = [MANIFEST, encode_manifest([ATTACHMENTS[0][0]])]
MANIFEST_VALUES = [json.loads(data) for data in MANIFESTS]

# Envelopes and the signed packages inside them.
ENVELOPES = [
    seal(make_header(Kind.REQUEST), REQUEST_CONTENT_TYPE, REQUESTS[0], sender_seed=SENDER_SEED,
         recipient_public=PREKEY_PUBLIC[Suite.X25519]),
    seal(make_header(Kind.STATUS, Suite.HYBRID), CASE_CONTENT_TYPE, CASES[Kind.STATUS],
         sender_seed=SENDER_SEED, recipient_public=PREKEY_PUBLIC[Suite.HYBRID]),
    seal(make_header(Kind.REQUEST), "text/plain", b"case file", sender_seed=SENDER_SEED,
         recipient_public=PREKEY_PUBLIC[Suite.X25519], manifest=MANIFEST),
]
HEADERS = [envelope.header.encode() for envelope in ENVELOPES]
HEADER_VALUES = [json.loads(data) for data in HEADERS]
PACKAGES = [envelope.package for envelope in ENVELOPES]


def open_and_read(data: bytes) -> object:
    """What a receiving node does before it stores anything: every check, then the content."""
    opened = open_envelope(data, me=RECEIVER, now=NOW, senders=Senders(), prekey=HELD.get,
                           strongest_suite=Suite.X25519, already_used=lambda sender, mid: False)
    return check_content(opened.header.kind, opened.package.content_type,
                         opened.package.payload)


def assemble(header_bytes: bytes, package: bytes, suite: Suite) -> bytes:
    """An envelope laid out as ``seal`` does, from parts ``seal`` would refuse to take."""
    info = HPKE_INFO_LABEL + hashlib.sha256(header_bytes).digest()
    sealed = hpke_seal(suite, PREKEY_PUBLIC[suite], info, package)
    outer = sign(SENDER_SEED, LABELS["envelope"], hashlib.sha256(sealed).digest() + header_bytes)
    return b"RGTE\x01" + frame(header_bytes, sealed) + outer


def signed_package(header_bytes: bytes, content_type: bytes, payload: bytes,
                   manifest: bytes = b"") -> bytes:
    body = frame(header_bytes, content_type, payload) + (frame(manifest) if manifest else b"")
    return body + sign(SENDER_SEED, LABELS["envelope-inner"], body)


# A Merkle tree of 80 leaves: every perfect subtree, so every prefix's proofs can be computed.
TREE_SIZE = 80
LEAVES = [merkle.leaf_hash(b"entry %d" % i) for i in range(TREE_SIZE)]
NODES: dict[merkle.Key, bytes] = {}
for _index, _leaf in enumerate(LEAVES):
    NODES.update(merkle.appended_nodes(_index, _leaf, NODES))
ROOTS = [merkle.root_from(size, NODES) for size in range(TREE_SIZE + 1)]
KNOWN = {*NODES.values(), *ROOTS}  # every hash a proof over this tree can lead to


# Checkpoints, signed notes, cosignatures and a tlog-proof, for an acceptance receipt.
def note_line(name: str, blob: bytes) -> bytes:
    return f"\u2014 {name} {std_b64encode(blob)}\n".encode()


def log_signed(text: bytes, cosigned_at: int | None = None) -> bytes:
    """Any text signed as a note by the receiver's log key (and cosigned by the witness)."""
    log_key = SigningKey(RECEIVER_SEED)
    lines = note_line(ORIGIN, key_hash(ORIGIN, ALG_ED25519, RECEIVER_PUBLIC)
                      + log_key.sign(text).signature)
    if cosigned_at is not None:
        message = f"{COSIGNATURE_HEADER}\ntime {cosigned_at}\n".encode() + text
        signature = SigningKey(WITNESS_SEED).sign(message).signature
        lines += note_line(WITNESS_NAME, key_hash(WITNESS_NAME, ALG_COSIGNATURE_V1,
                                                  WITNESS_PUBLIC)
                           + (cosigned_at % 2**64).to_bytes(8, "big") + signature)
    return text + b"\n" + lines


_unproved = sign_receipt(
    status=ReceiptStatus.ACCEPTED, envelope_hash=ENVELOPES[0].hash, message_id=MESSAGE_ID,
    sender=SENDER, receiver=RECEIVER, receiver_key=key_id(RECEIVER_PUBLIC), received=NOW,
    receiver_seed=RECEIVER_SEED, log_index=1)
_log_leaves = [merkle.leaf_hash(b"before"), merkle.leaf_hash(received_entry(_unproved)),
               merkle.leaf_hash(b"after")]
_log_nodes: dict[merkle.Key, bytes] = {}
for _index, _leaf in enumerate(_log_leaves):
    _log_nodes.update(merkle.appended_nodes(_index, _leaf, _log_nodes))
CHECKPOINT = Checkpoint(ORIGIN, 3, merkle.root_from(3, _log_nodes), ("extension line",))
CHECKPOINT_NOTE = with_signatures(sign_checkpoint(CHECKPOINT, ORIGIN, RECEIVER_SEED),
                                  [cosign(CHECKPOINT, WITNESS_NAME, WITNESS_SEED, NOW)])
NOTES = [CHECKPOINT_NOTE, sign_checkpoint(Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT), ORIGIN,
                                          RECEIVER_SEED)]
PROOF = TlogProof(1, tuple(merkle.inclusion_proof(1, 3, _log_nodes)), CHECKPOINT_NOTE,
                  b"extra").encode()
PROOFS = [PROOF, TlogProof(2, tuple(merkle.inclusion_proof(2, 3, _log_nodes)),
                           CHECKPOINT_NOTE).encode()]
VERIFIER_KEYS = [verifier_key(ORIGIN, RECEIVER_PUBLIC), verifier_key(WITNESS_NAME,
                                                                     WITNESS_PUBLIC)]

# Receipts: an acceptance with its log proof, refusals, an acceptance without a log index.
ACCEPTED = _unproved.with_proof(PROOF)
RECEIPTS = [
    ACCEPTED.data,
    sign_receipt(status=ReceiptStatus.REJECTED, envelope_hash=ENVELOPES[1].hash,
                 message_id=MESSAGE_ID, sender=SENDER, receiver=RECEIVER,
                 receiver_key=key_id(RECEIVER_PUBLIC), received=NOW,
                 receiver_seed=RECEIVER_SEED, code="envelope.signature_invalid",
                 detail="The envelope's outer signature does not verify.").data,
    sign_receipt(status=ReceiptStatus.REJECTED, envelope_hash="", message_id="", sender="",
                 receiver=RECEIVER, receiver_key=key_id(RECEIVER_PUBLIC), received=NOW,
                 receiver_seed=RECEIVER_SEED, code="transport.body_too_large").data,
    sign_receipt(status=ReceiptStatus.ACCEPTED, envelope_hash=ENVELOPES[2].hash,
                 message_id=MESSAGE_ID, sender=SENDER, receiver=RECEIVER,
                 receiver_key=key_id(RECEIVER_PUBLIC), received=NOW,
                 receiver_seed=RECEIVER_SEED).data,
]
RECEIPT_VALUES = [parse_receipt(data).to_json() for data in RECEIPTS]


def receipt_bytes(body: bytes, proof: bytes | None = None) -> bytes:
    signature = sign(RECEIVER_SEED, LABELS["receipt"], body)
    return b"RGTR\x01" + frame(body) + signature + (b"" if proof is None else frame(proof))


# Audit log entries, one of every type.
ENTRIES = [
    encode_entry(EntryType.ENVELOPE_SENT, {"envelope": "a" * 64, "id": MESSAGE_ID,
                                           "from": SENDER, "to": RECEIVER, "kind": "request",
                                           "created": NOW, "expires": NOW + DAY, "at": NOW}),
    received_entry(ACCEPTED),
    encode_entry(EntryType.RECEIPT_ISSUED, {"envelope": "a" * 64, "id": MESSAGE_ID,
                                            "from": SENDER, "to": RECEIVER,
                                            "receipt": "b" * 64, "at": NOW}),
    encode_entry(EntryType.RECEIPT_RECEIVED, {"envelope": "a" * 64, "id": MESSAGE_ID,
                                              "from": SENDER, "to": RECEIVER,
                                              "receipt": "b" * 64, "status": "rejected",
                                              "code": "envelope.expired", "at": NOW}),
    encode_entry(EntryType.DIRECTORY_ADOPTED, {"serial": 7, "digest": "c" * 64, "at": NOW}),
    encode_entry(EntryType.KEYS_ROTATED, {"identity": "d" * 24, "prekeys": ["e" * 24],
                                          "at": NOW}),
]
ENTRY_VALUES = [json.loads(data) for data in ENTRIES]

# The directory: two authorities, signed by two of three secretariat keys.
SECRETARIAT = [IdentityKey(derive(f"secretariat/{i}")) for i in range(3)]
PINNED = [key.public_raw for key in SECRETARIAT]
AUTHORITIES = {authority: IdentityKey(derive(f"authority/{authority}"))
               for authority in (SENDER, RECEIVER)}


def _record(authority: str, identity: IdentityKey) -> SignedRecord:
    prekeys = []
    for suite in (Suite.X25519, Suite.HYBRID):
        label = f"directory/{authority}/{suite.value}"
        private = (derive(label, 64) + derive(label) if suite is Suite.HYBRID
                   else derive(label))
        public = public_from_private(suite, private)
        prekeys.append(sign_prekey(Prekey(key_id(public), suite, public, NOW - DAY,
                                          NOW + 30 * DAY), identity))
    record = AuthorityRecord(
        authority=authority, name=f"Ministry of Justice of {authority[:2]}",
        endpoint=f"https://{authority[:2].lower()}.example:8443",
        tls_fingerprint=hashlib.sha256(authority.encode()).hexdigest(),
        identity_key=identity.public_raw, prekeys=tuple(prekeys), languages=("en", "fr"),
        office_hours="Mon-Fri 9-17", request_types=("mla", "extradition"),
        legal_bases=("UNTOC",), channels=("rogatory",), formats=("application/pdf",),
        urgent_procedure="Call the duty officer.", contact_24_7="+00 000 000",
        notes="Line one\nLine two", updated=NOW)
    return sign_record(record, identity)


RECORDS = [_record(authority, identity) for authority, identity in AUTHORITIES.items()]
RECORD_VALUES = [signed.record.to_json() for signed in RECORDS]
DIRECTORY_BODY = build_directory("fuzz-federation", 7, NOW, RECORDS)


def directory_file(body: bytes, signers: Sequence[IdentityKey] = SECRETARIAT[:2]) -> bytes:
    signatures = sorted((key.key_id, b64encode(key.sign(LABELS["directory"], body)))
                        for key in signers)
    return canonical_json({"directory": b64encode(body), "signatures": [
        {"key_id": signer, "sig": sig} for signer, sig in signatures]})


DIRECTORY = directory_file(DIRECTORY_BODY)
DIRECTORY_VALUE = json.loads(DIRECTORY_BODY)


def _sanity() -> None:
    """The seeds are valid, or every mutant would only test the first check."""
    for envelope in ENVELOPES:
        open_and_read(envelope.data)
    assert verify_receipt_proof(parse_receipt(ACCEPTED.data), RECEIVER_PUBLIC) is not None
    assert verify_directory(DIRECTORY, PINNED, 2).body == DIRECTORY_BODY
    for spec, ciphertext in ATTACHMENTS:
        decryptor = Decryptor(spec, MESSAGE_ID)
        assert b"".join([*decryptor.feed(ciphertext), *decryptor.finish()]) == (
            PLAINTEXT[:spec.size])


_sanity()


# --- encoding: canonical JSON, base64url, the binary Reader -------------------------------------

JSON_SEEDS = [*HEADERS, *ENTRIES, *CASES.values(), MANIFEST, DIRECTORY_BODY,
              canonical_json({"a": [1, -2, True, None, "\u00e9\U0001f600\\\"\n"], "b": {}})]


def check_canonical_json(data: bytes) -> None:
    ok, value = run("encoding.parse_canonical_json", parse_canonical_json, data)
    if ok:
        expect("encoding.parse_canonical_json", canonical_json(value) == data,
               f"{data!r} accepted but re-encodes differently")


@FUZZ
@given(raw())
def test_canonical_json_raw(data: bytes) -> None:
    check_canonical_json(data)


@FUZZ
@given(st.one_of(mutants(JSON_SEEDS), json_mutants([json.loads(s) for s in JSON_SEEDS])))
def test_canonical_json_mutated(data: bytes) -> None:
    check_canonical_json(data)


def check_b64decode(text: object) -> None:
    ok, value = run("encoding.b64decode", b64decode, text)
    if ok:
        expect("encoding.b64decode", b64encode(value) == text, f"{text!r} is not canonical")


@FUZZ
@given(st.one_of(st.text(max_size=200), st.binary(max_size=64), st.none(), st.integers()))
def test_b64decode_raw(text: object) -> None:
    check_b64decode(text)


@FUZZ
@given(mutants([b64encode(bytes(range(n))).encode() for n in (0, 1, 2, 3, 31, 32, 64)]))
def test_b64decode_mutated(data: bytes) -> None:
    check_b64decode(data.decode("utf-8", "surrogateescape"))


READER_ERRORS = (EncodingError, EnvelopeMalformed, ReceiptMalformed, LogMalformed)
READER_OPS = st.lists(st.tuples(
    st.sampled_from(("fixed", "u32", "framed", "framed", "end", "remaining")),
    st.one_of(st.integers(-2, 80), st.integers(-(2**33), 2**33), st.none())), max_size=12)


def read_program(data: bytes, error: type[RogatoryError],
                 program: list[tuple[str, int | None]]) -> None:
    reader = Reader(data, error)
    for operation, argument in program:
        before = reader.position
        if operation == "fixed":
            chunk = reader.fixed(argument or 0)
            assert len(chunk) == (argument or 0)
        elif operation == "u32":
            assert 0 <= reader.u32() < 2**32
        elif operation == "framed":
            chunk = reader.framed(argument)
            assert argument is None or len(chunk) <= argument
        elif operation == "end":
            reader.end()
        else:
            assert reader.remaining() == len(data) - reader.position
        assert before <= reader.position <= len(data)


def check_reader(data: bytes, error: type[RogatoryError],
                 program: list[tuple[str, int | None]]) -> None:
    ok, refusal = run("encoding.Reader", read_program, data, error, program)
    if not ok:
        expect("encoding.Reader", type(refusal) is error,
               f"Reader(error={error.__name__}) raised {type(refusal).__name__}")


@FUZZ
@given(raw(), st.sampled_from(READER_ERRORS), READER_OPS)
def test_reader_raw(data: bytes, error: type[RogatoryError],
                    program: list[tuple[str, int | None]]) -> None:
    check_reader(data, error, program)


@FUZZ
@given(mutants([frame(b"abc", b"", b"\x00" * 70), *PACKAGES]), st.sampled_from(READER_ERRORS),
       READER_OPS)
def test_reader_mutated(data: bytes, error: type[RogatoryError],
                        program: list[tuple[str, int | None]]) -> None:
    check_reader(data, error, program)


# --- envelopes: the header, the outer structure, the package inside, every receiver check --------


def check_header(data: bytes) -> None:
    ok, header = run("header.EnvelopeHeader.decode", EnvelopeHeader.decode, data)
    if ok:
        expect("header.EnvelopeHeader.decode", header.encode() == data,
               f"{data!r} accepted but re-encodes differently")


@FUZZ
@given(raw(max_size=600))
def test_header_decode_raw(data: bytes) -> None:
    check_header(data)


@FUZZ
@given(st.one_of(mutants(HEADERS), json_mutants(HEADER_VALUES)))
def test_header_decode_mutated(data: bytes) -> None:
    check_header(data)


def check_envelope(data: bytes) -> None:
    ok, envelope = run("envelope.parse_envelope", parse_envelope, data)
    if ok:
        again = b"RGTE\x01" + frame(envelope.header_bytes, envelope.sealed) + envelope.signature
        expect("envelope.parse_envelope", again == data, "accepted but laid out differently")
    run("envelope.open_envelope", open_and_read, data)


@st.composite
def resigned_envelopes(draw: st.DrawFn) -> bytes:
    """An envelope whose header (JSON or bytes) was changed and then signed again."""
    chooser = Chooser(draw)
    which = chooser.integer(0, len(ENVELOPES) - 1)
    header = (encode_json(mutate_json(HEADER_VALUES[which], chooser), chooser)
              if chooser.integer(0, 2) else mutate(HEADERS[which], chooser, max_ops=3))
    return assemble(header, PACKAGES[which], ENVELOPES[which].header.suite)


@FUZZ
@given(raw([b"RGTE\x01", b"RGTE\x01\x00\x00\x01"]))
def test_envelope_raw(data: bytes) -> None:
    check_envelope(data)


@FUZZ
@given(st.one_of(mutants([envelope.data for envelope in ENVELOPES]), resigned_envelopes()))
def test_envelope_mutated(data: bytes) -> None:
    check_envelope(data)


def check_package(data: bytes) -> None:
    ok, package = run("envelope.parse_package", parse_package, data)
    if ok:
        again = (frame(package.header_bytes, package.content_type.encode(), package.payload)
                 + (frame(package.manifest) if package.manifest else b"") + package.signature)
        expect("envelope.parse_package", again == data, "accepted but laid out differently")
    run("envelope.verify_package", verify_package, data, SENDER_PUBLIC)


@FUZZ
@given(raw())
def test_package_raw(data: bytes) -> None:
    check_package(data)


@FUZZ
@given(mutants(PACKAGES))
def test_package_mutated(data: bytes) -> None:
    check_package(data)


CONTENT_TYPES = (REQUEST_CONTENT_TYPE, CASE_CONTENT_TYPE, "text/plain", "application/pdf")


@st.composite
def sealed_envelopes(draw: st.DrawFn) -> bytes:
    """A properly sealed and signed envelope around a mutated package: the deepest paths.

    The outer and inner signatures and the encryption are all valid, so the receiver's checks
    run to the end: the sealed header against the outer one, the inner signature, and the
    payload against its kind (request packages and case messages, mutated too).
    """
    chooser = Chooser(draw)
    scenario = chooser.integer(0, 3)
    manifest = b""
    if scenario == 0:
        kind, content_type = Kind.REQUEST, REQUEST_CONTENT_TYPE
        payload = (encode_json(mutate_json(chooser.choice(REQUEST_VALUES), chooser), chooser)
                   if chooser.integer(0, 1) else mutate(chooser.choice(REQUESTS), chooser))
    elif scenario == 1:
        kind = chooser.choice(list(CASES))
        content_type = CASE_CONTENT_TYPE
        payload = (encode_json(mutate_json(json.loads(CASES[kind]), chooser), chooser)
                   if chooser.integer(0, 2) else CASES[kind])
        if not chooser.integer(0, 4):
            kind = chooser.choice(list(Kind))
    elif scenario == 2:
        kind, content_type = Kind.REQUEST, "text/plain"
        payload = chooser.blob(64)
        manifest = (encode_json(mutate_json(chooser.choice(MANIFEST_VALUES), chooser), chooser)
                    if chooser.integer(0, 1) else MANIFEST)
    else:
        kind = chooser.choice(list(Kind))
        content_type = chooser.choice(CONTENT_TYPES)
        payload = chooser.choice([*REQUESTS, *CASES.values(), b""])
    suite = chooser.choice((Suite.X25519, Suite.HYBRID))
    outer = make_header(kind, suite)
    inner = outer
    if not chooser.integer(0, 5):  # forwarded, spliced or otherwise different inside
        inner = make_header(chooser.choice(list(Kind)), suite,
                            recipient=chooser.choice((RECEIVER, "XC:PGO")),
                            name=chooser.choice(("m1", "m2")))
    content = content_type.encode()
    if not chooser.integer(0, 5):
        content = mutate(content, chooser, max_ops=2)
    package = signed_package(inner.encode(), content, payload, manifest)
    if not chooser.integer(0, 5):
        package = mutate(package, chooser, max_ops=3)
    return assemble(outer.encode(), package, suite)


@FUZZ
@given(sealed_envelopes())
def test_envelope_sealed_mutants(data: bytes) -> None:
    run("envelope.open_envelope", open_and_read, data)


# --- receipts and the log proof they carry ------------------------------------------------------


def check_receipt(data: bytes) -> None:
    ok, receipt = run("receipt.parse_receipt", parse_receipt, data)
    if not ok:
        return
    again = receipt.signed + (frame(receipt.proof) if receipt.proof else b"")
    expect("receipt.parse_receipt", again == data, "accepted but laid out differently")
    ok, _ = run("receipt.Receipt.verify", receipt.verify, RECEIVER_PUBLIC)
    if ok and receipt.log_index is not None:
        run("log_entry.verify_receipt_proof", verify_receipt_proof, receipt, RECEIVER_PUBLIC)


@st.composite
def resigned_receipts(draw: st.DrawFn) -> bytes:
    """A receipt whose body (JSON) or proof was changed, signed again by the receiver."""
    chooser = Chooser(draw)
    which = chooser.integer(0, len(RECEIPT_VALUES) - 1)
    body = RECEIPT_VALUES[which]
    proof: bytes | None = parse_receipt(RECEIPTS[which]).proof or None
    if chooser.integer(0, 2):
        body = mutate_json(body, chooser)
    if chooser.integer(0, 1):
        proof = draw(tlog_proofs())
    return receipt_bytes(encode_json(body, chooser), proof)


@pytest.mark.parametrize("which", [1, 3], ids=["refusal", "acceptance-without-index"])
def test_receipt_empty_proof_frame(which: int) -> None:
    """An empty log-proof frame after a receipt would be a second encoding of the same signed
    receipt; it is refused (found while writing check_receipt's round-trip check, which the
    fuzzing had not hit yet; fixed in protocol/receipt.py)."""
    data = RECEIPTS[which] + frame(b"")
    ok, _ = run("receipt.parse_receipt", parse_receipt, data)
    assert not ok


@FUZZ
@given(raw([b"RGTR\x01", b"RGTR\x01\x00\x00\x00"]))
def test_receipt_raw(data: bytes) -> None:
    check_receipt(data)


@FUZZ
@given(st.one_of(mutants(RECEIPTS), resigned_receipts()))
def test_receipt_mutated(data: bytes) -> None:
    check_receipt(data)


# --- signed notes, checkpoints, cosignatures, tlog-proofs ----------------------------------------


def check_note(data: bytes) -> None:
    ok, note = run("note.parse_note", parse_note, data)
    if ok:
        expect("note.parse_note", note.encode() == data, "accepted but re-encodes differently")
        run("note.verify_note", verify_note, note, ORIGIN, RECEIVER_PUBLIC)


@FUZZ
@given(raw())
def test_note_raw(data: bytes) -> None:
    check_note(data)


@FUZZ
@given(mutants(NOTES))
def test_note_mutated(data: bytes) -> None:
    check_note(data)


def check_verifier_key_text(text: str) -> None:
    ok, value = run("note.parse_verifier_key", parse_verifier_key, text)
    if ok:
        name, public = value
        expect("note.parse_verifier_key", verifier_key(name, public) == text,
               f"{text!r} accepted but re-encodes differently")


@FUZZ
@given(st.text(max_size=120))
def test_verifier_key_raw(text: str) -> None:
    check_verifier_key_text(text)


@FUZZ
@given(mutants([key.encode() for key in VERIFIER_KEYS]))
def test_verifier_key_mutated(data: bytes) -> None:
    check_verifier_key_text(data.decode("utf-8", "surrogateescape"))


@st.composite
def resigned_checkpoints(draw: st.DrawFn) -> bytes:
    """Checkpoint text changed, then signed again by the log (and cosigned by the witness)."""
    chooser = Chooser(draw)
    text = mutate(CHECKPOINT.text(), chooser, max_ops=4)
    cosigned_at = chooser.choice((None, NOW, 0, 2**63 - 1, 2**63, 2**64 - 1))
    return log_signed(text, cosigned_at)


def check_checkpoint(data: bytes) -> None:
    ok, opened = run("checkpoint.open_checkpoint", open_checkpoint, data, ORIGIN,
                     RECEIVER_PUBLIC)
    if not ok:
        return
    checkpoint, note = opened
    expect("checkpoint.open_checkpoint", checkpoint.text() == note.text
           and note.encode() == data, "accepted but re-encodes differently")
    for signature in note.signatures:
        run("checkpoint.verify_cosignature", verify_cosignature, checkpoint, signature,
            WITNESS_NAME, WITNESS_PUBLIC)
    run("checkpoint.with_signatures", with_signatures, data, [])


def check_checkpoint_text(text: bytes) -> None:
    ok, checkpoint = run("checkpoint.parse_checkpoint_text", parse_checkpoint_text, text)
    if ok:
        expect("checkpoint.parse_checkpoint_text", checkpoint.text() == text,
               "accepted but re-encodes differently")


@FUZZ
@given(raw())
def test_checkpoint_raw(data: bytes) -> None:
    check_checkpoint(data)
    check_checkpoint_text(data)


@FUZZ
@given(st.one_of(mutants(NOTES), resigned_checkpoints()))
def test_checkpoint_mutated(data: bytes) -> None:
    check_checkpoint(data)


@FUZZ
@given(mutants([CHECKPOINT.text(), Checkpoint(ORIGIN, 2**63 - 1, b"\xff" * 32).text()]))
def test_checkpoint_text_mutated(text: bytes) -> None:
    check_checkpoint_text(text)


@st.composite
def tlog_proofs(draw: st.DrawFn) -> bytes:
    """A tlog-proof with its lines changed, before a checkpoint changed and signed again."""
    chooser = Chooser(draw)
    lines, _, note = chooser.choice(PROOFS).partition(b"\n\n")
    if chooser.integer(0, 2):
        lines = mutate(lines, chooser, max_ops=4)
    if not chooser.integer(0, 2):
        note = draw(resigned_checkpoints())
    return lines + b"\n\n" + note


def check_tlog_proof(data: bytes) -> None:
    ok, proof = run("checkpoint.parse_tlog_proof", parse_tlog_proof, data)
    if not ok:
        return
    expect("checkpoint.parse_tlog_proof", proof.encode() == data,
           "accepted but re-encodes differently")
    if len(data) <= 16 * 1024:
        ok, receipt = run("receipt.parse_receipt", parse_receipt, ACCEPTED.signed + frame(data))
        if ok:
            run("log_entry.verify_receipt_proof", verify_receipt_proof, receipt,
                RECEIVER_PUBLIC)


@FUZZ
@given(raw([b"c2sp.org/tlog-proof@v1\nindex 1\n", b"c2sp.org/tlog-proof@v1\n"]))
def test_tlog_proof_raw(data: bytes) -> None:
    check_tlog_proof(data)


@FUZZ
@given(st.one_of(mutants(PROOFS), tlog_proofs()))
def test_tlog_proof_mutated(data: bytes) -> None:
    check_tlog_proof(data)


# --- audit log entries ------------------------------------------------------------------------


def check_entry(data: bytes) -> None:
    ok, parsed = run("log_entry.parse_entry", parse_entry, data)
    if ok:
        entry_type, fields = parsed
        expect("log_entry.parse_entry", encode_entry(entry_type, fields) == data,
               "accepted but re-encodes differently")


@FUZZ
@given(raw(max_size=1200))
def test_log_entry_raw(data: bytes) -> None:
    check_entry(data)


@FUZZ
@given(st.one_of(mutants(ENTRIES), json_mutants(ENTRY_VALUES)))
def test_log_entry_mutated(data: bytes) -> None:
    check_entry(data)


# --- the directory ----------------------------------------------------------------------------


def check_directory(data: bytes) -> None:
    ok, directory = run("directory.verify_directory", verify_directory, data, PINNED, 2)
    if ok:
        rebuilt = build_directory(directory.federation, directory.serial, directory.issued,
                                  directory.signed_records.values())
        expect("directory.verify_directory", rebuilt == directory.body,
               "accepted a body that is not the one encoding of its records")
    run("directory.read_draft", read_draft, data)


@st.composite
def resigned_directories(draw: st.DrawFn) -> bytes:
    """A directory whose records (JSON) or body were changed, then signed again by everyone:
    each authority over its record and prekeys, two secretariat keys over the body."""
    chooser = Chooser(draw)
    body = copy.deepcopy(DIRECTORY_VALUE)
    for position, value in enumerate(RECORD_VALUES):
        if chooser.integer(0, 1):
            continue
        record = mutate_json(value, chooser)
        identity = AUTHORITIES[(SENDER, RECEIVER)[position]]
        prekeys = record.get("prekeys") if isinstance(record, dict) else None
        for prekey in prekeys if isinstance(prekeys, list) else []:
            with contextlib.suppress(Exception):  # sign what can be signed; the rest stays
                prekey["sig"] = b64encode(identity.sign(LABELS["prekey"],
                                                        canonical_json(prekey["prekey"])))
        record_bytes = encode_json(record, chooser)
        body["records"][position] = {
            "record": b64encode(record_bytes),
            "sig": b64encode(identity.sign(LABELS["authority-record"], record_bytes))}
    if not chooser.integer(0, 2):
        body = mutate_json(body, chooser, max_ops=2)
    body_bytes = encode_json(body, chooser)
    if not chooser.integer(0, 4):
        body_bytes = mutate(body_bytes, chooser, max_ops=2)
    signers = chooser.choice((SECRETARIAT[:2], SECRETARIAT[1:], SECRETARIAT, SECRETARIAT[:1]))
    return directory_file(body_bytes, signers)


@FUZZ
@given(raw())
def test_directory_raw(data: bytes) -> None:
    check_directory(data)


@FUZZ
@given(st.one_of(mutants([DIRECTORY], max_ops=4), resigned_directories()))
def test_directory_mutated(data: bytes) -> None:
    check_directory(data)


def check_signed_record(value: object) -> None:
    ok, signed = run("directory.SignedRecord.from_json", SignedRecord.from_json, value)
    if ok:
        run("directory.SignedRecord.verify", signed.verify)


@st.composite
def signed_record_values(draw: st.DrawFn) -> object:
    chooser = Chooser(draw)
    position = chooser.integer(0, 1)
    record_bytes = encode_json(mutate_json(RECORD_VALUES[position], chooser), chooser)
    identity = AUTHORITIES[(SENDER, RECEIVER)[position]]
    value: object = {"record": b64encode(record_bytes),
                     "sig": b64encode(identity.sign(LABELS["authority-record"], record_bytes))}
    return mutate_json(value, chooser, max_ops=1) if not chooser.integer(0, 4) else value


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["record", "sig", "x", ""]), inner, max_size=3), max_leaves=8)


@FUZZ
@given(JSON_VALUES)
def test_signed_record_raw(value: object) -> None:
    check_signed_record(value)


@FUZZ
@given(signed_record_values())
def test_signed_record_mutated(value: object) -> None:
    check_signed_record(value)


# --- request packages and case messages ---------------------------------------------------------


def check_request(data: bytes) -> None:
    ok, package = run("request_package.parse_request", parse_request, data)
    if not ok:
        return
    body = encode_request(package)
    expect("request_package.parse_request", parse_request(body).body == body,
           "the normal form does not parse to itself")
    run("request_package.check_completeness", check_completeness, package)
    run("request_package.check_language", check_language, package, ["en", "pt"])


@FUZZ
@given(raw())
def test_request_package_raw(data: bytes) -> None:
    check_request(data)


@FUZZ
@given(st.one_of(mutants([*REQUEST_FILES, *REQUESTS]), json_mutants(REQUEST_VALUES)))
def test_request_package_mutated(data: bytes) -> None:
    check_request(data)


def check_case_message(data: bytes, kind: Kind) -> None:
    ok, message = run("case_message.parse_case_message", parse_case_message, data)
    if ok:
        expect("case_message.parse_case_message", encode_case_message(message) == data,
               "accepted but re-encodes differently")
    run("case_message.parse_case_message", parse_case_message, data, kind=kind)
    for content_type in (CASE_CONTENT_TYPE, REQUEST_CONTENT_TYPE, "text/plain"):
        run("case_message.check_content", check_content, kind, content_type, data)


@FUZZ
@given(raw(), st.sampled_from(list(Kind)))
def test_case_message_raw(data: bytes, kind: Kind) -> None:
    check_case_message(data, kind)


@FUZZ
@given(st.one_of(mutants(list(CASES.values())), json_mutants(CASE_VALUES)),
       st.sampled_from(list(Kind)))
def test_case_message_mutated(data: bytes, kind: Kind) -> None:
    check_case_message(data, kind)


# --- attachments: the manifest and the stream -----------------------------------------------------


def check_manifest(data: bytes) -> None:
    ok, specs = run("attachment.parse_manifest", parse_manifest, data)
    if not ok:
        return
    expect("attachment.parse_manifest", encode_manifest(specs) == data,
           "accepted but re-encodes differently")
    for spec in specs[:3]:
        ciphertext = ATTACHMENTS[spec.index][1] if spec.index < len(ATTACHMENTS) else b""
        check_stream(spec, MESSAGE_ID, ciphertext, [])


@FUZZ
@given(raw())
def test_manifest_raw(data: bytes) -> None:
    check_manifest(data)


@FUZZ
@given(st.one_of(mutants(MANIFESTS), json_mutants(MANIFEST_VALUES)))
def test_manifest_mutated(data: bytes) -> None:
    check_manifest(data)


def decrypt(spec: AttachmentSpec, message_id: str, data: bytes, cuts: list[int]) -> bytes:
    decryptor = Decryptor(spec, message_id)
    out: list[bytes] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        out.extend(decryptor.feed(data[start:max(start, cut)]))
        start = max(start, cut)
    out.extend(decryptor.finish())
    return b"".join(out)


def check_stream(spec: AttachmentSpec, message_id: str, data: bytes, cuts: list[int]) -> None:
    ok, plaintext = run("attachment.Decryptor", decrypt, spec, message_id, data, cuts)
    if ok:
        expect("attachment.Decryptor", len(plaintext) == spec.size
               and hashlib.sha256(plaintext).hexdigest() == spec.sha256,
               "a stream was accepted that is not what the manifest says")


CUTS = st.lists(st.integers(0, 2**20), max_size=6)


@FUZZ
@given(st.sampled_from(range(len(ATTACHMENTS))), raw(max_size=200), CUTS)
def test_stream_raw(which: int, data: bytes, cuts: list[int]) -> None:
    check_stream(ATTACHMENTS[which][0], MESSAGE_ID, data, cuts)


@st.composite
def stream_mutants(draw: st.DrawFn) -> tuple[AttachmentSpec, str, bytes]:
    chooser = Chooser(draw)
    which = chooser.integer(0, len(ATTACHMENTS) - 1)
    spec, ciphertext = ATTACHMENTS[which]
    message_id = MESSAGE_ID
    change = chooser.integer(0, 9)
    if change <= 5:
        ciphertext = mutate(ciphertext, chooser, max_ops=3,
                            pool=[c for _, c in ATTACHMENTS])
    elif change == 6:  # another stream, or this one in another message
        ciphertext = chooser.choice([c for _, c in ATTACHMENTS])
        message_id = chooser.choice((MESSAGE_ID, "f" * 32))
    elif change == 7:  # the manifest lies about size or content
        value = spec.to_json()
        value["size"] = max(0, spec.size + chooser.choice((-1, 1, -100, 65536)))
        if chooser.integer(0, 1):
            value["sha256"] = hashlib.sha256(b"other").hexdigest()
        spec = AttachmentSpec.from_json(value)
    elif change == 8:  # the stream cut at a chunk boundary, or extended by a whole chunk
        ciphertext = chooser.choice((ciphertext[:65536 + 17], ciphertext + ciphertext[:65553],
                                     ciphertext[:-1], ciphertext[65553:]))
    return spec, message_id, ciphertext


@FUZZ
@given(stream_mutants(), CUTS)
def test_stream_mutated(case: tuple[AttachmentSpec, str, bytes], cuts: list[int]) -> None:
    spec, message_id, data = case
    check_stream(spec, message_id, data, cuts)


# --- Merkle proofs: a mutated one verifies only if it is the true one ---------------------------

HASHES = st.one_of(st.binary(min_size=32, max_size=32), st.binary(max_size=40),
                   st.sampled_from(LEAVES[:8] + ROOTS[:8]))
SIZES = st.one_of(st.integers(-3, 90), st.integers(-(2**70), 2**70), st.booleans())


@FUZZ
@given(HASHES, SIZES, SIZES, st.lists(HASHES, max_size=70), HASHES)
def test_merkle_inclusion_raw(leaf: bytes, index: int, size: int, proof: list[bytes],
                              root: bytes) -> None:
    run("merkle.verify_inclusion", merkle.verify_inclusion, leaf, index, size, proof, root)


@FUZZ
@given(SIZES, SIZES, HASHES, HASHES, st.lists(HASHES, max_size=70))
def test_merkle_consistency_raw(old: int, new: int, old_root: bytes, new_root: bytes,
                                proof: list[bytes]) -> None:
    run("merkle.verify_consistency", merkle.verify_consistency, old, new, old_root, new_root,
        proof)


def _mutate_proof(proof: list[bytes], chooser: Chooser) -> list[bytes]:
    proof = list(proof)
    operation = chooser.integer(0, 5)
    if operation == 0 and proof:
        at = chooser.integer(0, len(proof) - 1)
        proof[at] = mutate(proof[at], chooser, max_ops=1)
    elif operation == 1 and proof:
        del proof[chooser.integer(0, len(proof) - 1)]
    elif operation == 2:
        proof.insert(chooser.integer(0, len(proof)), chooser.choice(LEAVES + ROOTS))
    elif operation == 3 and len(proof) > 1:
        i, j = chooser.integer(0, len(proof) - 1), chooser.integer(0, len(proof) - 1)
        proof[i], proof[j] = proof[j], proof[i]
    elif operation == 4 and proof:
        proof[chooser.integer(0, len(proof) - 1)] = chooser.choice(
            [*NODES.values(), *ROOTS])
    return proof


def _nudge(value: int, chooser: Chooser) -> int:
    return max(0, value + chooser.choice((-2, -1, 1, 2, value, -value, 2**32)))


@st.composite
def inclusion_mutants(draw: st.DrawFn) -> tuple[list[Any], list[Any]]:
    chooser = Chooser(draw)
    size = chooser.integer(1, TREE_SIZE)
    index = chooser.integer(0, size - 1)
    original: list[Any] = [LEAVES[index], index, size,
                           merkle.inclusion_proof(index, size, NODES), ROOTS[size]]
    args = list(original)
    for _ in range(chooser.integer(0, 3)):
        field = chooser.integer(0, 4)
        if field in (0, 4):
            args[field] = (chooser.choice(LEAVES + ROOTS) if chooser.integer(0, 1)
                           else mutate(args[field], chooser, max_ops=1))
        elif field in (1, 2):
            args[field] = _nudge(args[field], chooser)
        else:
            args[3] = _mutate_proof(args[3], chooser)
    return original, args


@FUZZ
@given(inclusion_mutants())
def test_merkle_inclusion_mutated(case: tuple[list[Any], list[Any]]) -> None:
    """A true proof verifies; against a (size, root) the caller trusts, only a true one does.

    A root that is not the tree's root for ``size`` is not a claim the verifier can judge (the
    checkpoint signature binds the two): the path for index 0 in 3 leaves has the shape of the
    one in 4, so it verifies against the 3-leaf root under either size. What it must never do
    is accept a root or a leaf that no hash of the tree leads to.
    """
    original, args = case
    ok, _ = run("merkle.verify_inclusion", merkle.verify_inclusion, *args)
    leaf, index, size, proof, root = args
    trusted = 0 <= size <= TREE_SIZE and root == ROOTS[size]
    true = (trusted and 0 <= index < size and leaf == LEAVES[index]
            and proof == merkle.inclusion_proof(index, size, NODES))
    sound = not ok or (
        (size == 1 and index == 0 and not proof and leaf == root)
        or (root in KNOWN and leaf in KNOWN
            and (not trusted or (0 <= index < size and leaf == LEAVES[index]))))
    expect("merkle.verify_inclusion", ok == true if true else sound,
           f"verify_inclusion(index={index}, size={size}, {len(proof)} hashes) answered {ok} "
           f"(from index={original[1]}, size={original[2]})")


@st.composite
def consistency_mutants(draw: st.DrawFn) -> tuple[list[Any], list[Any]]:
    chooser = Chooser(draw)
    new = chooser.integer(0, TREE_SIZE)
    old = chooser.integer(0, new)
    original: list[Any] = [old, new, ROOTS[old], ROOTS[new],
                           merkle.consistency_proof(old, new, NODES)]
    args = list(original)
    for _ in range(chooser.integer(0, 3)):
        field = chooser.integer(0, 4)
        if field in (0, 1):
            args[field] = _nudge(args[field], chooser)
        elif field in (2, 3):
            args[field] = (chooser.choice(ROOTS + LEAVES[:4]) if chooser.integer(0, 1)
                           else mutate(args[field], chooser, max_ops=1))
        else:
            args[4] = _mutate_proof(args[4], chooser)
    return original, args


@FUZZ
@given(consistency_mutants())
def test_merkle_consistency_mutated(case: tuple[list[Any], list[Any]]) -> None:
    """A true proof verifies; none makes a trusted root consistent with one no tree has.

    As for inclusion, a root is only judged against the size it is trusted for: the proof
    from 2 to 3 leaves also verifies from 2 to "4" leaves with the 3-leaf root. An empty old
    tree is a prefix of every tree, and equal sizes need only equal roots.
    """
    original, args = case
    ok, _ = run("merkle.verify_consistency", merkle.verify_consistency, *args)
    old, new, old_root, new_root, proof = args
    old_trusted = 0 <= old <= TREE_SIZE and old_root == ROOTS[old]
    new_trusted = 0 <= new <= TREE_SIZE and new_root == ROOTS[new]
    true = (old_trusted and new_trusted and old <= new
            and proof == merkle.consistency_proof(old, new, NODES))
    sound = not ok or old == 0 or (old == new and old_root == new_root and not proof) or (
        old_root in KNOWN and new_root in KNOWN
        and (not old_trusted or new_root in ROOTS[old:])
        and (not new_trusted or old_root in ROOTS[:new + 1]))
    expect("merkle.verify_consistency", ok == true if true else sound,
           f"verify_consistency({old}, {new}, {len(proof)} hashes) answered {ok} "
           f"(from {original[0]}, {original[1]})")


# --- HTTP bodies and headers against a running node ----------------------------------------------

ALLOWED_STATUSES = {200, 202, 400, 403, 408, 409, 413, 422}
UNREAD = {"transport.body_too_large", "transport.body_too_slow"}  # name no envelope
STORE_TABLES = ("messages_in", "seen", "receipts")


class PeerFuzzer:
    """Posts fuzzed bodies to BR:MJSP as FR:MJ would, and checks every answer and the store."""

    def __init__(self, federation: Federation, rng: random.Random,
                 session: aiohttp.ClientSession) -> None:
        self.fed = federation
        self.rng = rng
        self.chooser = Chooser(rng=rng)
        self.session = session
        self.node = federation.nodes[BR]
        self.sender = federation.nodes[FR]
        self.directory: Directory = self.sender.directory
        self.record = self.directory.record(BR)
        self.genuine: list[bytes] = []  # every envelope FR:MJ really sealed
        self.accepted: set[str] = set()  # envelope hashes BR:MJSP has accepted
        self.case = ""

    # building bodies

    def genuine_envelope(self) -> bytes:
        choice = self.rng.randrange(5)
        if choice == 0:
            draft = Draft(BR, Kind.REQUEST, REQUEST_CONTENT_TYPE, self.rng.choice(REQUESTS))
        elif choice == 1:
            draft = Draft(BR, Kind.STATUS, CASE_CONTENT_TYPE, CASES[Kind.STATUS])
        elif choice == 2:  # signed and sealed, but the payload breaks its schema
            payload = encode_json(mutate_json(self.rng.choice(REQUEST_VALUES), self.chooser),
                                  self.chooser)
            draft = Draft(BR, Kind.REQUEST, REQUEST_CONTENT_TYPE, payload)
        else:
            draft = Draft(BR, Kind.REQUEST, "text/plain", self.rng.randbytes(40))
        envelope = compose(draft, authority=FR, keystore=self.sender.keystore,
                           directory=self.directory, archive=self.sender.archive,
                           now=int(time.time())).envelope
        self.genuine.append(envelope)
        return envelope

    def envelope(self) -> bytes:
        """Genuine, mutated, an earlier one again, or junk."""
        pick = self.rng.randrange(10)
        if pick <= 1:
            return self.genuine_envelope()
        if pick <= 6:
            return mutate(self.genuine_envelope(), self.chooser,
                          pool=[e.data for e in ENVELOPES])
        if pick == 7 and self.genuine:
            return self.rng.choice(self.genuine)
        if pick == 8:
            return mutate(self.rng.choice([e.data for e in ENVELOPES]), self.chooser)
        return b"RGTE\x01"[:self.rng.randrange(6)] + self.rng.randbytes(self.rng.randrange(300))

    # checking answers

    def receipt(self, answer: bytes, body: bytes | None, status: int | None) -> tuple[str, bool]:
        """Check one signed receipt for ``body``; return the envelope hash and acceptance."""
        receipt = parse_receipt(answer)
        assert receipt.receiver == BR, self.case
        receipt.verify(self.directory.receiver_key(BR, receipt.receiver_key))
        digest = "" if body is None else envelope_hash(body)
        if receipt.accepted:
            assert receipt.code == "" and status in (200, None), self.case
            assert receipt.envelope_hash == digest, self.case
            assert body in self.genuine, f"{self.case}: accepted bytes FR:MJ never sealed"
        else:
            assert receipt.code in ERRORS_BY_CODE, f"{self.case}: {receipt.code}"
            assert receipt.code != "envelope.refused", f"{self.case}: {receipt.detail}"
            assert status in (None, http_status_for(receipt.code)), (self.case, receipt.code)
            named = "" if receipt.code in UNREAD else digest
            assert receipt.envelope_hash == named, (self.case, receipt.code)
        stats("http.peer_endpoint")["codes"][receipt.code or "accepted"] += 1
        return receipt.envelope_hash, receipt.accepted

    async def counts(self) -> tuple[dict[str, int], int]:
        return await snapshot(self.node), await self.node.call(self.node.store.audit.size)

    async def checked(self, send: Callable[[], Any]) -> None:
        """Post, then: the store grew by exactly the envelopes newly accepted, else not at all."""
        entry = stats("http.peer_endpoint")
        entry["cases"] += 1
        before, log_before = await self.counts()
        try:
            fresh = await send()
        except BaseException:
            entry["failures"] += 1
            raise
        after, log_after = await self.counts()
        grown = {table: after[table] - before[table] for table in after}
        expected = {table: len(fresh) if table in STORE_TABLES else 0 for table in after}
        if grown != expected or log_after - log_before != 2 * len(fresh):
            entry["failures"] += 1
            raise AssertionError(f"{self.case}: the store changed by {grown} and the log by "
                                 f"{log_after - log_before}, for {len(fresh)} acceptance(s)")
        entry["returned" if fresh else "rejected"] += 1

    def settle(self, outcomes: list[tuple[str, bool]]) -> set[str]:
        fresh = {digest for digest, accepted in outcomes
                 if accepted and digest not in self.accepted}
        self.accepted |= fresh
        return fresh

    # the kinds of request

    async def post(self, path: str, body: bytes | AsyncIterator[bytes],
                   headers: dict[str, str]) -> tuple[int, str, bytes]:
        async with self.session.post(self.record.endpoint + path, data=body, headers=headers,
                                     ssl=client_pin(self.record.tls_fingerprint)) as response:
            return response.status, response.content_type, await response.read()

    async def single(self) -> set[str]:
        body = self.envelope()
        headers = {"Content-Type": ENVELOPE_MEDIA_TYPE, "Accept": RECEIPT_MEDIA_TYPE}
        style = self.rng.randrange(4)
        if style == 1:  # any Content-Type and Accept at all
            headers = {"Content-Type": self.rng.choice((
                "", "application/json", "text/plain; charset=utf-8", "multipart/form-data",
                "application/vnd.rogatory.envelope; q=\"x y\"", BATCH_MEDIA_TYPE,
                "application/x-www-form-urlencoded")), "Accept": self.rng.choice(("*/*", ""))}
        data: bytes | AsyncIterator[bytes] = body
        if style == 2:  # chunked, in pieces of any size
            data = self.pieces(body)
        self.case = f"seed {HTTP_SEED}: single ({style}) {len(body)} bytes"
        status, media, answer = await self.post("/v1/envelopes", data, headers)
        assert status in ALLOWED_STATUSES, (self.case, status, answer[:200])
        assert media == RECEIPT_MEDIA_TYPE, (self.case, media)
        return self.settle([self.receipt(answer, body, status)])

    async def pieces(self, body: bytes) -> AsyncIterator[bytes]:
        start = 0
        while start < len(body):
            size = self.rng.choice((1, 7, 100, 4096, len(body)))
            yield body[start:start + size]
            start += size

    async def batch(self) -> set[str]:
        envelopes = [self.envelope() for _ in range(self.rng.randint(1, 6))]
        if self.rng.randrange(4) == 0 and self.genuine:
            envelopes.append(envelopes[0])  # the same bytes twice in one batch
        body = frame(*envelopes)
        if self.rng.randrange(3) == 0:  # the framing itself broken (or not)
            body = mutate(body, self.chooser, max_ops=2)
        frames = split_frames(body)
        self.case = f"seed {HTTP_SEED}: batch of {len(envelopes)}, {len(body)} bytes"
        status, media, answer = await self.post(
            "/v1/envelopes/batch", body,
            {"Content-Type": BATCH_MEDIA_TYPE, "Accept": RECEIPTS_MEDIA_TYPE})
        assert status in ALLOWED_STATUSES, (self.case, status, answer[:200])
        if frames is None:  # not 1..64 frames filling the body: refused whole, as one envelope
            assert (status, media) == (400, RECEIPT_MEDIA_TYPE), (self.case, status, media)
            digest, accepted = self.receipt(answer, body, status)
            assert not accepted and digest == envelope_hash(body), self.case
            return set()
        assert (status, media) == (200, RECEIPTS_MEDIA_TYPE), (self.case, status, media)
        receipts = split_frames(answer, limit=len(frames))
        assert receipts is not None and len(receipts) == len(frames), self.case
        return self.settle([self.receipt(receipt, envelope, None)
                            for receipt, envelope in zip(receipts, frames, strict=True)])

    async def raw_length(self) -> set[str]:
        """A Content-Length that is not the body's: shorter, longer, or over the node's limit.

        Shorter, the rest sent after the answer: the node answers for the declared bytes (the
        rest is a bad next request, which aiohttp refuses). Shorter, all sent at once: aiohttp
        may refuse the whole as bad HTTP before the node sees it (its own 400, not a receipt).
        Longer, then the client hangs up: no answer, nothing stored. Over the limit: 413.
        """
        body = self.envelope() or b"RGTE"
        mode = self.rng.randrange(4)
        limit = self.node.config.max_body
        declared = {0: self.rng.randrange(len(body)), 1: self.rng.randrange(len(body)),
                    2: limit + self.rng.choice((1, 1000, 2**40)),
                    3: len(body) + self.rng.randint(1, 1000)}[mode]
        self.case = (f"seed {HTTP_SEED}: Content-Length {declared} for {len(body)} bytes, "
                     f"mode {mode}")
        parts = [body[:declared], body[declared:]] if mode == 0 else [body]
        answer = await raw_post(self.record.endpoint, self.record.tls_fingerprint, declared,
                                parts, answered=mode != 3)
        if answer is None:
            return set()
        status, media, data = answer
        assert status in ALLOWED_STATUSES, (self.case, status, data[:200])
        if mode == 1 and media != RECEIPT_MEDIA_TYPE:
            assert (status, media) == (400, "text/plain"), (self.case, status, media)
            stats("http.peer_endpoint")["codes"]["aiohttp: 400 bad HTTP (not a receipt)"] += 1
            return set()
        assert media == RECEIPT_MEDIA_TYPE, (self.case, media, data[:200])
        digest, accepted = self.receipt(data, None if mode == 2 else body[:declared], status)
        if mode == 2:
            assert (status, digest, accepted) == (413, "", False), self.case
        return self.settle([(digest, accepted)])

    async def replay(self) -> set[str]:
        """Another envelope under a message id BR:MJSP already accepted from FR:MJ."""
        taken = [e for e in self.genuine if envelope_hash(e) in self.accepted]
        if not taken:
            return await self.single()
        old = parse_envelope(self.rng.choice(taken)).header
        prekey = self.directory.prekey_for(BR, int(time.time()))
        now = int(time.time())
        header = EnvelopeHeader(
            id=old.id, kind=Kind.REQUEST, sender=FR, recipient=BR,
            sender_key=self.sender.keystore.identity.key_id, recipient_prekey=prekey.id,
            suite=prekey.suite, created=now, expires=now + 600)
        body = seal(header, "text/plain", self.rng.randbytes(20),
                    sender_seed=self.sender.keystore.identity.seed,
                    recipient_public=prekey.public_raw).data
        self.genuine.append(body)
        self.case = f"seed {HTTP_SEED}: replay of {old.id}"
        status, media, answer = await self.post("/v1/envelopes", body,
                                                {"Content-Type": ENVELOPE_MEDIA_TYPE})
        assert media == RECEIPT_MEDIA_TYPE, (self.case, media)
        _, accepted = self.receipt(answer, body, status)
        assert (status, accepted) == (409, False), (self.case, status)
        return set()


def split_frames(body: bytes, limit: int = MAX_BATCH) -> list[bytes] | None:
    """The frames of a batch body, or None where the node must refuse it whole."""
    reader = Reader(body)
    frames: list[bytes] = []
    try:
        while reader.remaining():
            frames.append(reader.framed())
            if len(frames) > limit:
                return None
    except EncodingError:
        return None
    return frames or None


async def raw_post(endpoint: str, fingerprint: str, declared: int, parts: Sequence[bytes],
                   *, answered: bool = True) -> tuple[int, str, bytes] | None:
    """POST over a bare TLS stream, with whatever Content-Length we like.

    The head and the first part go out together; the answer is read (when one is due) before
    the other parts are sent; then the connection is closed.
    """
    url = urlsplit(endpoint)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # pinned by hand below, as client_pin does
    reader, writer = await asyncio.open_connection(url.hostname, url.port, ssl=context)
    try:
        certificate = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert hashlib.sha256(certificate).hexdigest() == fingerprint
        head = (f"POST /v1/envelopes HTTP/1.1\r\nHost: {url.netloc}\r\n"
                f"Content-Type: {ENVELOPE_MEDIA_TYPE}\r\nContent-Length: {declared}\r\n\r\n")
        writer.write(head.encode("ascii") + parts[0])
        await writer.drain()
        answer = None
        if answered:
            status_line = await asyncio.wait_for(reader.readline(), 30)
            status = int(status_line.split()[1])
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            data = await reader.readexactly(int(headers["content-length"]))
            answer = status, headers.get("content-type", "").split(";")[0], data
        for part in parts[1:]:
            writer.write(part)
            await writer.drain()
        await asyncio.sleep(0.05)
        return answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


def client_caused(record: logging.LogRecord) -> bool:
    """aiohttp's own logs of what a client did, not of a failure in the node.

    Bytes that are not HTTP (what follows a short Content-Length) are logged by aiohttp's
    parser; a client that hangs up in the middle of its body makes the body read in
    ``node/peer_api.py`` raise ConnectionResetError, which aiohttp logs as an error too.
    """
    error = record.exc_info[1] if record.exc_info else None
    return isinstance(error, HttpProcessingError | ConnectionResetError)


async def test_peer_endpoint_answers_fuzzed_bodies_and_headers(
        federation: Federation, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(HTTP_SEED)
    async with aiohttp.ClientSession() as session:
        fuzzer = PeerFuzzer(federation, rng, session)
        kinds = (fuzzer.single, fuzzer.single, fuzzer.single, fuzzer.batch, fuzzer.batch,
                 fuzzer.raw_length, fuzzer.replay)
        for _ in range(HTTP_CASES):
            await fuzzer.checked(rng.choice(kinds))
    crashes = [record.getMessage() for record in caplog.records
               if record.levelno >= logging.ERROR and not client_caused(record)
               and record.name.split(".")[0] in ("rogatory", "aiohttp")]
    assert not crashes, f"seed {HTTP_SEED}: {crashes[:3]}"
    assert fuzzer.accepted, f"seed {HTTP_SEED}: no envelope was accepted at all"
