"""The optional attachment manifest inside the sealed, signed package of an envelope."""

from __future__ import annotations

import hashlib
import os

import pytest
from protocol_kit import World, craft_envelope, craft_package

from protocol.attachment import AttachmentSpec, encode_manifest, parse_manifest
from protocol.encoding import Reader, frame
from protocol.envelope import (
    MAX_MANIFEST,
    SealedEnvelope,
    parse_package,
    seal,
    verify_package,
)
from protocol.errors import EnvelopeError, EnvelopeMalformed
from protocol.header import EnvelopeHeader
from protocol.signing import LABELS, sign
from protocol.suites import Suite


def refused(call: object) -> str:
    assert callable(call)
    with pytest.raises(EnvelopeError) as caught:
        call()
    return caught.value.code


def manifest(count: int = 2) -> bytes:
    return encode_manifest(
        AttachmentSpec(index=i, name=f"exhibit {i}.pdf", media_type="application/pdf",
                       size=1000 * i, sha256=hashlib.sha256(b"%d" % i).hexdigest(),
                       key=os.urandom(32), header=os.urandom(24))
        for i in range(count))


def seal_with(world: World, header: EnvelopeHeader, manifest: bytes,
              payload: bytes = b'{"request":"hearing"}') -> SealedEnvelope:
    return seal(header, "application/json", payload, sender_seed=world.alice.seed,
                recipient_public=world.bob.prekey(header.suite).public, manifest=manifest)


def split_package(package: bytes) -> tuple[list[bytes], bytes]:
    """The frames of a package (3 or 4) and its inner signature, read by the PROTOCOL.md grammar."""
    reader = Reader(package)
    frames = []
    while reader.remaining() > 64:
        frames.append(reader.framed())
    signature = reader.fixed(64)
    reader.end()
    return frames, signature


@pytest.mark.parametrize("suite", [Suite.HYBRID, Suite.X25519])
def test_manifest_travels_sealed_and_signed(world: World, suite: Suite) -> None:
    header = world.header(world.alice, world.bob, suite=suite)
    data = manifest(3)
    sealed = seal_with(world, header, data)
    opened = world.open(sealed.data, world.bob, strongest=suite)
    assert opened.package.manifest == data
    assert opened.package.data == sealed.package
    assert opened.package.payload == b'{"request":"hearing"}'
    assert len(parse_manifest(opened.package.manifest)) == 3
    kept = verify_package(opened.package.data, world.alice.public)
    assert kept.manifest == data
    frames, signature = split_package(sealed.package)
    assert frames == [header.encode(), b"application/json", b'{"request":"hearing"}', data]
    assert sealed.package == frame(*frames) + signature


def test_manifest_with_an_empty_payload(world: World) -> None:
    data = manifest(1)
    sealed = seal_with(world, world.header(world.alice, world.bob), data, payload=b"")
    opened = world.open(sealed.data, world.bob)
    assert (opened.package.payload, opened.package.manifest) == (b"", data)


def test_no_manifest(world: World) -> None:
    """Without one the package is byte for byte the manifest-less v1 package."""
    header = world.header(world.alice, world.bob)
    sealed = seal_with(world, header, b"")
    opened = world.open(sealed.data, world.bob)
    assert opened.package.manifest == b""
    assert verify_package(opened.package.data, world.alice.public).manifest == b""
    assert sealed.package == craft_package(header.encode(), "application/json",
                                           b'{"request":"hearing"}', world.alice.seed)
    assert world.seal(header, world.alice, world.bob).package == craft_package(
        header.encode(), "application/json", b'{"request":"hearing of a witness"}',
        world.alice.seed)


@pytest.mark.parametrize("where", [0, 1, "middle", -1])
def test_one_byte_of_the_manifest_changed(world: World, where: int | str) -> None:
    sealed = seal_with(world, world.header(world.alice, world.bob), manifest(2))
    kept = world.open(sealed.data, world.bob).package.data
    frames, signature = split_package(kept)
    data = bytearray(frames[3])
    at = len(data) // 2 if where == "middle" else int(where)
    data[at] ^= 0x01
    tampered = frame(*frames[:3], bytes(data)) + signature
    assert len(tampered) == len(kept) and tampered != kept
    assert parse_package(tampered).manifest == bytes(data)
    assert refused(lambda: verify_package(tampered, world.alice.public)) == (
        "envelope.inner_signature_invalid")


def test_manifest_grown_shrunk_or_stripped(world: World) -> None:
    sealed = seal_with(world, world.header(world.alice, world.bob), manifest(2))
    kept = world.open(sealed.data, world.bob).package.data
    frames, signature = split_package(kept)
    variants = [
        frame(*frames[:3], frames[3] + b" ") + signature,
        frame(*frames[:3], frames[3][:-1]) + signature,
        frame(*frames[:3], manifest(1)) + signature,
        frame(*frames[:3]) + signature,  # manifest stripped: the attachments silently dropped
        frame(frames[0], frames[1], frames[2] + frames[3]) + signature,
    ]
    for tampered in variants:
        assert refused(lambda t=tampered: verify_package(t, world.alice.public)) == (
            "envelope.inner_signature_invalid")


def test_manifest_added_to_a_package_without_one(world: World) -> None:
    header = world.header(world.alice, world.bob)
    kept = world.open(seal_with(world, header, b"").data, world.bob).package.data
    frames, signature = split_package(kept)
    tampered = frame(*frames, manifest(1)) + signature
    assert refused(lambda: verify_package(tampered, world.alice.public)) == (
        "envelope.inner_signature_invalid")


def test_tampered_manifest_inside_an_envelope(world: World) -> None:
    """Re-sealed by someone without Alice's key: the inner signature gives it away on opening."""
    header = world.header(world.alice, world.bob)
    sealed = seal_with(world, header, manifest(2))
    frames, signature = split_package(sealed.package)
    tampered = frame(*frames[:3], manifest(2)) + signature
    data = craft_envelope(header.encode(), tampered, suite=Suite.HYBRID,
                          recipient_public=world.bob.hybrid.public, signer_seed=world.alice.seed)
    assert refused(lambda: world.open(data, world.bob)) == "envelope.inner_signature_invalid"


def test_explicit_empty_manifest_frame(world: World) -> None:
    """The empty manifest has one spelling: no frame at all, never an empty one."""
    header = world.header(world.alice, world.bob)
    body = frame(header.encode(), b"application/json", b"{}", b"")
    package = body + sign(world.alice.seed, LABELS["envelope-inner"], body)
    assert refused(lambda: parse_package(package)) == "envelope.malformed"
    assert refused(lambda: verify_package(package, world.alice.public)) == "envelope.malformed"
    data = craft_envelope(header.encode(), package, suite=Suite.HYBRID,
                          recipient_public=world.bob.hybrid.public, signer_seed=world.alice.seed)
    assert refused(lambda: world.open(data, world.bob)) == "envelope.malformed"


def test_trailing_bytes_after_the_manifest(world: World) -> None:
    header = world.header(world.alice, world.bob)
    body = frame(header.encode(), b"application/json", b"{}", manifest(1)) + b"\x00"
    package = body + sign(world.alice.seed, LABELS["envelope-inner"], body)
    assert refused(lambda: parse_package(package)) == "envelope.malformed"


def test_manifest_size_limit(world: World) -> None:
    header = world.header(world.alice, world.bob, suite=Suite.X25519)
    largest = b"m" * MAX_MANIFEST
    opened = world.open(seal_with(world, header, largest).data, world.bob,
                        strongest=Suite.X25519)
    assert opened.package.manifest == largest
    with pytest.raises(EnvelopeMalformed) as caught:
        seal_with(world, header, largest + b"m")
    assert caught.value.code == "envelope.malformed"
    body = frame(header.encode(), b"application/json", b"{}", largest + b"m")
    package = body + sign(world.alice.seed, LABELS["envelope-inner"], body)
    assert refused(lambda: parse_package(package)) == "envelope.malformed"
