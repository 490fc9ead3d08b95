"""C2SP signed notes (protocol/note.py): published answers, round trips, strict parsing, fuzzing.

Known answers come from outside this implementation:

* ``GO_*``: the example key, note and signatures of the Go reference implementation's tests,
  golang.org/x/mod ``sumdb/note/note_test.go`` (``TestNewVerifier``, ``TestSign``,
  ``TestOpen``): the "PeterNeumann" signer key ``PRIVATE+KEY+PeterNeumann+c74f20a3+…`` is
  algorithm byte 0x01 followed by the Ed25519 seed, so Ed25519 being deterministic, our
  ``verifier_key`` and ``sign_note`` must reproduce Go's vkey and note byte for byte;
* ``C2SP_POEM``: the example note of the C2SP signed-note specification (c2sp.org/signed-note),
  whose text holds an empty line (structure only: the spec does not publish its key).
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from protocol.errors import LogError, RogatoryError
from protocol.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_NOTE,
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    key_hash,
    parse_note,
    parse_verifier_key,
    sign_note,
    verifier_key,
    verify_note,
)

MALFORMED = "log.malformed"
SIGNATURE_INVALID = "log.signature_invalid"

# --- golang.org/x/mod sumdb/note/note_test.go ---------------------------------------------

GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (b"If you think cryptography is the answer to your problem,\n"
           b"then you don't know what your problem is.\n")
GO_PETER_SIG = ("\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2p"
                "ZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n").encode()
GO_ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_ENOCH_SIG = ("\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5o"
                "vTG01oOTGwnWLox33WWd1RvMc+QQ=\n").encode()
GO_NOTE = GO_TEXT + b"\n" + GO_PETER_SIG

# --- c2sp.org/signed-note ----------------------------------------------------------------

C2SP_POEM = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed \u00e8 subito sera.\n"
    "\n"
    "\u2014 quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJK"
    "ONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
).encode()


def go_seed() -> bytes:
    raw = base64.b64decode(GO_SKEY.split("+", 4)[4])
    assert raw[0] == ALG_ED25519 and len(raw) == 33
    return raw[1:]


def public_of(seed: bytes) -> bytes:
    return bytes(SigningKey(seed).verify_key)


def seed_of(label: str) -> bytes:
    return hashlib.sha256(f"rogatory/tests/note/{label}".encode()).digest()


NAME = "rogatory/log/XA:MOJ"
SEED = seed_of("XA:MOJ")
PUBLIC = public_of(SEED)
OTHER_SEED = seed_of("XC:PGO")
OTHER_PUBLIC = public_of(OTHER_SEED)
TEXT = b"rogatory/log/XA:MOJ\n7\n" + base64.b64encode(bytes(range(32))) + b"\n"


def signed(text: bytes = TEXT, name: str = NAME, seed: bytes = SEED) -> bytes:
    return Note(text, (sign_note(text, name, seed),)).encode()


def code_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(LogError) as caught:
        call()
    return caught.value.code


# --- published known answers -------------------------------------------------------------


def test_go_example_key_gives_go_verifier_key_and_key_id() -> None:
    seed = go_seed()
    public = public_of(seed)
    assert verifier_key("PeterNeumann", public) == GO_VKEY
    assert key_hash("PeterNeumann", ALG_ED25519, public) == bytes.fromhex("c74f20a3")
    assert parse_verifier_key(GO_VKEY) == ("PeterNeumann", public)
    name, enoch = parse_verifier_key(GO_ENOCH_VKEY)
    assert name == "EnochRoot" and key_hash(name, ALG_ED25519, enoch).hex() == "af0cfe78"


def test_go_example_note_is_reproduced_byte_for_byte() -> None:
    signature = sign_note(GO_TEXT, "PeterNeumann", go_seed())
    assert signature.key_hash.hex() == "c74f20a3"
    assert Note(GO_TEXT, (signature,)).encode() == GO_NOTE
    assert signature.line().encode() == GO_PETER_SIG


def test_go_example_notes_open() -> None:
    _, peter = parse_verifier_key(GO_VKEY)
    _, enoch = parse_verifier_key(GO_ENOCH_VKEY)
    note = parse_note(GO_NOTE)
    assert note.text == GO_TEXT and [s.name for s in note.signatures] == ["PeterNeumann"]
    verify_note(note, "PeterNeumann", peter)
    both = parse_note(GO_TEXT + b"\n" + GO_PETER_SIG + GO_ENOCH_SIG)
    verify_note(both, "PeterNeumann", peter)  # Enoch's line is a signature by an unknown key
    verify_note(both, "EnochRoot", enoch)
    assert code_of(lambda: verify_note(note, "EnochRoot", enoch)) == SIGNATURE_INVALID
    # Go's TestOpen: a repeated signature line is harmless.
    verify_note(parse_note(GO_TEXT + b"\n" + GO_PETER_SIG * 2 + GO_ENOCH_SIG), "PeterNeumann",
                peter)


@pytest.mark.parametrize("message", [
    GO_TEXT,
    GO_TEXT + b"\n",
    GO_TEXT + b"\n" + GO_PETER_SIG[:-1],
    b"\x01" + GO_TEXT + b"\n" + GO_PETER_SIG,
    b"\xff" + GO_TEXT + b"\n" + GO_PETER_SIG,
    GO_TEXT + b"\n" + "\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FF"
    "YC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=".encode(),
    GO_TEXT + b"\n" + GO_PETER_SIG + b"Unexpected line.\n",
    GO_TEXT + b"\n" + GO_PETER_SIG * (MAX_SIGNATURES + 1),
], ids=["no-signatures", "blank-line-only", "no-final-newline", "control-char", "not-utf8",
        "name-with-space", "unexpected-line", "101-signatures"])
def test_go_malformed_messages_are_malformed(message: bytes) -> None:
    """The ``badMsgs`` of Go's TestOpen, and its 101-signature note."""
    assert code_of(lambda: parse_note(message)) == MALFORMED


def test_go_verifier_key_manglings_are_refused() -> None:
    """Go's TestNewVerifier: every proper substring and every one-byte change is refused."""
    data = GO_VKEY.encode()
    for i in range(len(data) + 1):
        for j in range(i + 1, len(data) + 1):
            if (i, j) != (0, len(data)):
                assert code_of(lambda i=i, j=j: parse_verifier_key(data[i:j].decode())) \
                    == MALFORMED
    for i in range(len(data)):
        changed = data[:i] + bytes([data[i] + 1]) + data[i + 1:]
        assert code_of(lambda changed=changed: parse_verifier_key(changed.decode())) == MALFORMED
    # Go's wrong-length and unknown-algorithm keys, each with its key hash adjusted.
    for bad in ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"):
        assert code_of(lambda bad=bad: parse_verifier_key(bad)) == MALFORMED


def test_c2sp_example_note_with_an_empty_line_parses() -> None:
    note = parse_note(C2SP_POEM)
    assert note.text == C2SP_POEM.split(b"\n\n\xe2\x80\x94")[0] + b"\n"
    assert b"\n\n" in note.text  # the text MAY hold empty lines; the last one separates
    (signature,) = note.signatures
    assert signature.name == "quasimodo.example/salvatore" and len(signature.signature) == 64
    assert note.encode() == C2SP_POEM


# --- fixed-seed known answers for Rogatory names -----------------------------------------


def test_key_hash_and_verifier_key_known_answer() -> None:
    """Seed SHA-256("rogatory/tests/note/XA:MOJ"): pinned values, also re-derived by hand."""
    assert SEED.hex() == "db2f10e065f6e18c0d1fe4b02f83c938843324350c15ff6895db3f850e7ad493"
    assert PUBLIC.hex() == "dcf139ca75925bb0b5d6543d506695f652dea062411276d30a0f7228cfc818fa"
    expected = hashlib.sha256(NAME.encode() + b"\n\x01" + PUBLIC).digest()[:4]
    assert key_hash(NAME, ALG_ED25519, PUBLIC) == expected == bytes.fromhex("80fe1a5f")
    vkey = "rogatory/log/XA:MOJ+80fe1a5f+AdzxOcp1kluwtdZUPVBmlfZS3qBiQRJ20woPcijPyBj6"
    assert verifier_key(NAME, PUBLIC) == vkey
    assert vkey == f"{NAME}+{expected.hex()}+" + base64.b64encode(b"\x01" + PUBLIC).decode()
    assert parse_verifier_key(vkey) == (NAME, PUBLIC)
    cosigner = hashlib.sha256(NAME.encode() + b"\n\x04" + PUBLIC).digest()[:4]
    assert key_hash(NAME, ALG_COSIGNATURE_V1, PUBLIC) == cosigner == bytes.fromhex("1a84eca2")


def test_key_hash_refuses_bad_names() -> None:
    for name in ("", "a b", "a+b", "a\tb", "a\u00a0b", "a\u2003b", "a\x01b"):
        assert code_of(lambda name=name: key_hash(name, ALG_ED25519, PUBLIC)) == MALFORMED


# --- round trips -------------------------------------------------------------------------


def test_sign_parse_verify_round_trip() -> None:
    data = signed()
    note = parse_note(data)
    assert note.text == TEXT and note.encode() == data
    (signature,) = note.signatures
    assert signature == sign_note(TEXT, NAME, SEED)
    assert signature.key_hash == key_hash(NAME, ALG_ED25519, PUBLIC)
    assert data == TEXT + b"\n\xe2\x80\x94 " + NAME.encode() + b" " + base64.b64encode(
        signature.key_hash + signature.signature) + b"\n"
    verify_note(note, NAME, PUBLIC)
    SigningKey(SEED).verify_key.verify(TEXT, signature.signature)  # Ed25519 over the text only


def test_several_signatures_round_trip_in_order() -> None:
    lines = (sign_note(TEXT, NAME, SEED), sign_note(TEXT, "witness.example/w1", OTHER_SEED))
    data = Note(TEXT, lines).encode()
    note = parse_note(data)
    assert note.signatures == lines and note.encode() == data
    verify_note(note, NAME, PUBLIC)
    verify_note(note, "witness.example/w1", OTHER_PUBLIC)


@pytest.mark.parametrize("text", [
    b"\n",
    b"one line\n",
    b"empty\n\nlines\n\n",
    "caf\u00e9 \u20ac \U0001f600 \u00a0 \u2028 \x7f\n".encode(),
], ids=["only-newline", "one-line", "empty-lines", "non-ascii-and-del"])
def test_any_text_the_spec_allows_round_trips(text: bytes) -> None:
    data = signed(text)
    note = parse_note(data)
    assert note.text == text and note.encode() == data
    verify_note(note, NAME, PUBLIC)


note_text = st.lists(
    st.text(st.characters(min_codepoint=0x20, codec="utf-8"), max_size=40),
    min_size=1, max_size=6,
).map(lambda lines: "".join(line + "\n" for line in lines).encode())
key_names = st.text(
    st.characters(min_codepoint=0x21, exclude_characters="+", exclude_categories=("Zs", "Zl",
                                                                                  "Zp", "Cs")),
    min_size=1, max_size=30,
).filter(lambda name: not any(c.isspace() for c in name))


@settings(max_examples=150, deadline=None)
@given(text=note_text, name=key_names, label=st.text(max_size=8))
def test_round_trip_property(text: bytes, name: str, label: str) -> None:
    seed = seed_of(label)
    data = signed(text, name, seed)
    note = parse_note(data)
    assert note.text == text and note.encode() == data
    verify_note(note, name, public_of(seed))


# --- strict parsing ----------------------------------------------------------------------

SIG_LINE = signed().split(b"\n\n")[1]
BLOB = SIG_LINE.decode().split(" ")[2].rstrip("\n")


def with_line(line: str) -> bytes:
    return TEXT + b"\n" + line.encode("utf-8")


@pytest.mark.parametrize("data", [
    TEXT + SIG_LINE,
    TEXT.rstrip(b"\n") + b" " + SIG_LINE,
    b"",
    SIG_LINE,
], ids=["no-blank-line", "text-runs-into-signature", "empty", "signature-only"])
def test_missing_blank_line_is_malformed(data: bytes) -> None:
    assert code_of(lambda: parse_note(data)) == MALFORMED


@pytest.mark.parametrize("data", [TEXT + b"\n", TEXT + b"\n\n", b"\n\n"],
                         ids=["blank-line-only", "two-blank-lines", "nothing-at-all"])
def test_a_note_without_signatures_is_malformed(data: bytes) -> None:
    assert code_of(lambda: parse_note(data)) == MALFORMED


@pytest.mark.parametrize("line", [
    f"\u2013 {NAME} {BLOB}\n",  # en dash
    f"- {NAME} {BLOB}\n",  # hyphen-minus
    f"-- {NAME} {BLOB}\n",
    f"\u2014{NAME} {BLOB}\n",  # no space after the dash
    f"\u2014\u00a0{NAME} {BLOB}\n",  # no-break space after the dash
    f" \u2014 {NAME} {BLOB}\n",  # leading space
    f"{NAME} {BLOB}\n",
], ids=["en-dash", "hyphen", "double-hyphen", "no-space", "nbsp", "leading-space", "no-dash"])
def test_bad_em_dash_is_malformed(line: str) -> None:
    assert code_of(lambda: parse_note(with_line(line))) == MALFORMED


@pytest.mark.parametrize("line", [
    f"\u2014 rogatory/log/XA MOJ {BLOB}\n",  # space in the name: three fields
    f"\u2014 rogatory/log/XA+MOJ {BLOB}\n",
    f"\u2014 a+b {BLOB}\n",
    f"\u2014 +{BLOB}\n",
    f"\u2014  {BLOB}\n",  # empty name
    f"\u2014 a\u2003b {BLOB}\n",  # em space (a Unicode space)
    f"\u2014 a\u00a0b {BLOB}\n",  # no-break space
    f"\u2014 a\tb {BLOB}\n",
    f"\u2014 {NAME}  {BLOB}\n",  # two spaces
    f"\u2014 {NAME} {BLOB} \n",  # trailing space
    f"\u2014 {NAME}\n",  # no signature
], ids=["space", "plus-in-authority", "plus", "plus-only", "empty-name", "em-space", "nbsp",
        "tab", "two-spaces", "trailing-space", "no-signature"])
def test_bad_names_and_fields_are_malformed(line: str) -> None:
    assert code_of(lambda: parse_note(with_line(line))) == MALFORMED


def _spare_bits(blob: str) -> str:
    """The same bytes with a non-zero spare bit: decodes leniently, but is not canonical."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = blob.rstrip("=")
    last = alphabet[alphabet.index(body[-1]) | 1]
    return body[:-1] + last + blob[len(body):]


@pytest.mark.parametrize("blob", [
    BLOB.rstrip("="),  # padding dropped
    BLOB + "=",
    _spare_bits(BLOB),
    BLOB.replace("+", "-").replace("/", "_") if ("+" in BLOB or "/" in BLOB) else "-" + BLOB[1:],
    BLOB[:10] + "\r" + BLOB[10:],
    BLOB[:10] + " " + BLOB[10:],
    "!" + BLOB[1:],
    "",
    base64.b64encode(b"\x01\x02\x03\x04").decode(),  # a key id and nothing else
], ids=["unpadded", "extra-padding", "spare-bits", "url-alphabet", "carriage-return",
        "inner-space", "bad-character", "empty", "four-bytes"])
def test_non_canonical_or_short_base64_is_malformed(blob: str) -> None:
    assert base64.b64decode(_spare_bits(BLOB)) == base64.b64decode(BLOB)
    assert code_of(lambda: parse_note(with_line(f"\u2014 {NAME} {blob}\n"))) == MALFORMED


@pytest.mark.parametrize("char", ["\x00", "\x01", "\t", "\r", "\x0b", "\x0c", "\x1b", "\x1f"])
def test_control_characters_are_malformed(char: str) -> None:
    in_text = TEXT[:5] + char.encode() + TEXT[5:]
    forged = in_text + b"\n" + SIG_LINE
    assert code_of(lambda: parse_note(forged)) == MALFORMED
    assert code_of(lambda: sign_note(in_text, NAME, SEED)) == MALFORMED
    assert code_of(lambda: parse_note(with_line(f"\u2014 a{char}b {BLOB}\n"))) == MALFORMED


def test_text_not_ending_in_newline_is_refused() -> None:
    for text in (b"", b"abc", TEXT.rstrip(b"\n"), TEXT + b"x"):
        assert code_of(lambda text=text: sign_note(text, NAME, SEED)) == MALFORMED
    assert code_of(lambda: parse_note(signed().rstrip(b"\n"))) == MALFORMED  # nor the note
    assert code_of(lambda: parse_note(signed() + b" ")) == MALFORMED


def test_other_malformed_notes() -> None:
    good = signed()
    assert code_of(lambda: parse_note(good.replace(b"\xe2\x80\x94", b"\xe2\x80"))) == MALFORMED
    assert code_of(lambda: parse_note(good + b"\n")) == MALFORMED  # blank line after the sigs
    assert code_of(lambda: parse_note(good + b"\xff\n")) == MALFORMED
    huge = b"x" * MAX_NOTE + b"\n" + b"\n" + SIG_LINE
    assert code_of(lambda: parse_note(huge)) == MALFORMED
    assert len(parse_note(TEXT + b"\n" + SIG_LINE * MAX_SIGNATURES).signatures) == MAX_SIGNATURES


def test_signing_refuses_a_bad_name() -> None:
    for name in ("", "a b", "a+b"):
        assert code_of(lambda name=name: sign_note(TEXT, name, SEED)) == MALFORMED


# --- verification ------------------------------------------------------------------------


def test_wrong_key_is_signature_invalid() -> None:
    note = parse_note(signed())
    assert code_of(lambda: verify_note(note, NAME, OTHER_PUBLIC)) == SIGNATURE_INVALID
    forged = parse_note(signed(seed=OTHER_SEED))  # right name, another key
    assert code_of(lambda: verify_note(forged, NAME, PUBLIC)) == SIGNATURE_INVALID


def test_wrong_name_is_signature_invalid() -> None:
    note = parse_note(signed())
    assert code_of(lambda: verify_note(note, "rogatory/log/XB:MOJ", PUBLIC)) == SIGNATURE_INVALID
    renamed = parse_note(signed(name="rogatory/log/XB:MOJ"))  # right key, another name
    assert code_of(lambda: verify_note(renamed, NAME, PUBLIC)) == SIGNATURE_INVALID
    # The key id commits to the name: relabelling a line keeps the old id and is ignored.
    (line,) = parse_note(signed()).signatures
    relabelled = Note(TEXT, (NoteSignature("other", line.key_hash, line.signature),))
    assert code_of(lambda: verify_note(relabelled, "other", PUBLIC)) == SIGNATURE_INVALID


@pytest.mark.parametrize("bit", [0, 7, 100, 250, 511])
def test_flipped_signature_bit_is_signature_invalid(bit: int) -> None:
    (line,) = parse_note(signed()).signatures
    raw = bytearray(line.signature)
    raw[bit // 8] ^= 1 << (bit % 8)
    note = Note(TEXT, (NoteSignature(NAME, line.key_hash, bytes(raw)),))
    assert code_of(lambda: verify_note(parse_note(note.encode()), NAME, PUBLIC)) \
        == SIGNATURE_INVALID


@pytest.mark.parametrize("position", [0, 5, 20, len(TEXT) - 2])
def test_flipped_text_bit_is_signature_invalid(position: int) -> None:
    data = bytearray(signed())
    data[position] ^= 0x01
    assert code_of(lambda: verify_note(parse_note(bytes(data)), NAME, PUBLIC)) \
        == SIGNATURE_INVALID


def test_flipped_key_id_is_ignored_then_signature_invalid() -> None:
    (line,) = parse_note(signed()).signatures
    other_id = bytes([line.key_hash[0] ^ 1]) + line.key_hash[1:]
    note = Note(TEXT, (NoteSignature(NAME, other_id, line.signature),))
    assert code_of(lambda: verify_note(note, NAME, PUBLIC)) == SIGNATURE_INVALID


def test_signatures_by_unknown_keys_are_ignored() -> None:
    mine = sign_note(TEXT, NAME, SEED)
    junk = NoteSignature(NAME, b"\x00\x00\x00\x00", b"\x01" * 64)  # same name, other key id
    other = sign_note(TEXT, "witness.example/w1", OTHER_SEED)
    foreign_type = NoteSignature("witness.example/w2", b"\x01\x02\x03\x04", b"\x05" * 72)
    note = parse_note(Note(TEXT, (junk, other, foreign_type, mine)).encode())
    verify_note(note, NAME, PUBLIC)
    alone = parse_note(Note(TEXT, (junk, other, foreign_type)).encode())
    assert code_of(lambda: verify_note(alone, NAME, PUBLIC)) == SIGNATURE_INVALID


@pytest.mark.parametrize("bad", [
    b"\x00" * 64,  # the right length, not a signature
    b"\x00" * 65,  # the wrong length for Ed25519
    b"\x00",
], ids=["zeros", "65-bytes", "one-byte"])
def test_a_failing_line_of_the_known_key_rejects_the_note(bad: bytes) -> None:
    """c2sp.org/signed-note: a known key's failing signature SHOULD reject the whole note
    (Go's ``Open`` returns InvalidSignatureError), even next to a valid line of that key."""
    mine = sign_note(TEXT, NAME, SEED)
    failing = NoteSignature(NAME, mine.key_hash, bad)
    for lines in ((failing,), (failing, mine), (mine, failing)):
        note = parse_note(Note(TEXT, lines).encode())
        assert code_of(lambda note=note: verify_note(note, NAME, PUBLIC)) == SIGNATURE_INVALID


# --- fuzzing -----------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_parse_note_on_arbitrary_bytes_raises_only_rogatory_errors(data: bytes) -> None:
    try:
        note = parse_note(data)
    except RogatoryError as exc:
        assert exc.code == MALFORMED
        return
    assert note.encode() == data


note_pieces = st.lists(st.sampled_from([
    b"\n", b"\n\n", "\u2014 ".encode(), b" ", b"+", b"a", b"/", b"=", b"\xe2\x80", b"\x00",
    b"\xff", NAME.encode(), BLOB.encode(), SIG_LINE, TEXT,
]), max_size=12).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(note_pieces)
def test_parse_note_on_note_like_bytes_raises_only_rogatory_errors(data: bytes) -> None:
    try:
        note = parse_note(data)
    except RogatoryError as exc:
        assert exc.code == MALFORMED
        return
    assert note.encode() == data
    try:
        verify_note(note, NAME, PUBLIC)
    except RogatoryError as exc:
        assert exc.code == SIGNATURE_INVALID


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_note_is_refused_or_still_genuine(data: st.DataObject) -> None:
    good = signed()
    position = data.draw(st.integers(0, len(good) - 1))
    mutation = data.draw(st.sampled_from(["flip", "delete", "insert"]))
    if mutation == "flip":
        mutated = good[:position] + bytes([good[position] ^ data.draw(st.integers(1, 255))]) \
            + good[position + 1:]
    elif mutation == "delete":
        mutated = good[:position] + good[position + 1:]
    else:
        mutated = good[:position] + data.draw(st.binary(min_size=1, max_size=3)) + good[position:]
    try:
        note = parse_note(mutated)
        verify_note(note, NAME, PUBLIC)
    except RogatoryError as exc:
        assert exc.code in (MALFORMED, SIGNATURE_INVALID)
        return
    assert note.text == TEXT  # only the signature block changed, and harmlessly
