"""Envelope throughput next to the raw cryptographic limit measured in the same run.

For each suite and payload size this measures, on one thread:

- ``seal`` and the full ``open_envelope`` (parse, directory lookup, outer signature, recipient
  and prekey checks, time checks, replay callback, HPKE open, header comparison, inner
  signature);
- raw HPKE seal and open of a package of the same size through ``protocol.suites``;
- raw Ed25519 sign and verify (PyNaCl, key objects made once) of a message of the size the
  outer signature covers (short) and of the size the inner signature covers (the package).

The raw limit for sealing is ``1 / (1/hpke_seal + 1/sign_short + 1/sign_package)``, for opening
``1 / (1/hpke_open + 1/verify_short + 1/verify_package)``: the two signatures an envelope carries
plus its one HPKE operation, and nothing else. ``ratio`` is envelope rate / raw limit, so
``1 - ratio`` is the share of the time spent outside those primitives (framing, copies, the
SHA-256 of the sealed part, key objects rebuilt from raw bytes, the checks themselves).

Run: ``python bench/envelope.py`` (about 40 s with the defaults); ``--help`` for options.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import cryptography
import nacl
from measure import rates
from nacl.signing import SigningKey

from protocol.encoding import pae
from protocol.envelope import (
    HPKE_INFO_LABEL,
    ReceiverPrekey,
    open_envelope,
    parse_envelope,
    seal,
)
from protocol.header import EnvelopeHeader
from protocol.kinds import Kind, Priority
from protocol.signing import LABELS, public_key_of
from protocol.suites import Suite, hpke_open, hpke_seal, key_id, public_from_private

SUITES = {"hybrid": Suite.HYBRID, "x25519": Suite.X25519}
SENDER = "XA:MOJ"
RECIPIENT = "XB:MOJ"
CONTENT_TYPE = "application/octet-stream"


def parse_size(text: str) -> int:
    units = {"": 1, "B": 1, "K": 1024, "KIB": 1024, "M": 1024 * 1024, "MIB": 1024 * 1024}
    text = text.strip().upper()
    number = text.rstrip("KMIB")
    try:
        return int(number) * units[text[len(number):]]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r}: use e.g. 1K, 64K, 1M") from None


def show_size(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    if size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


def derive(label: str, size: int = 32) -> bytes:
    """Fixed key material, so every run uses the same keys."""
    digest = hashlib.sha512 if size == 64 else hashlib.sha256
    return digest(f"rogatory/bench/{label}".encode()).digest()[:size]


def combined(*rates: float) -> float:
    """The rate of doing each of these operations once in a row."""
    return 1.0 / sum(1.0 / r for r in rates)


@dataclass
class Directory:
    """The sender's identity key, as a receiver's signed directory would answer it."""

    public: bytes

    def sender_key(self, authority_id: str, key_id: str, *, now: int, created: int) -> bytes:
        return self.public


@dataclass
class Case:
    suite: Suite
    size: int
    envelope: bytes
    package: int
    sealed: int
    header: int
    short_message: int  # bytes under the outer signature (PAE included)
    long_message: int  # bytes under the inner signature (PAE included)


def make_case(suite: Suite, size: int, now: int) -> tuple[Case, Callable[[], object],
                                                          Callable[[], object]]:
    sender_seed = derive(f"identity/{SENDER}")
    if suite is Suite.HYBRID:
        private = derive(f"prekey-mlkem/{RECIPIENT}", 64) + derive(f"prekey-x/{RECIPIENT}")
    else:
        private = derive(f"prekey-x25519/{RECIPIENT}")
    public = public_from_private(suite, private)
    prekey = ReceiverPrekey(key_id(public), suite, private, now - 86_400, now + 30 * 86_400)
    header = EnvelopeHeader(
        id=derive("message", 16).hex(),
        kind=Kind.REQUEST,
        sender=SENDER,
        recipient=RECIPIENT,
        sender_key=key_id(public_key_of(sender_seed)),
        recipient_prekey=prekey.id,
        suite=suite,
        created=now - 60,
        expires=now + 7 * 86_400,
        in_reply_to="",
        case="XA/2026/0001",
        priority=Priority.NORMAL,
    )
    payload = os.urandom(size)
    directory = Directory(public_key_of(sender_seed))

    def do_seal() -> object:
        return seal(header, CONTENT_TYPE, payload, sender_seed=sender_seed,
                    recipient_public=public)

    sealed = seal(header, CONTENT_TYPE, payload, sender_seed=sender_seed,
                  recipient_public=public)
    data = sealed.data

    def do_open() -> object:
        return open_envelope(data, me=RECIPIENT, now=now, senders=directory,
                             prekey={prekey.id: prekey}.get, strongest_suite=suite,
                             already_used=lambda sender, message_id: False)

    parsed = parse_envelope(data)
    outer = pae(LABELS["envelope"], hashlib.sha256(parsed.sealed).digest() + parsed.header_bytes)
    inner = pae(LABELS["envelope-inner"], sealed.package[:-64])
    case = Case(suite, size, data, len(sealed.package), len(parsed.sealed),
                len(parsed.header_bytes), len(outer), len(inner))
    return case, do_seal, do_open


def hpke_ops(case: Case) -> tuple[Callable[[], object], Callable[[], object]]:
    if case.suite is Suite.HYBRID:
        private = derive(f"raw-mlkem/{case.size}", 64) + derive(f"raw-x/{case.size}")
    else:
        private = derive(f"raw-x25519/{case.size}")
    public = public_from_private(case.suite, private)
    info = HPKE_INFO_LABEL + os.urandom(32)
    package = os.urandom(case.package)
    sealed = hpke_seal(case.suite, public, info, package)

    def do_seal() -> object:
        return hpke_seal(case.suite, public, info, package)

    def do_open() -> object:
        return hpke_open(case.suite, private, info, sealed)

    return do_seal, do_open


SIGNING_KEY = SigningKey(derive("raw-ed25519"))


def ed25519_ops(size: int) -> tuple[Callable[[], object], Callable[[], object]]:
    """Raw PyNaCl sign and verify of a message of ``size`` bytes, key objects made once."""
    message = os.urandom(size)
    signature = SIGNING_KEY.sign(message).signature
    verify_key = SIGNING_KEY.verify_key
    return (lambda: SIGNING_KEY.sign(message)), (lambda: verify_key.verify(message, signature))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suites", default="hybrid,x25519",
                        help="comma-separated: hybrid, x25519 (default: both)")
    parser.add_argument("--sizes", default="1K,64K,1M",
                        help="comma-separated payload sizes (default: 1K,64K,1M)")
    parser.add_argument("--seconds", type=float, default=0.75,
                        help="time spent on each measurement (default: 0.75)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds per measurement, interleaved; the best is kept (default: 3)")
    parser.add_argument("--cpu", type=int, default=None,
                        help="pin the process to this CPU first (Linux)")
    args = parser.parse_args(argv)
    try:
        suites = [SUITES[name.strip()] for name in args.suites.split(",")]
    except KeyError as exc:
        parser.error(f"unknown suite {exc}; choose from {', '.join(SUITES)}")
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    now = int(time.time())
    started = time.perf_counter()
    print(f"rogatory envelope benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} "
          f"UTC; one thread; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")
    print(f"Python {platform.python_version()}, cryptography {cryptography.__version__}, "
          f"PyNaCl {nacl.__version__}; each rate the best of {args.rounds} rounds "
          f"({args.seconds:g} s in all), envelope and raw operations taking turns")
    print("raw limit = 1/(1/HPKE + 1/Ed25519(short) + 1/Ed25519(package)): one HPKE operation "
          "and the envelope's two signatures; ratio = envelope / raw limit")
    shorts: set[int] = set()
    for suite in suites:
        print()
        print(f"suite {suite.value}")
        print(f"  {'payload':>8} {'op':5} {'envelope/s':>11} {'raw limit/s':>12} {'ratio':>6}  |"
              f" {'HPKE/s':>9} {'Ed25519 short/s':>16} {'Ed25519 pkg/s':>14}  {'MB/s':>7}")
        for size in sizes:
            case, env_seal, env_open = make_case(suite, size, now)
            raw_seal, raw_open = hpke_ops(case)
            sign_short, verify_short = ed25519_ops(case.short_message)
            sign_long, verify_long = ed25519_ops(case.long_message)
            shorts.add(case.short_message)
            rows = [
                ("seal", *rates([env_seal, raw_seal, sign_short, sign_long],
                                args.seconds, args.rounds)),
                ("open", *rates([env_open, raw_open, verify_short, verify_long],
                                args.seconds, args.rounds)),
            ]
            for op, envelope, hpke, short, long in rows:
                limit = combined(hpke, short, long)
                print(f"  {show_size(size):>8} {op:5} {envelope:11,.0f} {limit:12,.0f} "
                      f"{envelope / limit:6.2f}  | {hpke:9,.0f} {short:16,.0f} {long:14,.0f}  "
                      f"{envelope * size / 1e6:7,.1f}")
            overhead = len(case.envelope) - size
            hpke_bytes = case.sealed - case.package
            print(f"  {'':>8} size  envelope {len(case.envelope):,} B for {size:,} B of payload:"
                  f" +{overhead:,} B (HPKE enc+tag {hpke_bytes:,}, header {case.header:,} B"
                  f" twice, 2 signatures 128, framing and content type "
                  f"{overhead - hpke_bytes - 2 * case.header - 128:,})")
    print()
    print(f"Ed25519 messages: short = outer signature input "
          f"({'-'.join(str(size) for size in sorted({min(shorts), max(shorts)}))} B), "
          "package = inner signature input (payload + header + framing)")
    print(f"total time {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
