#!/usr/bin/env python3
"""Generate the Rogatory protocol test vectors in ``tests/vectors/``, one case per JSON file.

Every key is derived from a fixed label (see ``derive``), Ed25519 is deterministic and canonical
JSON has one spelling, so most vectors come out byte-identical on every run. Envelopes are the
exception: HPKE draws a fresh encapsulation each time it seals. Those vectors are therefore
generated once and kept; this script never rewrites an existing file unless run with
``--force``. ``--check`` rebuilds everything and compares it with the files on disk (ignoring
the HPKE-random envelope bytes), without writing anything.

    python scripts/make_vectors.py            # write the vectors that are missing
    python scripts/make_vectors.py --check    # exit 1 if a file differs from what it should be
    python scripts/make_vectors.py --force    # rewrite all (new random envelopes!)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from protocol import merkle
from protocol.checkpoint import Checkpoint, TlogProof, cosign, sign_checkpoint, with_signatures
from protocol.encoding import b64encode, canonical_json, frame, pae
from protocol.envelope import DEFAULT_MAX_SKEW, MAX_LIFETIME, seal
from protocol.header import EnvelopeHeader
from protocol.kinds import Kind, Priority
from protocol.log_entry import EntryType, encode_entry, log_origin, received_entry
from protocol.note import ALG_COSIGNATURE_V1, ALG_ED25519, key_hash, verifier_key
from protocol.receipt import Receipt, ReceiptStatus, parse_receipt, sign_receipt
from protocol.signing import LABELS, public_key_of, sign
from protocol.suites import Suite, hpke_seal, key_id, public_from_private

VECTORS = Path(__file__).resolve().parent.parent / "tests" / "vectors"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400
CREATED = NOW - 60
EXPIRES = CREATED + 7 * DAY
MAGIC = b"RGTE\x01"
HPKE_INFO_PREFIX = b"rogatory/v1/envelope-hpke\x00"
CONTENT_TYPE = "application/json"
PAYLOAD = canonical_json(
    {"assistance": ["hearing of a witness"], "legal_basis": "ETS 30", "offence": "fraud"}
)
RANDOM_FIELDS = ("envelope_b64", "envelope_hash")

Vector = dict[str, Any]


# --- key material ----------------------------------------------------------------------------


def derive(label: str, size: int = 32) -> bytes:
    """Fixed key material: SHA-256 (32 bytes) or SHA-512 (64 bytes) of "rogatory/vectors/"+label."""
    digest = hashlib.sha512 if size == 64 else hashlib.sha256
    return digest(f"rogatory/vectors/{label}".encode()).digest()


def message_id(name: str) -> str:
    return hashlib.sha256(f"rogatory/vectors/message/{name}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Prekey:
    suite: Suite
    private: bytes
    not_before: int = NOW - 10 * DAY
    not_after: int = NOW + 20 * DAY

    @property
    def public(self) -> bytes:
        return public_from_private(self.suite, self.private)

    @property
    def id(self) -> str:
        return key_id(self.public)

    def to_json(self) -> Vector:
        return {
            "id": self.id,
            "suite": self.suite.value,
            "private_b64": b64encode(self.private),
            "not_before": self.not_before,
            "not_after": self.not_after,
        }


def hybrid_prekey(authority: str, generation: int = 1) -> Prekey:
    return Prekey(
        Suite.HYBRID,
        derive(f"prekey/{authority}/{generation}/mlkem768-seed", 64)
        + derive(f"prekey/{authority}/{generation}/x25519"),
    )


def x25519_prekey(authority: str) -> Prekey:
    return Prekey(Suite.X25519, derive(f"prekey/{authority}/1/x25519-only"))


@dataclass(frozen=True)
class Party:
    authority: str

    @property
    def seed_label(self) -> str:
        return f"identity/{self.authority}"

    @property
    def seed(self) -> bytes:
        return derive(self.seed_label)

    @property
    def public(self) -> bytes:
        return public_key_of(self.seed)

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    @property
    def hybrid(self) -> Prekey:
        return hybrid_prekey(self.authority)

    @property
    def x25519(self) -> Prekey:
        return x25519_prekey(self.authority)

    def prekey(self, suite: Suite) -> Prekey:
        return self.hybrid if suite is Suite.HYBRID else self.x25519


XA = Party("XA:MOJ")
XB = Party("XB:MOJ")
XC = Party("XC:PGO")
PARTIES = (XA, XB, XC)


# --- building envelopes straight from the grammar ------------------------------------------


def header(
    sender: Party = XA,
    recipient: Party = XB,
    *,
    suite: Suite = Suite.HYBRID,
    name: str = "request-1",
    **changes: Any,
) -> EnvelopeHeader:
    base = EnvelopeHeader(
        id=message_id(name),
        kind=Kind.REQUEST,
        sender=sender.authority,
        recipient=recipient.authority,
        sender_key=sender.key_id,
        recipient_prekey=recipient.prekey(suite).id,
        suite=suite,
        created=CREATED,
        expires=EXPIRES,
        in_reply_to="",
        case="XA/2026/0001",
        priority=Priority.NORMAL,
    )
    return replace(base, **changes)


def package(header_bytes: bytes, signer: Party, payload: bytes = PAYLOAD) -> bytes:
    body = frame(header_bytes, CONTENT_TYPE.encode("ascii"), payload)
    return body + sign(signer.seed, LABELS["envelope-inner"], body)


def hpke_info(header_bytes: bytes) -> bytes:
    return HPKE_INFO_PREFIX + hashlib.sha256(header_bytes).digest()


def envelope(header_bytes: bytes, sealed: bytes, signer: Party) -> bytes:
    outer = sign(signer.seed, LABELS["envelope"], hashlib.sha256(sealed).digest() + header_bytes)
    return MAGIC + frame(header_bytes, sealed) + outer


def sealed_to(recipient_prekey: Prekey, header_bytes: bytes, plaintext: bytes) -> bytes:
    return hpke_seal(recipient_prekey.suite, recipient_prekey.public, hpke_info(header_bytes),
                     plaintext)


def standard(h: EnvelopeHeader, sender: Party = XA, recipient: Party = XB) -> bytes:
    """An honest envelope, through the library's own ``seal``."""
    return seal(h, CONTENT_TYPE, PAYLOAD, sender_seed=sender.seed,
                recipient_public=recipient.prekey(h.suite).public).data


def garbage(size: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"rogatory/vectors/garbage/%d" % counter).digest()
        counter += 1
    return out[:size]


def patch_header_field(header_bytes: bytes, field: str, value: bytes) -> bytes:
    """Replace one field's JSON value in canonical header bytes (values hold no ',' or '}')."""
    start = header_bytes.index(f'"{field}":'.encode()) + len(field) + 3
    ends = [i for i in (header_bytes.find(b",", start), header_bytes.find(b"}", start)) if i > 0]
    return header_bytes[:start] + value + header_bytes[min(ends):]


# --- the receiving side as data ------------------------------------------------------------


def directory_entry(party: Party, *, revoked: bool = False) -> Vector:
    return {"authority": party.authority, "key_id": party.key_id,
            "public_b64": b64encode(party.public), "revoked": revoked}


def receiver(
    me: Party = XB,
    *,
    prekeys: list[Prekey] | None = None,
    strongest: Suite = Suite.HYBRID,
    seen: list[tuple[str, str]] | None = None,
    now: int = NOW,
) -> Vector:
    held = prekeys if prekeys is not None else [me.hybrid, me.x25519]
    return {
        "me": me.authority,
        "now": now,
        "max_skew": DEFAULT_MAX_SKEW,
        "strongest_suite": strongest.value,
        "prekeys": [p.to_json() for p in held],
        "seen": [{"sender": s, "id": i} for s, i in (seen or [])],
    }


def envelope_vector(
    description: str,
    data: bytes,
    expected: Vector,
    *,
    state: Vector | None = None,
    directory: list[Vector] | None = None,
    signers: tuple[Party, ...] = (XA,),
) -> Vector:
    if expected["outcome"] == "accepted":
        expected = {**expected, "envelope_hash": hashlib.sha256(data).hexdigest()}
    return {
        "description": description,
        "type": "envelope",
        "envelope_b64": b64encode(data),
        "receiver": state if state is not None else receiver(),
        "directory": directory if directory is not None else [directory_entry(p) for p in PARTIES],
        "signers": [{"authority": p.authority, "seed_label": p.seed_label,
                     "seed_hex": p.seed.hex()} for p in signers],
        "expected": expected,
    }


def rejected(code: str) -> Vector:
    return {"outcome": "rejected", "code": code}


def accepted(h: EnvelopeHeader) -> Vector:
    return {"outcome": "accepted", "message_id": h.id, "sender": h.sender,
            "content_type": CONTENT_TYPE, "payload_b64": b64encode(PAYLOAD)}


# --- envelope cases (HPKE-random unless noted) ---------------------------------------------


def v_accepted_hybrid() -> Vector:
    h = header()
    return envelope_vector(
        "A valid envelope from XA:MOJ to XB:MOJ sealed with the default hybrid suite "
        "(ML-KEM-768+X25519, HKDF-SHA256, ChaCha20-Poly1305). The receiver accepts it.",
        standard(h), accepted(h))


def v_accepted_x25519() -> Vector:
    h = header(suite=Suite.X25519)
    return envelope_vector(
        "A valid envelope sealed with the X25519 suite to a receiver whose strongest suite is "
        "X25519 (it publishes no hybrid prekey). The receiver accepts it.",
        standard(h), accepted(h),
        state=receiver(prekeys=[XB.x25519], strongest=Suite.X25519))


def v_tampered_header() -> Vector:
    data = standard(header())
    at = data.index(b"XA/2026/0001") + 11
    tampered = data[:at] + b"2" + data[at + 1 :]
    return envelope_vector(
        "One byte of the header changed in transit (case XA/2026/0001 became XA/2026/0002; the "
        "header is still well formed). The outer signature covers the header: refused.",
        tampered, rejected("envelope.signature_invalid"))


def v_tampered_ciphertext() -> Vector:
    data = bytearray(standard(header()))
    header_length = int.from_bytes(data[5:9], "big")
    sealed_start = 9 + header_length + 4
    sealed_length = int.from_bytes(data[sealed_start - 4 : sealed_start], "big")
    data[sealed_start + sealed_length // 2] ^= 0x01
    return envelope_vector(
        "One bit of the HPKE ciphertext flipped in transit. The outer signature covers "
        "SHA-256(sealed), so the receiver refuses before it decrypts anything.",
        bytes(data), rejected("envelope.signature_invalid"))


def v_wrong_recipient() -> Vector:
    return envelope_vector(
        "An envelope from XA:MOJ to XB:MOJ delivered to XC:PGO.",
        standard(header()), rejected("envelope.wrong_recipient"), state=receiver(XC))


def v_forwarded() -> Vector:
    original = header().encode()
    alices_package = package(original, XA)
    forward = header(XB, XC, name="forward-1").encode()
    data = envelope(forward, sealed_to(XC.hybrid, forward, alices_package), XB)
    return envelope_vector(
        "Surreptitious forwarding: XB:MOJ opened XA:MOJ's envelope, took XA's signed package "
        "as is and re-sealed it to XC:PGO under its own header and outer signature. The outer "
        "envelope is genuine, but the package inside was signed by XA:MOJ for XB:MOJ.",
        data, rejected("envelope.forwarded"), state=receiver(XC), signers=(XA, XB))


def v_header_mismatch() -> Vector:
    inner = header(name="inner-1", kind=Kind.WITHDRAWAL).encode()
    outer = header(name="outer-1").encode()
    data = envelope(outer, sealed_to(XB.hybrid, outer, package(inner, XA)), XA)
    return envelope_vector(
        "Splicing: same sender and recipient, but the header sealed inside the package is not "
        "byte-for-byte the outer header (another message id and kind).",
        data, rejected("envelope.header_mismatch"))


def v_replayed() -> Vector:
    h = header()
    return envelope_vector(
        "A valid envelope whose (sender, message id) pair the receiver has already accepted in "
        "a different envelope ('seen').",
        standard(h), rejected("envelope.replayed"),
        state=receiver(seen=[(h.sender, h.id)]))


def v_reflected() -> Vector:
    return envelope_vector(
        "XA:MOJ's own envelope to XB:MOJ, played back to XA:MOJ.",
        standard(header()), rejected("envelope.reflected"), state=receiver(XA))


def v_expired() -> Vector:
    h = header(created=NOW - 2 * DAY, expires=NOW - DAY)
    return envelope_vector(
        "An envelope that expired one day before 'now'.",
        standard(h), rejected("envelope.expired"))


def v_clock_skew() -> Vector:
    h = header(created=NOW + DEFAULT_MAX_SKEW + 1, expires=NOW + 7 * DAY)
    return envelope_vector(
        "An envelope created 301 s after the receiver's 'now'; the allowed skew is 300 s.",
        standard(h), rejected("envelope.clock_skew"))


def v_lifetime_invalid() -> Vector:
    h = header(expires=CREATED + MAX_LIFETIME + 1)
    return envelope_vector(
        "An envelope valid for 30 days and 1 second: longer than the protocol allows.",
        standard(h), rejected("envelope.lifetime_invalid"))


def v_unknown_sender() -> Vector:
    return envelope_vector(
        "A valid envelope from XA:MOJ to a receiver whose directory does not list XA:MOJ.",
        standard(header()), rejected("envelope.unknown_sender"),
        directory=[directory_entry(XB), directory_entry(XC)])


def v_key_revoked() -> Vector:
    return envelope_vector(
        "A valid envelope signed with a key the receiver's directory reports as revoked at "
        "'now' ('revoked': true).",
        standard(header()), rejected("envelope.key_revoked"),
        directory=[directory_entry(XA, revoked=True), directory_entry(XB), directory_entry(XC)])


def v_suite_downgrade() -> Vector:
    return envelope_vector(
        "An X25519-suite envelope to a node that still holds its X25519 prekey but whose "
        "strongest suite is the hybrid one.",
        standard(header(suite=Suite.X25519)), rejected("envelope.suite_downgrade"))


def v_suite_mismatch() -> Vector:
    h = header(recipient_prekey=XB.x25519.id).encode()
    data = envelope(h, sealed_to(XB.hybrid, h, package(h, XA)), XA)
    return envelope_vector(
        "The header names the hybrid suite but the receiver's X25519 prekey: the suite does "
        "not match the prekey and is not weaker than it.",
        data, rejected("envelope.suite_unsupported"))


def v_prekey_unknown() -> Vector:
    return envelope_vector(
        "An envelope sealed to XB:MOJ's first hybrid prekey after XB:MOJ rotated to a second "
        "one and destroyed the first.",
        standard(header()), rejected("envelope.prekey_unknown"),
        state=receiver(prekeys=[hybrid_prekey("XB:MOJ", 2), XB.x25519]))


def v_prekey_expired() -> Vector:
    old = replace(XB.hybrid, not_before=NOW - 40 * DAY, not_after=NOW - 30 * DAY)
    return envelope_vector(
        "An envelope created now, sealed to a prekey the receiver still holds but whose "
        "validity window ended 30 days ago.",
        standard(header()), rejected("envelope.prekey_expired"),
        state=receiver(prekeys=[old, XB.x25519]))


def v_inner_signature_invalid() -> Vector:
    h = header().encode()
    inner = bytearray(package(h, XA))
    inner[-1] ^= 0x01
    data = envelope(h, sealed_to(XB.hybrid, h, bytes(inner)), XA)
    return envelope_vector(
        "The outer envelope is genuine and decrypts, but the sender's signature inside the "
        "package (over header, content type and payload) does not verify.",
        data, rejected("envelope.inner_signature_invalid"))


# --- envelope cases that involve no HPKE sealing (fully deterministic) ----------------------


def signed_garbage(header_bytes: bytes | None = None) -> bytes:
    h = header_bytes if header_bytes is not None else header().encode()
    return envelope(h, garbage(1200), XA)


def v_decrypt_failed() -> Vector:
    return envelope_vector(
        "A correctly signed envelope whose sealed part is 1200 bytes that are not an HPKE "
        "ciphertext for the named prekey. Deterministic.",
        signed_garbage(), rejected("envelope.decrypt_failed"))


def v_bad_magic() -> Vector:
    return envelope_vector(
        "The decrypt-failed envelope with its magic changed to 'RGTX'. Deterministic.",
        b"RGTX" + signed_garbage()[4:], rejected("envelope.malformed"))


def v_version_unsupported() -> Vector:
    data = signed_garbage()
    return envelope_vector(
        "The decrypt-failed envelope with its version byte set to 0x02. Deterministic.",
        data[:4] + b"\x02" + data[5:], rejected("envelope.version_unsupported"))


def v_trailing_bytes() -> Vector:
    return envelope_vector(
        "The decrypt-failed envelope with one 0x00 byte appended after the signature. "
        "Deterministic.",
        signed_garbage() + b"\x00", rejected("envelope.malformed"))


def v_truncated() -> Vector:
    return envelope_vector(
        "The decrypt-failed envelope with the last byte of its signature cut off. "
        "Deterministic.",
        signed_garbage()[:-1], rejected("envelope.malformed"))


def v_kind_unknown() -> Vector:
    h = patch_header_field(header().encode(), "kind", b'"letter"')
    return envelope_vector(
        "A signed envelope whose header kind is 'letter', which protocol version 1 does not "
        "define. Deterministic.",
        signed_garbage(h), rejected("envelope.kind_unknown"))


def v_suite_unknown() -> Vector:
    h = patch_header_field(header().encode(), "suite", b'"x448-hkdfsha512-aes256gcm"')
    return envelope_vector(
        "A signed envelope whose header names an HPKE suite protocol version 1 does not "
        "define. Deterministic.",
        signed_garbage(h), rejected("envelope.suite_unsupported"))


def v_header_non_canonical() -> Vector:
    h = json.dumps(header().to_json(), sort_keys=True).encode()  # ", " and ": " separators
    return envelope_vector(
        "A signed envelope whose header is valid JSON with the right fields but not canonical "
        "(spaces after ',' and ':'). Deterministic.",
        signed_garbage(h), rejected("envelope.malformed"))


def v_header_version() -> Vector:
    h = patch_header_field(header().encode(), "v", b"true")
    return envelope_vector(
        "A signed envelope whose header has \"v\":true instead of \"v\":1. Deterministic.",
        signed_garbage(h), rejected("envelope.version_unsupported"))


# --- receipts (deterministic) --------------------------------------------------------------

EXAMPLE_ENVELOPE_HASH = hashlib.sha256(b"rogatory/vectors/example-envelope").hexdigest()


def receipt_vector(description: str, data: bytes, signer: Party, expected: Vector) -> Vector:
    return {
        "description": description,
        "type": "receipt",
        "receipt_b64": b64encode(data),
        "signer": {"authority": signer.authority, "seed_label": signer.seed_label,
                   "seed_hex": signer.seed.hex(), "public_b64": b64encode(signer.public),
                   "key_id": signer.key_id},
        "expected": expected,
    }


def _receipt(status: ReceiptStatus, *, seed: bytes | None = None, **changes: Any) -> bytes:
    args: dict[str, Any] = {
        "status": status,
        "envelope_hash": EXAMPLE_ENVELOPE_HASH,
        "message_id": message_id("request-1"),
        "sender": XA.authority,
        "receiver": XB.authority,
        "receiver_key": XB.key_id,
        "received": NOW,
        "receiver_seed": seed if seed is not None else XB.seed,
    }
    args.update(changes)
    return sign_receipt(**args).data


def _verified(data: bytes) -> Vector:
    body = data[9:-64]
    return {"outcome": "verified", "body": json.loads(body)}


def r_accepted() -> Vector:
    data = _receipt(ReceiptStatus.ACCEPTED)
    return receipt_vector(
        "XB:MOJ's signed acceptance of the envelope with the given hash from XA:MOJ.",
        data, XB, _verified(data))


def r_rejected() -> Vector:
    data = _receipt(ReceiptStatus.REJECTED, code="envelope.replayed",
                    detail="message id already used")
    return receipt_vector(
        "XB:MOJ's signed refusal of an envelope, with the stable error code envelope.replayed.",
        data, XB, _verified(data))


def r_rejected_unread() -> Vector:
    data = _receipt(ReceiptStatus.REJECTED, envelope_hash="", message_id="", sender="",
                    code="transport.body_too_large", detail="the limit is 67108864 bytes")
    return receipt_vector(
        "A signed refusal of a body that was never read in full: envelope, id and from are "
        "empty strings.",
        data, XB, _verified(data))


def r_tampered() -> Vector:
    data = _receipt(ReceiptStatus.ACCEPTED)
    at = data.index(str(NOW).encode()) + 9
    tampered = data[:at] + b"1" + data[at + 1 :]
    return receipt_vector(
        "The accepted receipt with one digit of 'received' changed: it parses, but the "
        "signature does not verify.",
        tampered, XB, {"outcome": "rejected", "code": "receipt.signature_invalid"})


def r_wrong_signer() -> Vector:
    data = _receipt(ReceiptStatus.ACCEPTED, seed=XC.seed)
    return receipt_vector(
        "A receipt that claims to come from XB:MOJ (and names XB:MOJ's key id) but was signed "
        "by XC:PGO's key; checked against XB:MOJ's public key.",
        data, XB, {"outcome": "rejected", "code": "receipt.signature_invalid"})


def r_code_on_acceptance() -> Vector:
    unsigned = json.loads(_receipt(ReceiptStatus.ACCEPTED)[9:-64])
    unsigned["code"] = "envelope.replayed"
    body = canonical_json(unsigned)
    data = b"RGTR\x01" + frame(body) + sign(XB.seed, LABELS["receipt"], body)
    return receipt_vector(
        "A correctly signed receipt whose status is 'accepted' but which carries an error "
        "code: ill-formed.",
        data, XB, {"outcome": "rejected", "code": "receipt.malformed"})


# --- canonical JSON, base64url, framing, PAE (deterministic) --------------------------------


def cj_accept(description: str, value: Any) -> Vector:
    data = canonical_json(value)
    return {"description": description, "type": "canonical-json", "value": value,
            "canonical_text": data.decode("utf-8"), "canonical_hex": data.hex(),
            "expected": {"outcome": "accepted"}}


def cj_reject(description: str, data: bytes, code: str) -> Vector:
    return {"description": description, "type": "canonical-json",
            "input_text": data.decode("utf-8", "replace"), "input_hex": data.hex(),
            "expected": {"outcome": "rejected", "code": code}}


def cj_header() -> Vector:
    return cj_accept("The canonical JSON of an envelope header: keys in code-point order, no "
                     "whitespace.", header().to_json())


def cj_strings() -> Vector:
    return cj_accept(
        "String escaping: '\"' and '\\\\' and the controls \\b \\f \\n \\r \\t get short "
        "escapes, other controls below 0x20 \\u00XX in lower-case hex; everything else (DEL, "
        "'/', U+2028 and all non-ASCII included) is raw UTF-8.",
        {"controls": "\x00\x01\x08\x09\x0a\x0c\x0d\x1f\x7f", "quotes": "\"\\/",
         "unicode": "é€😀\u2028"})


def cj_order() -> Vector:
    return cj_accept(
        "Key order and scalar spellings: keys sorted by code point ('' < 'A' < '_' < 'a' < "
        "'aa' < 'b'), integers in plain decimal, true/false/null, nested containers.",
        {"b": [], "aa": {}, "a": [0, -1, 9007199254740991, -9007199254740991], "_": True,
         "A": False, "": None})


def cj_reject_whitespace() -> Vector:
    return cj_reject("Whitespace between tokens is not canonical.", b'{"a": 1}',
                     "encoding.non_canonical")


def cj_reject_unsorted() -> Vector:
    return cj_reject("Keys out of order are not canonical.", b'{"b":1,"a":2}',
                     "encoding.non_canonical")


def cj_reject_escape() -> Vector:
    return cj_reject("An escape where a raw character is canonical ('\\u0041' for 'A').",
                     b'"\\u0041"', "encoding.non_canonical")


def cj_reject_upper_hex() -> Vector:
    return cj_reject("Control-character escapes use lower-case hex.", b'"\\u001F"',
                     "encoding.non_canonical")


def cj_reject_negative_zero() -> Vector:
    return cj_reject("'-0' is not the canonical spelling of 0.", b"-0", "encoding.non_canonical")


def cj_reject_float() -> Vector:
    return cj_reject("Numbers with a fraction or exponent are refused outright.", b'{"n":1.0}',
                     "encoding.malformed")


def cj_reject_duplicate() -> Vector:
    return cj_reject("Duplicate object keys are refused.", b'{"a":1,"a":1}',
                     "encoding.malformed")


def cj_reject_big_integer() -> Vector:
    return cj_reject("Integers outside +-(2^53-1) are refused.", b"[9007199254740992]",
                     "encoding.malformed")


def b64_vector(description: str, text: str, expected: Vector) -> Vector:
    return {"description": description, "type": "base64url", "text": text,
            "expected": expected}


def b64_example() -> Vector:
    data = bytes([0xFB, 0xFF, 0xBF, 0x00, 0x10])
    return b64_vector("base64url (RFC 4648 section 5) without padding: '-' and '_', no '='.",
                      b64encode(data), {"outcome": "accepted", "bytes_hex": data.hex()})


def b64_padding() -> Vector:
    return b64_vector("Padding is refused: 'Zg==' must be written 'Zg'.", "Zg==",
                      {"outcome": "rejected", "code": "encoding.malformed"})


def b64_spare_bits() -> Vector:
    return b64_vector("Non-zero spare bits in the last character are refused ('Zh' would "
                      "decode to the same byte as 'Zg').", "Zh",
                      {"outcome": "rejected", "code": "encoding.non_canonical"})


def b64_standard_alphabet() -> Vector:
    return b64_vector("The standard alphabet's '+' and '/' are refused.", "+_8",
                      {"outcome": "rejected", "code": "encoding.non_canonical"})


def frame_example() -> Vector:
    parts = [b"", b"ab", b"\x00" * 3]
    return {"description": "frame(): each part preceded by its length as a 4-byte big-endian "
            "unsigned integer, concatenated.", "type": "frame",
            "parts_hex": [p.hex() for p in parts], "framed_hex": frame(*parts).hex()}


def pae_vector(description: str, label: str, body: bytes) -> Vector:
    return {"description": description, "type": "pae", "label": label,
            "body_hex": body.hex(), "pae_hex": pae(label, body).hex(),
            "pae_text": pae(label, body).decode("utf-8", "replace")}


def pae_receipt() -> Vector:
    body = _receipt(ReceiptStatus.ACCEPTED)[9:-64]
    return pae_vector("PAE of the receipt-accepted body under the receipt label: "
                      "'DSSEv1' SP len(label) SP label SP len(body) SP body.",
                      LABELS["receipt"], body)


def pae_empty() -> Vector:
    return pae_vector("PAE with a non-ASCII type and an empty body: lengths count UTF-8 bytes.",
                      "é", b"")


def signature_vector(name: str) -> Callable[[], Vector]:
    def build() -> Vector:
        label = LABELS[name]
        body = f"example body for {label}".encode()
        signature = sign(XA.seed, label, body)
        return {
            "description": f"Ed25519 over PAE('{label}', body) with XA:MOJ's identity key. "
            "Ed25519 is deterministic, so the signature is reproducible byte for byte; it "
            "does not verify under any other label.",
            "type": "signature",
            "seed_label": XA.seed_label,
            "seed_hex": XA.seed.hex(),
            "public_b64": b64encode(XA.public),
            "label": label,
            "body_hex": body.hex(),
            "signed_hex": pae(label, body).hex(),
            "signature_b64": b64encode(signature),
            "invalid_under": sorted(v for v in LABELS.values() if v != label),
        }

    return build


def key_id_identity() -> Vector:
    return {"description": "Key id of an Ed25519 identity key: the first 24 hex digits (12 "
            "bytes) of SHA-256 over the 32-byte public key.", "type": "key-id",
            "key_type": "ed25519", "seed_label": XA.seed_label, "private_b64": b64encode(XA.seed),
            "public_b64": b64encode(XA.public), "key_id": XA.key_id}


def key_id_prekey(suite: Suite) -> Callable[[], Vector]:
    def build() -> Vector:
        prekey = XB.prekey(suite)
        layout = ("ML-KEM-768 seed (64) || X25519 private (32); public = ML-KEM-768 "
                  "encapsulation key (1184) || X25519 public (32)" if suite is Suite.HYBRID
                  else "X25519 private (32); public = X25519 public (32)")
        return {"description": f"Key id of an {suite.value} prekey. Private layout: {layout}.",
                "type": "key-id", "key_type": suite.value,
                "private_b64": b64encode(prekey.private), "public_b64": b64encode(prekey.public),
                "key_id": prekey.id}

    return build


def header_example() -> Vector:
    h = header()
    data = h.encode()
    return {"description": "An envelope header, its canonical bytes, their SHA-256, and the "
            "HPKE info string bound to them.", "type": "header", "fields": h.to_json(),
            "header_b64": b64encode(data), "sha256_hex": hashlib.sha256(data).hexdigest(),
            "hpke_info_hex": hpke_info(data).hex()}


# --- audit log: entries, Merkle tree, checkpoints, cosignatures, proofs (deterministic) -------

RECEIPT_LOG_INDEX = 3
COSIGNED_AT = {"XA:MOJ": NOW + 300, "XC:PGO": NOW + 360}


def witness_name(authority: str) -> str:
    return f"rogatory/witness/{authority}"


def logged_receipt(**changes: Any) -> Receipt:
    """XB:MOJ's acceptance of request-1 that records its log position (PROTOCOL.md 12.3)."""
    return parse_receipt(_receipt(ReceiptStatus.ACCEPTED, log_index=RECEIPT_LOG_INDEX, **changes))


def log_entries(received: Receipt | None = None) -> list[tuple[EntryType, bytes]]:
    """XB:MOJ's audit log: seven entries, the receipt's envelope-received entry at index 3."""
    receipt = logged_receipt()
    sent = {"envelope": hashlib.sha256(b"rogatory/vectors/sent-envelope").hexdigest(),
            "id": message_id("request-2"), "from": XB.authority, "to": XC.authority}
    fields: list[tuple[EntryType, dict[str, Any]]] = [
        (EntryType.KEYS_ROTATED, {"identity": XB.key_id,
                                  "prekeys": sorted([XB.hybrid.id, XB.x25519.id]),
                                  "at": NOW - 2 * DAY}),
        (EntryType.DIRECTORY_ADOPTED, {
            "serial": 1, "digest": hashlib.sha256(b"rogatory/vectors/directory/1").hexdigest(),
            "at": NOW - 2 * DAY}),
        (EntryType.ENVELOPE_SENT, {**sent, "kind": Kind.REQUEST.value, "created": NOW - 3600,
                                   "expires": NOW - 3600 + 7 * DAY, "at": NOW - 3600}),
    ]
    entries = [(entry_type, encode_entry(entry_type, body)) for entry_type, body in fields]
    entries.append((EntryType.ENVELOPE_RECEIVED, received_entry(received or receipt)))
    more: list[tuple[EntryType, dict[str, Any]]] = [
        (EntryType.RECEIPT_ISSUED, {
            "envelope": receipt.envelope_hash, "id": receipt.message_id,
            "from": receipt.sender, "to": receipt.receiver, "receipt": receipt.digest,
            "at": NOW}),
        (EntryType.RECEIPT_RECEIVED, {
            **sent, "receipt": hashlib.sha256(b"rogatory/vectors/receipt-from-XC").hexdigest(),
            "status": "accepted", "code": "", "at": NOW + 60}),
        (EntryType.DIRECTORY_ADOPTED, {
            "serial": 2, "digest": hashlib.sha256(b"rogatory/vectors/directory/2").hexdigest(),
            "at": NOW + 120}),
    ]
    entries += [(entry_type, encode_entry(entry_type, body)) for entry_type, body in more]
    return entries


def tree(entries: list[bytes]) -> dict[merkle.Key, bytes]:
    """The stored perfect subtrees of a log of these entries, appended one at a time."""
    nodes: dict[merkle.Key, bytes] = {}
    for index, entry in enumerate(entries):
        wanted = {key: nodes[key] for key in merkle.append_keys(index)}
        nodes.update(merkle.appended_nodes(index, merkle.leaf_hash(entry), wanted))
    return nodes


def log_tree(received: Receipt | None = None) -> tuple[list[bytes], dict[merkle.Key, bytes]]:
    entries = [entry for _, entry in log_entries(received)]
    return entries, tree(entries)


def log_checkpoint(size: int, received: Receipt | None = None) -> Checkpoint:
    _, nodes = log_tree(received)
    return Checkpoint(log_origin(XB.authority), size, merkle.root_from(size, nodes))


def log_signer(party: Party = XB) -> Vector:
    name = log_origin(party.authority)
    return {"authority": party.authority, "name": name, "seed_label": party.seed_label,
            "seed_hex": party.seed.hex(), "public_b64": b64encode(party.public),
            "note_key_id_hex": key_hash(name, ALG_ED25519, party.public).hex(),
            "vkey": verifier_key(name, party.public)}


def witness_signer(party: Party) -> Vector:
    name = witness_name(party.authority)
    return {"authority": party.authority, "name": name, "seed_label": party.seed_label,
            "seed_hex": party.seed.hex(), "public_b64": b64encode(party.public),
            "note_key_id_hex": key_hash(name, ALG_COSIGNATURE_V1, party.public).hex()}


def checkpoint_json(checkpoint: Checkpoint) -> Vector:
    return {"origin": checkpoint.origin, "size": checkpoint.size,
            "root_hex": checkpoint.root.hex()}


def user_entries() -> list[tuple[EntryType, bytes]]:
    """Entries of the web interface's users and of overrides, kept out of the example log (and
    its proofs)."""
    request = message_id("request-1")
    fields: list[tuple[EntryType, dict[str, Any]]] = [
        (EntryType.USER_LOGIN, {"user": "c.martin", "outcome": "success", "at": NOW + 30}),
        (EntryType.PACKAGE_OPENED, {
            "envelope": hashlib.sha256(b"rogatory/vectors/opened-envelope").hexdigest(),
            "id": request, "from": XC.authority, "by": "user:c.martin", "at": NOW + 40}),
        (EntryType.CHECK_OVERRIDDEN, {
            "envelope": hashlib.sha256(b"rogatory/vectors/overridden-envelope").hexdigest(),
            "id": message_id("request-incomplete"), "to": XC.authority, "gaps": 2,
            "language": "accepted",
            "reason": hashlib.sha256(b"the account numbers follow by phone").hexdigest(),
            "by": "user:c.martin", "at": NOW + 50}),
    ]
    return [(entry_type, encode_entry(entry_type, body)) for entry_type, body in fields]


def log_entry_vector(entry_type: EntryType) -> Callable[[], Vector]:
    def build() -> Vector:
        found = [(i, e) for i, (t, e) in enumerate(log_entries()) if t is entry_type]
        if found:
            index, data = found[0]
            where = f"entry {index} of XB:MOJ's example log"
        else:
            data = next(e for t, e in user_entries() if t is entry_type)
            where = "not part of XB:MOJ's example log"
        body = json.loads(data)
        note = (" Built from the receipt's envelope, id, from, to and received alone, so the "
                "sender can rebuild it." if entry_type is EntryType.ENVELOPE_RECEIVED else "")
        return {"description": f"A {entry_type.value} audit log entry ({where}): canonical "
                "JSON with exactly this type's fields, and its "
                f"RFC 9162 leaf hash SHA-256(0x00 || entry).{note}",
                "type": "log-entry", "entry_type": entry_type.value,
                "fields": {k: v for k, v in body.items() if k not in ("v", "type")},
                "entry_text": data.decode("utf-8"), "entry_hex": data.hex(),
                "leaf_hash_hex": merkle.leaf_hash(data).hex()}

    return build


def merkle_log() -> Vector:
    entries, nodes = log_tree()
    size, index, old = len(entries), RECEIPT_LOG_INDEX, RECEIPT_LOG_INDEX + 1
    return {
        "description": "XB:MOJ's example audit log of seven entries (one of each type, the "
        "receipt's envelope-received entry at index 3): leaf hashes, the RFC 9162 root of every "
        "prefix (size 0 is SHA-256 of nothing), the inclusion proof of entry 3 in the tree of 7 "
        "and the consistency proof from size 4 (the receipt's checkpoint) to 7.",
        "type": "merkle",
        "entries_hex": [entry.hex() for entry in entries],
        "leaf_hashes_hex": [merkle.leaf_hash(entry).hex() for entry in entries],
        "roots_hex": [merkle.root_from(n, nodes).hex() for n in range(size + 1)],
        "root_hex": merkle.root_from(size, nodes).hex(),
        "inclusion": {"index": index, "size": size,
                      "proof_hex": [h.hex() for h in merkle.inclusion_proof(index, size, nodes)]},
        "consistency": {"old_size": old, "new_size": size,
                        "old_root_hex": merkle.root_from(old, nodes).hex(),
                        "new_root_hex": merkle.root_from(size, nodes).hex(),
                        "proof_hex": [h.hex() for h in merkle.consistency_proof(old, size,
                                                                                nodes)]},
    }


def signed_checkpoint(size: int = 7) -> bytes:
    return sign_checkpoint(log_checkpoint(size), log_origin(XB.authority), XB.seed)


def cosigned_checkpoint() -> bytes:
    checkpoint = log_checkpoint(7)
    lines = [cosign(checkpoint, witness_name(p.authority), p.seed, COSIGNED_AT[p.authority])
             for p in (XA, XC)]
    return with_signatures(signed_checkpoint(7), lines)


def checkpoint_signed() -> Vector:
    note = signed_checkpoint(7)
    return {"description": "XB:MOJ's signed checkpoint of its example log at size 7: a C2SP "
            "tlog-checkpoint (origin, size, standard base64 root) in a C2SP signed note, "
            "Ed25519 (type 0x01) over the text, by XB:MOJ's identity key under the name "
            "rogatory/log/XB:MOJ, which is also the origin.",
            "type": "checkpoint", "signer": log_signer(), "note_text": note.decode("utf-8"),
            "expected": {"outcome": "verified", **checkpoint_json(log_checkpoint(7))}}


def checkpoint_cosigned() -> Vector:
    note = cosigned_checkpoint()
    checkpoint = log_checkpoint(7)
    witnesses = []
    for party in (XA, XC):
        at = COSIGNED_AT[party.authority]
        message = b"cosignature/v1\ntime %d\n" % at + checkpoint.text()
        witnesses.append({**witness_signer(party), "timestamp": at,
                          "cosigned_message_text": message.decode("utf-8")})
    return {"description": "The size-7 checkpoint with two witness cosignatures (C2SP "
            "tlog-cosignature, cosignature/v1, type 0x04) by XA:MOJ and XC:PGO under "
            "rogatory/witness/<authority>: each is an 8-byte big-endian time and an Ed25519 "
            "signature over 'cosignature/v1', 'time <t>' and the checkpoint text.",
            "type": "cosigned-checkpoint", "log": log_signer(), "witnesses": witnesses,
            "note_text": note.decode("utf-8"),
            "expected": {"outcome": "verified", **checkpoint_json(checkpoint)}}


def tlog_proof_example() -> Vector:
    entries, nodes = log_tree()
    index, size = 5, 7
    hashes = merkle.inclusion_proof(index, size, nodes)
    proof = TlogProof(index, tuple(hashes), cosigned_checkpoint()).encode()
    return {"description": "A C2SP tlog-proof of entry 5 (receipt-received) of XB:MOJ's log "
            "against the cosigned size-7 checkpoint: header line, 'index 5', the inclusion "
            "proof hashes in standard base64, a blank line, then the checkpoint verbatim.",
            "type": "tlog-proof", "log": log_signer(), "proof_text": proof.decode("utf-8"),
            "entry_hex": entries[index].hex(),
            "expected": {"outcome": "verified", "index": index,
                         "hashes_hex": [h.hex() for h in hashes],
                         **checkpoint_json(log_checkpoint(size))}}


def receipt_proof_vector(description: str, receipt: Receipt, expected: Vector) -> Vector:
    return {"description": description, "type": "receipt-proof",
            "receipt_b64": b64encode(receipt.data),
            "receiver": {**log_signer(), "key_id": XB.key_id},
            "entry_hex": received_entry(receipt).hex(), "expected": expected}


def receipt_proof(*, index: int = RECEIPT_LOG_INDEX, seed: bytes | None = None,
                  received: Receipt | None = None) -> TlogProof:
    """The tlog-proof of ``index`` against XB:MOJ's checkpoint at size log_index + 1."""
    size = RECEIPT_LOG_INDEX + 1
    _, nodes = log_tree(received)
    checkpoint = log_checkpoint(size, received)
    signed = sign_checkpoint(checkpoint, log_origin(XB.authority),
                             seed if seed is not None else XB.seed)
    return TlogProof(index, tuple(merkle.inclusion_proof(index, size, nodes)), signed)


def rp_accepted() -> Vector:
    receipt = logged_receipt().with_proof(receipt_proof().encode())
    return receipt_proof_vector(
        "XB:MOJ's acceptance with log_index 3, followed by the framed tlog-proof of its "
        "envelope-received entry against its checkpoint of size 4. The sender rebuilds the "
        "entry from the receipt, opens the checkpoint with XB:MOJ's identity key under "
        "rogatory/log/XB:MOJ and verifies the inclusion proof.",
        receipt, {"outcome": "verified", "log_index": RECEIPT_LOG_INDEX,
                  **checkpoint_json(log_checkpoint(RECEIPT_LOG_INDEX + 1))})


def rp_wrong_index() -> Vector:
    receipt = logged_receipt().with_proof(receipt_proof(index=2).encode())
    return receipt_proof_vector(
        "The acceptance says log_index 3, but the attached tlog-proof is the genuine proof of "
        "entry 2 (index line 2) against the genuine checkpoint.",
        receipt, {"outcome": "rejected", "code": "log.proof_invalid"})


def rp_wrong_key() -> Vector:
    receipt = logged_receipt().with_proof(receipt_proof(seed=XC.seed).encode())
    return receipt_proof_vector(
        "The right proof and checkpoint text, but the checkpoint is signed under "
        "rogatory/log/XB:MOJ by XC:PGO's identity key, not XB:MOJ's.",
        receipt, {"outcome": "rejected", "code": "log.signature_invalid"})


def rp_tampered_hash() -> Vector:
    genuine = receipt_proof()
    first = bytes([genuine.hashes[0][0] ^ 0x01]) + genuine.hashes[0][1:]
    tampered = replace(genuine, hashes=(first, *genuine.hashes[1:]))
    receipt = logged_receipt().with_proof(tampered.encode())
    return receipt_proof_vector(
        "The genuine proof with one bit of its first hash flipped: it no longer leads to the "
        "checkpoint's root.",
        receipt, {"outcome": "rejected", "code": "log.proof_invalid"})


def rp_entry_mismatch() -> Vector:
    logged = logged_receipt(received=NOW + 1)  # what the receiver put in its log
    receipt = logged_receipt().with_proof(receipt_proof(received=logged).encode())
    return receipt_proof_vector(
        "The receiver's log holds, at index 3, an envelope-received entry whose 'received' "
        "is one second later than the receipt's. The proof and checkpoint are genuine for that "
        "log, but the entry the sender rebuilds from the receipt is not in it.",
        receipt, {"outcome": "rejected", "code": "log.proof_invalid"})


@dataclass(frozen=True)
class Case:
    build: Callable[[], Vector]
    random: bool = False


# --- case messages (deterministic) ------------------------------------------------------------


def cm_accept(description: str, kind: Kind, fields: dict[str, Any]) -> Vector:
    data = canonical_json({"v": 1, "kind": kind.value, **fields})
    return {"description": description, "type": "case-message", "envelope_kind": kind.value,
            "body_text": data.decode("utf-8"), "body_hex": data.hex(),
            "expected": {"outcome": "accepted"}}


def cm_reject(description: str, kind: Kind, body: dict[str, Any], code: str) -> Vector:
    data = canonical_json(body)
    return {"description": description, "type": "case-message", "envelope_kind": kind.value,
            "body_text": data.decode("utf-8"), "body_hex": data.hex(),
            "expected": {"outcome": "rejected", "code": code}}


def cm_partial_outcome() -> Vector:
    return cm_accept("A partial outcome: results returned, the case stays open "
                     "(`final` false; a final outcome has `final` true).", Kind.OUTCOME,
                     {"final": False, "summary": "Statements of account 1 returned."})


def cm_refusal() -> Vector:
    return cm_accept("A refusal names its grounds from the table of PROTOCOL.md section 14 and "
                     "explains them (UNTOC art. 18(23)).", Kind.REFUSAL,
                     {"grounds": ["dual-criminality", "lapse-of-time"],
                      "explanation": "The conduct is not an offence here, and time-barred."})


def cm_spontaneous() -> Vector:
    return cm_accept("Spontaneous information with its conditions: withheld by the receiving "
                     "node until it accepts them.", Kind.SPONTANEOUS_INFORMATION,
                     {"conditions": {"confidential": True,
                                     "designated_receiver": "Head of the unit",
                                     "use_restrictions": ["Only for investigation 2025/0142"]},
                      "information": "Account 2 received EUR 1.2 million."})


def cm_forbidden_ground() -> Vector:
    return cm_reject("Bank secrecy is not a ground for refusal (UNTOC art. 18(8)); the body is "
                     "refused.", Kind.REFUSAL,
                     {"v": 1, "kind": "refusal", "grounds": ["bank-secrecy"],
                      "explanation": "The bank invokes secrecy."}, "case.message_malformed")


def cm_kind_mismatch() -> Vector:
    return cm_reject("A body whose kind differs from the envelope header's kind is refused, so a "
                     "body cannot be replayed under another kind.", Kind.STATUS,
                     {"v": 1, "kind": "outcome", "final": True, "summary": "Done."},
                     "case.message_malformed")


CASES: dict[str, Case] = {
    "envelope-accepted-hybrid": Case(v_accepted_hybrid, True),
    "envelope-accepted-x25519": Case(v_accepted_x25519, True),
    "envelope-signature-invalid-header": Case(v_tampered_header, True),
    "envelope-signature-invalid-ciphertext": Case(v_tampered_ciphertext, True),
    "envelope-wrong-recipient": Case(v_wrong_recipient, True),
    "envelope-forwarded": Case(v_forwarded, True),
    "envelope-header-mismatch": Case(v_header_mismatch, True),
    "envelope-replayed": Case(v_replayed, True),
    "envelope-reflected": Case(v_reflected, True),
    "envelope-expired": Case(v_expired, True),
    "envelope-clock-skew": Case(v_clock_skew, True),
    "envelope-lifetime-invalid": Case(v_lifetime_invalid, True),
    "envelope-unknown-sender": Case(v_unknown_sender, True),
    "envelope-key-revoked": Case(v_key_revoked, True),
    "envelope-suite-downgrade": Case(v_suite_downgrade, True),
    "envelope-suite-mismatch": Case(v_suite_mismatch, True),
    "envelope-prekey-unknown": Case(v_prekey_unknown, True),
    "envelope-prekey-expired": Case(v_prekey_expired, True),
    "envelope-inner-signature-invalid": Case(v_inner_signature_invalid, True),
    "envelope-decrypt-failed": Case(v_decrypt_failed),
    "envelope-malformed-magic": Case(v_bad_magic),
    "envelope-malformed-trailing-bytes": Case(v_trailing_bytes),
    "envelope-malformed-truncated": Case(v_truncated),
    "envelope-malformed-header-non-canonical": Case(v_header_non_canonical),
    "envelope-version-unsupported": Case(v_version_unsupported),
    "envelope-header-version-true": Case(v_header_version),
    "envelope-kind-unknown": Case(v_kind_unknown),
    "envelope-suite-unknown": Case(v_suite_unknown),
    "receipt-accepted": Case(r_accepted),
    "receipt-rejected": Case(r_rejected),
    "receipt-rejected-unread-body": Case(r_rejected_unread),
    "receipt-tampered": Case(r_tampered),
    "receipt-wrong-signer": Case(r_wrong_signer),
    "receipt-malformed-code-on-acceptance": Case(r_code_on_acceptance),
    "canonical-json-header": Case(cj_header),
    "canonical-json-strings": Case(cj_strings),
    "canonical-json-key-order": Case(cj_order),
    "canonical-json-reject-whitespace": Case(cj_reject_whitespace),
    "canonical-json-reject-unsorted": Case(cj_reject_unsorted),
    "canonical-json-reject-needless-escape": Case(cj_reject_escape),
    "canonical-json-reject-upper-hex-escape": Case(cj_reject_upper_hex),
    "canonical-json-reject-negative-zero": Case(cj_reject_negative_zero),
    "canonical-json-reject-float": Case(cj_reject_float),
    "canonical-json-reject-duplicate-key": Case(cj_reject_duplicate),
    "canonical-json-reject-big-integer": Case(cj_reject_big_integer),
    "base64url-example": Case(b64_example),
    "base64url-reject-padding": Case(b64_padding),
    "base64url-reject-spare-bits": Case(b64_spare_bits),
    "base64url-reject-standard-alphabet": Case(b64_standard_alphabet),
    "frame-example": Case(frame_example),
    "pae-receipt": Case(pae_receipt),
    "pae-non-ascii-type-empty-body": Case(pae_empty),
    **{f"signature-{name}": Case(signature_vector(name)) for name in LABELS},
    "key-id-identity": Case(key_id_identity),
    "key-id-prekey-hybrid": Case(key_id_prekey(Suite.HYBRID)),
    "key-id-prekey-x25519": Case(key_id_prekey(Suite.X25519)),
    "header-example": Case(header_example),
    **{f"log-entry-{t.value}": Case(log_entry_vector(t)) for t in EntryType},
    "merkle-log": Case(merkle_log),
    "checkpoint-signed": Case(checkpoint_signed),
    "checkpoint-cosigned": Case(checkpoint_cosigned),
    "tlog-proof-example": Case(tlog_proof_example),
    "receipt-proof-accepted": Case(rp_accepted),
    "receipt-proof-wrong-index": Case(rp_wrong_index),
    "receipt-proof-wrong-key": Case(rp_wrong_key),
    "receipt-proof-tampered-hash": Case(rp_tampered_hash),
    "receipt-proof-entry-mismatch": Case(rp_entry_mismatch),
    "case-message-partial-outcome": Case(cm_partial_outcome),
    "case-message-refusal": Case(cm_refusal),
    "case-message-spontaneous": Case(cm_spontaneous),
    "case-message-reject-forbidden-ground": Case(cm_forbidden_ground),
    "case-message-reject-kind-mismatch": Case(cm_kind_mismatch),
}


def comparable(vector: Vector) -> Vector:
    """A vector without the HPKE-random parts, for comparing a rebuilt vector with a stored one."""
    rest = {k: v for k, v in vector.items() if k not in RANDOM_FIELDS}
    expected = rest.get("expected")
    if isinstance(expected, dict):
        rest["expected"] = {k: v for k, v in expected.items() if k not in RANDOM_FIELDS}
    return rest


def render(vector: Vector) -> str:
    return json.dumps(vector, indent=2, ensure_ascii=True) + "\n"  # files stay pure ASCII


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true",
                        help="rewrite existing files (new random envelope bytes)")
    parser.add_argument("--check", action="store_true",
                        help="compare the files with freshly built vectors; write nothing")
    parser.add_argument("--out", type=Path, default=VECTORS)
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    problems = 0
    for name, case in CASES.items():
        path = out / f"{name}.json"
        if args.check:
            if not path.exists():
                print(f"missing  {path.name}")
                problems += 1
                continue
            text = path.read_text(encoding="utf-8")
            try:
                stored = json.loads(text)
            except ValueError:
                stored = None
            fresh = case.build()
            if case.random:
                same = isinstance(stored, dict) and comparable(stored) == comparable(fresh)
            else:
                same = text == render(fresh)
            if not same:
                print(f"differs  {path.name}")
                problems += 1
            continue
        if path.exists() and not args.force:
            continue
        path.write_text(render(case.build()), encoding="utf-8")
        print(f"wrote    {path.name}")
    if args.check:
        extra = sorted({p.stem for p in out.glob("*.json")} - set(CASES))
        for name in extra:
            print(f"unknown  {name}.json")
        problems += len(extra)
        print("ok" if not problems else f"{problems} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
