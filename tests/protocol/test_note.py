"""C2SP signed notes (protocol/note.py): published vectors, round trips, strict parsing, fuzzing.

Known answers come from outside this implementation:

* golang.org/x/mod, ``sumdb/note/note_test.go`` (``TestNewVerifier``, ``TestSign``,
  ``TestOpen``): the "PeterNeumann" signer key ``PRIVATE+KEY+PeterNeumann+c74f20a3+<base64>``
  is the type byte 0x01 followed by the Ed25519 seed. Ed25519 is deterministic, so our
  ``verifier_key`` and ``sign_note`` must reproduce Go's vkey and signed note byte for byte.
  The "EnochRoot" vkey and signature come from the same file (its seed is not published).
* github.com/transparency-dev/formats, ``note/note_cosigv1_test.go`` (``TestCoSigV1NewVerifier``):
  the vkeys ``TEST+7997405c+…`` (type 0x01, a base64 key containing '+') and
  ``remora.n621.de+da77ade7+…`` (type 0x04, a cosignature key).
* c2sp.org/signed-note: the example note (an Italian poem whose text holds an empty line); the
  spec does not publish its key, so it is checked for structure only.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from protocol.errors import KeyMalformed, LogMalformed, LogSignatureInvalid, RogatoryError
from protocol.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    key_hash,
    parse_note,
    parse_verifier_key,
    sign_note,
    std_b64decode,
    verifier_key,
    verify_note,
)

MALFORMED = "log.malformed"
SIGNATURE_INVALID = "log.signature_invalid"
DASH = "\u2014"  # em dash

# --- golang.org/x/mod sumdb/note/note_test.go ---------------------------------------------

GO_PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (b"If you think cryptography is the answer to your problem,\n"
           b"then you don't know what your problem is.\n")
GO_PETER_SIG = (f"{DASH} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FF"
                "YC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n")
GO_ENOCH_SIG = (f"{DASH} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ"
                "5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n")
GO_SIGNED = GO_TEXT + b"\n" + GO_PETER_SIG.encode()
GO_PETER_SEED = base64.b64decode(GO_PETER_SKEY.split("+", 4)[4])[1:]  # type byte, seed

# --- transparency-dev/formats note/note_cosigv1_test.go -------------------------------------

TD_TEST_VKEY = "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6"
TD_REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"

# --- c2sp.org/signed-note ---------------------------------------------------------------

C2SP_POEM_TEXT = ("Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\n"
                  "ed \u00e8 subito sera.\n").encode()
C2SP_POEM = C2SP_POEM_TEXT + (
    f"\n{DASH} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJK"
    "ONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n").encode()

# --- our own fixed keys -------------------------------------------------------------------


def seed_of(label: str) -> bytes:
    return hashlib.sha256(f"rogatory/tests/note/{label}".encode()).digest()


def public_of(seed: bytes) -> bytes:
    return bytes(SigningKey(seed).verify_key)


NAME = "rogatory/log/XA:MOJ"
SEED = seed_of("log")
PUBLIC = public_of(SEED)
OTHER_SEED = seed_of("other")
OTHER_PUBLIC = public_of(OTHER_SEED)
TEXT = b"rogatory/log/XA:MOJ\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(RogatoryError) as caught:
        call()
    return caught.value.code


def signed(text: bytes = TEXT, name: str = NAME, seed: bytes = SEED) -> bytes:
    return Note(text, (sign_note(text, name, seed),)).encode()


# --- key IDs and verifier keys -----------------------------------------------------------


@pytest.mark.parametrize(("vkey", "alg"), [
    (GO_PETER_VKEY, ALG_ED25519),
    (GO_ENOCH_VKEY, ALG_ED25519),
    (TD_TEST_VKEY, ALG_ED25519),
    (TD_REMORA_VKEY, ALG_COSIGNATURE_V1),
])
def test_key_hash_matches_published_verifier_keys(vkey: str, alg: int) -> None:
    name, hash_hex, key_b64 = vkey.split("+", 2)
    key = base64.b64decode(key_b64)
    assert key[0] == alg
    assert key_hash(name, alg, key[1:]).hex() == hash_hex


def test_key_hash_separates_signature_types() -> None:
    assert key_hash(NAME, ALG_ED25519, PUBLIC) != key_hash(NAME, ALG_COSIGNATURE_V1, PUBLIC)
    assert key_hash(NAME, ALG_ED25519, PUBLIC) == hashlib.sha256(
        NAME.encode() + b"\n\x01" + PUBLIC).digest()[:4]


def test_verifier_key_reproduces_go_from_the_seed() -> None:
    assert verifier_key("PeterNeumann", public_of(GO_PETER_SEED)) == GO_PETER_VKEY


@pytest.mark.parametrize("vkey", [GO_PETER_VKEY, GO_ENOCH_VKEY, TD_TEST_VKEY])
def test_parse_verifier_key_round_trips_published_keys(vkey: str) -> None:
    name, public = parse_verifier_key(vkey)
    assert len(public) == 32
    assert verifier_key(name, public) == vkey


def test_parse_verifier_key_refuses_every_mangling_go_refuses() -> None:
    """As Go's TestNewVerifier: every proper substring and every one-byte increment fails."""
    raw = GO_PETER_VKEY.encode()
    manglings = {raw[i:j] for i in range(len(raw) + 1) for j in range(i + 1, len(raw) + 1)}
    manglings |= {raw[:i] + bytes([raw[i] + 1]) + raw[i + 1:] for i in range(len(raw))}
    manglings.discard(raw)
    for mangled in manglings:
        with pytest.raises(LogMalformed):
            parse_verifier_key(mangled.decode())


@pytest.mark.parametrize("vkey", [
    # Go's own bad keys: a wrong-length key and an unknown type byte, each with a matching ID.
    "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
    "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    TD_REMORA_VKEY,  # a type 0x04 cosigner key is not a note (0x01) verifier key
    GO_PETER_VKEY.replace("c74f20a3", "C74F20A3"),  # uppercase key ID
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW",  # base64url
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "",
    "++",
])
def test_parse_verifier_key_refusals(vkey: str) -> None:
    assert code_of(lambda: parse_verifier_key(vkey)) == MALFORMED


@pytest.mark.parametrize("name", [
    "", "a+b", "a b", "a\tb", "a\u00a0b", "a\u2003b", "a\u3000b", "a\nb", "a\x00b",
])
def test_bad_key_names_are_refused(name: str) -> None:
    assert code_of(lambda: key_hash(name, ALG_ED25519, PUBLIC)) == MALFORMED
    assert code_of(lambda: verifier_key(name, PUBLIC)) == MALFORMED
    assert code_of(lambda: sign_note(TEXT, name, SEED)) == MALFORMED


def test_verifier_key_needs_a_32_byte_key() -> None:
    assert code_of(lambda: verifier_key(NAME, PUBLIC[:31])) == MALFORMED


# --- signing: Go's published note ---------------------------------------------------------


def test_sign_note_reproduces_gos_signed_note() -> None:
    signature = sign_note(GO_TEXT, "PeterNeumann", GO_PETER_SEED)
    assert signature.key_hash.hex() == "c74f20a3"
    assert signature.line() == GO_PETER_SIG
    assert Note(GO_TEXT, (signature,)).encode() == GO_SIGNED


def test_gos_two_signature_note_parses_and_verifies_under_both_keys() -> None:
    data = GO_TEXT + b"\n" + (GO_PETER_SIG + GO_ENOCH_SIG).encode()
    note = parse_note(data)
    assert note.text == GO_TEXT
    assert [(s.name, s.key_hash.hex()) for s in note.signatures] == [
        ("PeterNeumann", "c74f20a3"), ("EnochRoot", "af0cfe78")]
    assert note.encode() == data
    for vkey in (GO_PETER_VKEY, GO_ENOCH_VKEY):
        verify_note(note, *parse_verifier_key(vkey))


def test_c2sp_example_note_keeps_its_empty_line_in_the_text() -> None:
    note = parse_note(C2SP_POEM)
    assert note.text == C2SP_POEM_TEXT  # the *last* blank line separates the signatures
    (signature,) = note.signatures
    assert signature.name == "quasimodo.example/salvatore"
    assert len(signature.signature) == 64
    assert note.encode() == C2SP_POEM


# --- round trips ----------------------------------------------------------------------------

name_chars = st.characters(
    exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), exclude_characters="+\x85")
names = st.text(name_chars, min_size=1, max_size=30)
text_lines = st.text(st.characters(min_codepoint=0x20, exclude_categories=("Cs",)), max_size=40)
texts = st.lists(text_lines, min_size=1, max_size=6).map(
    lambda lines: "".join(line + "\n" for line in lines).encode())


@settings(max_examples=60, deadline=None)
@given(texts, names, st.binary(min_size=32, max_size=32))
def test_sign_parse_verify_round_trip(text: bytes, name: str, seed: bytes) -> None:
    signature = sign_note(text, name, seed)
    data = Note(text, (signature,)).encode()
    note = parse_note(data)
    assert note == Note(text, (signature,))
    assert note.encode() == data
    verify_note(note, name, public_of(seed))


def test_a_note_text_of_a_single_newline_is_a_text() -> None:
    data = signed(b"\n")
    assert parse_note(data).text == b"\n"
    verify_note(parse_note(data), NAME, PUBLIC)


def test_unknown_signature_types_survive_a_round_trip() -> None:
    odd = NoteSignature("pq.example/key", b"\xff\x00\x01\x02", b"\x07" * 2420)
    data = Note(TEXT, (sign_note(TEXT, NAME, SEED), odd)).encode()
    assert parse_note(data).signatures[1] == odd
    verify_note(parse_note(data), NAME, PUBLIC)


# --- strict parsing -----------------------------------------------------------------------

SIG_LINE = sign_note(TEXT, NAME, SEED).line()
BLOB = SIG_LINE.split(" ")[2].rstrip("\n")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
assert BLOB.endswith("=") and not BLOB.endswith("==")  # 68 bytes: two spare bits at the end
SPARE_BITS = BLOB[:-2] + _ALPHABET[_ALPHABET.index(BLOB[-2]) ^ 1] + "="  # same bytes, bit set


@pytest.mark.parametrize("data", [
    # Go's TestOpen bad messages.
    GO_TEXT,
    GO_TEXT + b"\n",
    GO_TEXT + b"\n" + GO_PETER_SIG.encode()[:-1],
    b"\x01" + GO_SIGNED,
    b"\xff" + GO_SIGNED,
    GO_TEXT + f"\n{DASH} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2"
              "pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=".encode(),
    GO_SIGNED + b"Unexpected line.\n",
    # Ours.
    b"",
    b"\n\n",
    TEXT + b"\n" + SIG_LINE.replace(DASH, "-").encode(),  # hyphen, not em dash
    TEXT + b"\n" + SIG_LINE.replace(DASH, "\u2013").encode(),  # en dash
    TEXT + b"\n" + SIG_LINE.replace(f"{DASH} ", DASH).encode(),
    TEXT + b"\n" + SIG_LINE.replace(" ", "  ", 1).encode(),
    TEXT + b"\n" + SIG_LINE.replace("\n", " \n").encode(),
    TEXT + b"\n" + SIG_LINE.replace(BLOB, BLOB.rstrip("=")).encode(),  # padding dropped
    TEXT + b"\n" + SIG_LINE.replace(BLOB, SPARE_BITS).encode(),
    GO_TEXT + b"\n" + GO_PETER_SIG.replace("/", "_").encode(),  # base64url
    TEXT + b"\n" + f"{DASH} {NAME} AAAAAA==\n".encode(),  # a key ID and nothing else
    TEXT + b"\n" + f"{DASH} {NAME} \n".encode(),
    TEXT + b"\n" + f"{DASH} a+b {BLOB}\n".encode(),
    TEXT + b"\n" + SIG_LINE.encode() + b"\n",  # a blank line after the signatures
    TEXT.replace(b"\n", b"\r\n", 1) + b"\n" + SIG_LINE.encode(),  # CR is a control character
    TEXT.replace(b"3", b"\t3") + b"\n" + SIG_LINE.encode(),
    TEXT + b"\n" + SIG_LINE.encode().replace(b"\n", b"\r\n"),
    b"caf\xc3" + b"\n\n" + SIG_LINE.encode(),  # truncated UTF-8
    b"\xed\xa0\x80\n\n" + SIG_LINE.encode(),  # an encoded surrogate
])
def test_parse_note_refusals(data: bytes) -> None:
    assert code_of(lambda: parse_note(data)) == MALFORMED


def test_signature_count_limit() -> None:
    at_limit = TEXT + b"\n" + SIG_LINE.encode() * MAX_SIGNATURES
    assert len(parse_note(at_limit).signatures) == MAX_SIGNATURES
    # As Go's TestOpen: 101 signature lines are refused, verified or not.
    assert code_of(lambda: parse_note(at_limit + SIG_LINE.encode())) == MALFORMED


def test_size_limit() -> None:
    padding = b"x" * (MAX_NOTE_BYTES - len(SIG_LINE.encode()) - 2) + b"\n"
    at_limit = padding + b"\n" + SIG_LINE.encode()
    assert len(at_limit) == MAX_NOTE_BYTES
    assert parse_note(at_limit).text == padding
    assert code_of(lambda: parse_note(b"x" + at_limit)) == MALFORMED


def test_parse_note_refuses_what_is_not_bytes() -> None:
    assert code_of(lambda: parse_note(GO_SIGNED.decode())) == MALFORMED  # type: ignore[arg-type]


@pytest.mark.parametrize("build", [
    lambda: Note(TEXT, ()),
    lambda: Note(TEXT.rstrip(b"\n"), (sign_note(TEXT, NAME, SEED),)),
    lambda: Note(b"\x00" + TEXT, (sign_note(TEXT, NAME, SEED),)),
    lambda: Note(TEXT, (sign_note(TEXT, NAME, SEED),) * (MAX_SIGNATURES + 1)),
    lambda: NoteSignature(NAME, b"\x00" * 3, b"\x00" * 64),
    lambda: NoteSignature(NAME, b"\x00" * 4, b""),
    lambda: NoteSignature("a b", b"\x00" * 4, b"\x00" * 64),
    lambda: sign_note(TEXT.rstrip(b"\n"), NAME, SEED),
    lambda: sign_note(b"a\x1bb\n", NAME, SEED),
])
def test_malformed_values_cannot_be_built(build: Callable[[], object]) -> None:
    assert code_of(build) == MALFORMED


def test_a_bad_seed_is_a_key_error() -> None:
    with pytest.raises(KeyMalformed):
        sign_note(TEXT, NAME, SEED[:31])


@pytest.mark.parametrize("text", ["QQ==", "QUI=", "QUJD", ""])
def test_std_b64decode_accepts_canonical_spellings(text: str) -> None:
    assert base64.b64encode(std_b64decode(text)).decode() == text


@pytest.mark.parametrize("text", ["QQ", "QR==", "QQ=", "QQ===", "Q===", "QUJ D", "QUI-", "\u00e9"])
def test_std_b64decode_refuses_other_spellings(text: str) -> None:
    assert code_of(lambda: std_b64decode(text)) == MALFORMED


# --- verification ----------------------------------------------------------------------------


def test_wrong_key_is_refused() -> None:
    note = parse_note(signed())
    assert code_of(lambda: verify_note(note, NAME, OTHER_PUBLIC)) == SIGNATURE_INVALID


def test_wrong_name_is_refused() -> None:
    note = parse_note(signed())
    assert code_of(lambda: verify_note(note, "rogatory/log/XB:MOJ", PUBLIC)) \
        == SIGNATURE_INVALID


def test_a_line_with_the_right_key_id_under_another_name_is_ignored() -> None:
    real = sign_note(TEXT, NAME, SEED)
    renamed = NoteSignature("rogatory/log/XB:MOJ", real.key_hash, real.signature)
    note = parse_note(Note(TEXT, (renamed,)).encode())
    assert code_of(lambda: verify_note(note, NAME, PUBLIC)) == SIGNATURE_INVALID


def test_every_flipped_bit_of_the_signature_is_refused() -> None:
    real = sign_note(TEXT, NAME, SEED)
    for bit in range(len(real.signature) * 8):
        flipped = bytearray(real.signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        note = parse_note(Note(TEXT, (NoteSignature(NAME, real.key_hash, bytes(flipped)),))
                          .encode())
        assert code_of(lambda note=note: verify_note(note, NAME, PUBLIC)) == SIGNATURE_INVALID


def test_every_flipped_bit_of_the_text_is_refused_or_unparseable() -> None:
    data = signed()
    for bit in range(len(TEXT) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        try:
            note = parse_note(bytes(flipped))
        except LogMalformed:
            continue
        assert code_of(lambda note=note: verify_note(note, NAME, PUBLIC)) == SIGNATURE_INVALID


def test_a_flipped_key_id_bit_makes_the_signature_unknown() -> None:
    real = sign_note(TEXT, NAME, SEED)
    key_id = bytes([real.key_hash[0] ^ 1]) + real.key_hash[1:]
    note = parse_note(Note(TEXT, (NoteSignature(NAME, key_id, real.signature),)).encode())
    assert code_of(lambda: verify_note(note, NAME, PUBLIC)) == SIGNATURE_INVALID


def test_signatures_by_unknown_keys_are_ignored() -> None:
    mine = sign_note(TEXT, NAME, SEED)
    junk = NoteSignature(NAME, b"\x00\x00\x00\x00", b"\x01" * 64)  # same name, other ID
    other = sign_note(TEXT, "witness.example/w1", OTHER_SEED)
    odd = NoteSignature(NAME, key_hash(NAME, ALG_COSIGNATURE_V1, PUBLIC), b"\x02" * 72)
    verify_note(parse_note(Note(TEXT, (junk, other, odd, mine)).encode()), NAME, PUBLIC)
    alone = parse_note(Note(TEXT, (junk, other, odd)).encode())
    assert code_of(lambda: verify_note(alone, NAME, PUBLIC)) == SIGNATURE_INVALID


def test_a_failing_line_of_the_known_key_rejects_the_whole_note() -> None:
    """c2sp.org/signed-note: a failing signature from a known key rejects the note (as Go)."""
    mine = sign_note(TEXT, NAME, SEED)
    bad = NoteSignature(NAME, mine.key_hash, b"\x00" * 64)
    wrong_length = NoteSignature(NAME, mine.key_hash, mine.signature + b"\x00")
    for lines in [(mine, bad), (bad, mine), (mine, wrong_length)]:
        note = parse_note(Note(TEXT, lines).encode())
        assert code_of(lambda note=note: verify_note(note, NAME, PUBLIC)) == SIGNATURE_INVALID
    verify_note(parse_note(Note(TEXT, (mine, mine)).encode()), NAME, PUBLIC)


def test_a_public_key_of_the_wrong_length_verifies_nothing() -> None:
    note = parse_note(signed())
    for public in (b"", PUBLIC[:31], PUBLIC + b"\x00"):
        assert code_of(lambda public=public: verify_note(note, NAME, public)) \
            == SIGNATURE_INVALID


def test_a_type_0x01_signature_is_not_a_cosignature_and_back() -> None:
    """The same Ed25519 key gets a different key ID per signature type."""
    real = sign_note(TEXT, NAME, SEED)
    as_cosignature = NoteSignature(NAME, key_hash(NAME, ALG_COSIGNATURE_V1, PUBLIC),
                                   real.signature)
    note = parse_note(Note(TEXT, (as_cosignature,)).encode())
    assert code_of(lambda: verify_note(note, NAME, PUBLIC)) == SIGNATURE_INVALID


# --- fuzzing --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_note_on_arbitrary_bytes_raises_only_log_malformed(data: bytes) -> None:
    try:
        note = parse_note(data)
    except RogatoryError as exc:
        assert exc.code == MALFORMED
        return
    assert note.encode() == data


pieces = st.lists(st.sampled_from([
    b"\n", b"\n\n", f"{DASH} ".encode(), DASH.encode(), b" ", b"+", b"a", b"=", b"\xe2\x80",
    b"\x00", b"\xff", NAME.encode(), BLOB.encode(), SIG_LINE.encode(), TEXT,
]), max_size=12).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(pieces)
def test_parse_note_on_note_like_bytes_raises_only_log_malformed(data: bytes) -> None:
    try:
        note = parse_note(data)
    except RogatoryError as exc:
        assert exc.code == MALFORMED
        return
    assert note.encode() == data  # whatever parses has exactly one spelling
    try:
        verify_note(note, NAME, PUBLIC)
    except RogatoryError as exc:
        assert exc.code == SIGNATURE_INVALID


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_notes_parse_identically_or_not_at_all(data: st.DataObject) -> None:
    original = bytearray(signed())
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(original) - 1))
        action = data.draw(st.sampled_from(["flip", "delete", "insert"]))
        if action == "flip":
            original[position] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "delete" and len(original) > 1:
            del original[position]
        else:
            original.insert(position, data.draw(st.integers(0, 255)))
    mutated = bytes(original)
    try:
        note = parse_note(mutated)
    except LogMalformed:
        return
    assert note.encode() == mutated
    try:
        verify_note(note, NAME, PUBLIC)
    except LogSignatureInvalid:
        return
    assert note.text == TEXT  # only an untouched text can still carry a valid signature


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_parse_verifier_key_on_arbitrary_text_raises_only_log_malformed(text: str) -> None:
    try:
        name, public = parse_verifier_key(text)
    except RogatoryError as exc:
        assert exc.code == MALFORMED
        return
    assert verifier_key(name, public) == text
