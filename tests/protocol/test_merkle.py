"""RFC 9162 Merkle tree maths: published vectors, the spec's own recursion, and properties.

Expected values come from published test suites, never from this implementation:

* ``CT_*``: the RFC 6962 reference vectors of the certificate-transparency project, as carried
  by transparency-dev/merkle (``testonly/constants.go``, ``proof/verify_test.go``,
  ``rfc6962/rfc6962_test.go``) and google/certificate-transparency
  (``python/ct/crypto/merkle_test.py``, including one real CT log audit path);
* ``TD_*``: which stored nodes a proof needs, from transparency-dev/merkle
  ``proof/proof_test.go`` (the same ``(level, index)`` addressing as ours);
* ``C2SP``: the worked 7-entry example of the C2SP ``merkle-tree`` specification.

Beyond those, proofs are compared with a literal transcription of the RFC's recursive
definitions (``ref_*`` below), and hypothesis checks round trips and tampering on trees of up to
300 leaves built one append at a time, reading only the nodes each ``*_keys`` call declared.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocol import merkle
from protocol.errors import LogError, LogMalformed, LogProofInvalid
from protocol.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    Key,
    append_keys,
    appended_nodes,
    consistency_keys,
    consistency_proof,
    inclusion_keys,
    inclusion_proof,
    leaf_hash,
    node_hash,
    range_keys,
    root_from,
    root_keys,
    root_of,
    verify_consistency,
    verify_inclusion,
)

PROOF_INVALID = "log.proof_invalid"
MALFORMED = "log.malformed"


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


# --- published vectors --------------------------------------------------------------------

CT_INPUTS = [
    hx(""),
    hx("00"),
    hx("10"),
    hx("2021"),
    hx("3031"),
    hx("40414243"),
    hx("5051525354555657"),
    hx("606162636465666768696a6b6c6d6e6f"),
]

CT_EMPTY_ROOT = hx("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

# Roots of the trees of the first 1..8 inputs.
CT_ROOTS = {
    1: hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    2: hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    3: hx("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    4: hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    5: hx("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    6: hx("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    7: hx("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    8: hx("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
}

# Every perfect subtree of the 8-entry tree, by level then index (testonly NodeHashes()).
CT_NODE_HASHES = [
    [
        hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        hx("0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"),
        hx("07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"),
        hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        hx("4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658"),
        hx("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        hx("46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"),
    ],
    [
        hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
        hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        hx("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        hx("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    ],
    [
        hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        hx("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ],
    [
        hx("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
    ],
]

# (index, size, audit path). The Go suite numbers leaves from 1; these are 0-based.
CT_INCLUSION = [
    (0, 1, []),
    (0, 8, [
        hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        hx("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ]),
    (5, 8, [
        hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        hx("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    ]),
    (2, 3, [
        hx("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    ]),
    (1, 5, [
        hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
    ]),
]

# (old size, new size, proof)
CT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, [
        hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
        hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        hx("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
    ]),
    (6, 8, [
        hx("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        hx("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
        hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    ]),
    (2, 5, [
        hx("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
        hx("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
    ]),
    (6, 7, [
        hx("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
        hx("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
        hx("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    ]),
]

# An audit path from a real CT log (google/certificate-transparency python merkle_test.py).
CT_LOG_LEAF_HASH = hx("7a395c866d5ecdb0cccb623e011dbc392cd348d1d1d72776174e127a24b09c78")
CT_LOG_INDEX = 848049
CT_LOG_SIZE = 3630887
CT_LOG_ROOT = hx("78316a05c9bcf14a3a4548f5b854a9adfcd46a4c034401b3ce7eb7ac2f1d0ecb")
CT_LOG_PATH = [hx(h) for h in [
    "1a208aeebcd1b39fe2de247ee8db9454e1e93a312d206b87f6ca9cc6ec6f1ddd",
    "0a1b78b383f580856f433c01a5741e160d451c185910027f6cc9f828687a40c4",
    "3d1745789bc63f2da15850de1c12a5bf46ed81e1cc90f086148b1662e79aab3d",
    "9095b61e14d8990acf390905621e62b1714fb8e399fbb71de5510e0aef45affe",
    "0a332b91b8fab564e6afd1dd452449e04619b18accc0ff9aa8393cd4928451f2",
    "2336f0181d264aed6d8f3a6507ca14a8d3b3c3a23791ac263e845d208c1ee330",
    "b4ce56e300590500360c146c6452edbede25d4ed83919278749ee5dbe178e048",
    "933f6ddc848ea562e4f9c5cfb5f176941301dad0c6fdb9d1fbbe34fac1be6966",
    "b95a6222958a86f74c030be27c44f57dbe313e5e7c7f4ffb98bcbd3a03bb52f2",
    "daeeb3ce5923defd0faeb8e0c210b753b85b809445d7d3d3cd537a9aabaa9c45",
    "7fadd0a13e9138a2aa6c3fdec4e2275af233b94812784f66bcca9aa8e989f2bc",
    "1864e6ba3e32878610546539734fb5eeae2529991f130c575c73a7e25a2a7c56",
    "12842d1202b1dc6828a17ab253c02e7ce9409b5192430feba44189f39cc02d66",
    "29af64b16fa3053c13d02ac63aa75b23aa468506e44c3a2315edc85d2dc22b11",
    "b527b99934a0bd9edd154e449b0502e2c499bba783f3bc3dfe23364b6b532009",
    "4584db8ae8e351ace08e01f306378a92bfd43611714814f3d834a2842d69faa8",
    "86a9a41573b0d6e4292f01e93243d6cc65b30f06606fc6fa57390e7e90ed580f",
    "a88b98fbe84d4c6aae8db9d1605dfac059d9f03fe0fcb0d5dff1295dacba09e6",
    "06326dc617a6d1f7021dc536026dbfd5fffc6f7c5531d48ef6ccd1ed1569f2a1",
    "f41fe8fdc3a2e4e8345e30216e7ebecffee26ff266eeced208a6c2a3cf08f960",
    "40cf5bde8abb76983f3e98ba97aa36240402975674e120f234b3448911090f8d",
    "b3222dc8658538079883d980d7fdc2bef9285344ea34338968f736b04aeb387a",
]]
CT_LOG_ENTRY = hx(
    "00000000013de9d2b29b000000055b308205573082043fa00302010202072b777b56df"
    "7bc5300d06092a864886f70d01010505003081ca310b30090603550406130255533110"
    "300e060355040813074172697a6f6e61311330110603550407130a53636f7474736461"
    "6c65311a3018060355040a1311476f44616464792e636f6d2c20496e632e3133303106"
    "0355040b132a687474703a2f2f6365727469666963617465732e676f64616464792e63"
    "6f6d2f7265706f7369746f72793130302e06035504031327476f204461646479205365"
    "637572652043657274696669636174696f6e20417574686f726974793111300f060355"
    "040513083037393639323837301e170d3133303131343038353035305a170d31353031"
    "31343038353035305a305331163014060355040a130d7777772e69646e65742e6e6574"
    "3121301f060355040b1318446f6d61696e20436f6e74726f6c2056616c696461746564"
    "311630140603550403130d7777772e69646e65742e6e657430820122300d06092a8648"
    "86f70d01010105000382010f003082010a0282010100d4e4a4b1bbc981c9b8166f0737"
    "c113000aa5370b21ad86a831a379de929db258f056ba0681c50211552b249a02ec00c5"
    "37e014805a5b5f4d09c84fdcdfc49310f4a9f9004245d119ce5461bc5c42fd99694b88"
    "388e035e333ac77a24762d2a97ea15622459cc4adcd37474a11c7cff6239f810120f85"
    "e014d2066a3592be604b310055e84a74c91c6f401cb7f78bdb45636fb0b1516b04c5ee"
    "7b3fa1507865ff885d2ace21cbb28fdaa464efaa1d5faab1c65e4c46d2139175448f54"
    "b5da5aea956719de836ac69cd3a74ca049557cee96f5e09e07ba7e7b4ebf9bf167f4c3"
    "bf8039a4cab4bec068c899e997bca58672bd7686b5c85ea24841e48c46f76830390203"
    "010001a38201b6308201b2300f0603551d130101ff04053003010100301d0603551d25"
    "0416301406082b0601050507030106082b06010505070302300e0603551d0f0101ff04"
    "04030205a030330603551d1f042c302a3028a026a0248622687474703a2f2f63726c2e"
    "676f64616464792e636f6d2f676473312d38332e63726c30530603551d20044c304a30"
    "48060b6086480186fd6d010717013039303706082b06010505070201162b687474703a"
    "2f2f6365727469666963617465732e676f64616464792e636f6d2f7265706f7369746f"
    "72792f30818006082b0601050507010104743072302406082b06010505073001861868"
    "7474703a2f2f6f6373702e676f64616464792e636f6d2f304a06082b06010505073002"
    "863e687474703a2f2f6365727469666963617465732e676f64616464792e636f6d2f72"
    "65706f7369746f72792f67645f696e7465726d6564696174652e637274301f0603551d"
    "23041830168014fdac6132936c45d6e2ee855f9abae7769968cce730230603551d1104"
    "1c301a820d7777772e69646e65742e6e6574820969646e65742e6e6574301d0603551d"
    "0e041604144d3ae8a87ddcf046764021b87e7d8d39ddd18ea0300d06092a864886f70d"
    "01010505000382010100ad651b199f340f043732a71178c0af48e22877b9e5d99a70f5"
    "d78537c31d6516e19669aa6bfdb8b2cc7a145ba7d77b35101f9519e03b58e692732314"
    "1383c3ab45dc219bd5a584a2b6333b6e1bbef5f76e89b3c187ef1d3b853b4910e895a4"
    "57dbe7627e759f56c8484c30b22a74fb00f7b1d7c41533a1fd176cd2a2b06076acd7ca"
    "ddc6ca6d0c2a815f9eb3ef0d03d27e7eebd7824c78fdb51679c03278cfbb2d85ae65a4"
    "7485cb733fc1c7407834f7471ababd68f140983817c6f388b2f2e2bfe9e26608f9924f"
    "16473462d136427d1f2801e4b870b078c20ec4ba21e22ab32a00b76522d523825bcabb"
    "8c7b6142d624be8d2af69ecc36fb5689572a0f59c00000"
)

# Stored nodes each proof needs (transparency-dev proof_test.go): (size, index) -> node ids.
TD_INCLUSION_NODES: list[tuple[int, int, set[Key]]] = [
    (1, 0, set()),
    (2, 0, {(0, 1)}),
    (2, 1, {(0, 0)}),
    (3, 1, {(0, 0), (0, 2)}),
    (7, 0, {(0, 1), (1, 1), (0, 6), (1, 2)}),
    (7, 1, {(0, 0), (1, 1), (0, 6), (1, 2)}),
    (7, 2, {(0, 3), (1, 0), (0, 6), (1, 2)}),
    (7, 3, {(0, 2), (1, 0), (0, 6), (1, 2)}),
    (7, 4, {(0, 5), (0, 6), (2, 0)}),
    (7, 5, {(0, 4), (0, 6), (2, 0)}),
    (7, 6, {(1, 2), (2, 0)}),
    (4, 2, {(0, 3), (1, 0)}),
    (5, 3, {(0, 2), (1, 0), (0, 4)}),
    (6, 3, {(0, 2), (1, 0), (1, 2)}),
    (6, 4, {(0, 5), (2, 0)}),
    (15, 10, {(0, 11), (1, 4), (0, 14), (1, 6), (3, 0)}),
    (31, 24, {(0, 25), (1, 13), (0, 30), (1, 14), (3, 2), (4, 0)}),
    (95, 81, {(0, 80), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)}),
]
TD_INCLUSION_ERRORS = [(0, 0), (0, 1), (1, 2), (0, 3), (7, 8)]  # (size, index)

TD_CONSISTENCY_NODES: list[tuple[int, int, set[Key]]] = [
    (1, 2, {(0, 1)}),
    (1, 4, {(0, 1), (1, 1)}),
    (1, 6, {(0, 1), (1, 1), (1, 2)}),
    (2, 3, {(0, 2)}),
    (2, 8, {(1, 1), (2, 1)}),
    (3, 7, {(0, 2), (0, 3), (1, 0), (0, 6), (1, 2)}),
    (4, 7, {(0, 6), (1, 2)}),
    (5, 7, {(0, 4), (0, 5), (0, 6), (2, 0)}),
    (6, 7, {(1, 2), (0, 6), (2, 0)}),
    (7, 8, {(0, 6), (0, 7), (1, 2), (2, 0)}),
    *[(size, size, set()) for size in (1, 2, 3, 4, 5, 7, 8)],
    (2, 4, {(1, 1)}),
    (3, 5, {(0, 2), (0, 3), (1, 0), (0, 4)}),
    (3, 6, {(0, 2), (0, 3), (1, 0), (1, 2)}),
    (4, 6, {(1, 2)}),
    (1, 7, {(0, 1), (1, 1), (0, 6), (1, 2)}),
    (10, 15, {(1, 4), (1, 5), (0, 14), (1, 6), (3, 0)}),
    (24, 31, {(3, 2), (0, 30), (1, 14), (2, 6), (4, 0)}),
    (81, 95, {(0, 80), (0, 81), (1, 41), (2, 21), (0, 94), (1, 46), (2, 22), (4, 4), (6, 0)}),
]
TD_CONSISTENCY_ERRORS = [(5, 0), (9, 8)]  # (old size, new size)


# --- helpers ------------------------------------------------------------------------------


class Supplied(Mapping[Key, bytes]):
    """Exactly the nodes a caller fetched for some keys; records which ones were read."""

    def __init__(self, source: Mapping[Key, bytes], keys: set[Key] | list[Key]) -> None:
        self._data = {key: source[key] for key in keys}
        self.reads: set[Key] = set()

    def __getitem__(self, key: Key) -> bytes:
        value = self._data[key]
        self.reads.add(key)
        return value

    def __iter__(self) -> Iterator[Key]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def build(leaves: Sequence[bytes]) -> dict[Key, bytes]:
    """The store a log keeps: leaves appended one at a time, reading only ``append_keys``."""
    nodes: dict[Key, bytes] = {}
    for index, leaf in enumerate(leaves):
        siblings = Supplied(nodes, append_keys(index))
        written = appended_nodes(index, leaf, siblings)
        assert siblings.reads == set(append_keys(index))
        assert not set(nodes) & {key for key, _ in written}, "a stored node was rewritten"
        nodes.update(written)
    return nodes


def complete_at(key: Key, size: int) -> bool:
    level, index = key
    return (index + 1) << level <= size


def flip(data: bytes, bit: int) -> bytes:
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


def ceil_log2(n: int) -> int:
    return (n - 1).bit_length()


def proof_error(call: object, *args: object) -> str:
    assert callable(call)
    with pytest.raises(LogError) as caught:
        call(*args)
    return caught.value.code


# A literal transcription of the RFC 9162 §2.1 recursive definitions, over leaf hashes.


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(hashes: Sequence[bytes]) -> bytes:
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = _k(len(hashes))
    return node_hash(ref_mth(hashes[:k]), ref_mth(hashes[k:]))


def ref_path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = _k(len(hashes))
    if m < k:
        return [*ref_path(m, hashes[:k]), ref_mth(hashes[k:])]
    return [*ref_path(m - k, hashes[k:]), ref_mth(hashes[:k])]


def ref_subproof(m: int, hashes: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if whole else [ref_mth(hashes)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, hashes[:k], whole), ref_mth(hashes[k:])]
    return [*ref_subproof(m - k, hashes[k:], False), ref_mth(hashes[:k])]


MAX_LEAVES = 300
LEAVES = [leaf_hash(b"rogatory test entry %d" % i) for i in range(MAX_LEAVES)]
NODES = build(LEAVES)
ROOTS = [root_of(LEAVES[:size]) for size in range(MAX_LEAVES + 1)]
CT_LEAVES = [leaf_hash(entry) for entry in CT_INPUTS]
CT_NODES = build(CT_LEAVES)


# --- hashing ------------------------------------------------------------------------------


def test_hashes_match_the_published_values() -> None:
    assert EMPTY_ROOT == CT_EMPTY_ROOT
    assert HASH_SIZE == 32
    # transparency-dev rfc6962_test.go
    assert leaf_hash(b"") == hx("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert leaf_hash(b"L123456") == hx(
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    assert node_hash(b"N123", b"N456") == hx(
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb")
    # certificate-transparency merkle_test.py TreeHasherTest
    assert leaf_hash(hx("101112131415161718191a1b1c1d1e1f")) == hx(
        "3bfb960453ebaebf33727da7a1f4db38acc051d381b6da20d6d4e88f0eabfd7a")
    assert node_hash(
        hx("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
        hx("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"),
    ) == hx("1a378704c17da31e2d05b6d121c2bb2c7d76f6ee6fa8f983e596c2d034963c57")
    assert leaf_hash(CT_LOG_ENTRY) == CT_LOG_LEAF_HASH


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    left, right = leaf_hash(b"Hello"), leaf_hash(b"World")
    assert left != right
    assert node_hash(left, right) != leaf_hash(left + right)
    assert node_hash(left, right) != node_hash(right, left)


# --- the published 8-entry tree -----------------------------------------------------------


def test_appending_the_ct_inputs_stores_exactly_the_published_perfect_subtrees() -> None:
    expected = {
        (level, index): value
        for level, row in enumerate(CT_NODE_HASHES)
        for index, value in enumerate(row)
    }
    assert expected == CT_NODES


@pytest.mark.parametrize("size", range(9))
def test_roots_match_the_published_roots(size: int) -> None:
    expected = CT_EMPTY_ROOT if size == 0 else CT_ROOTS[size]
    assert root_of(CT_LEAVES[:size]) == expected
    keys = root_keys(size)
    supplied = Supplied(CT_NODES, keys)
    assert root_from(size, supplied) == expected
    assert supplied.reads == set(keys)


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_inclusion_proofs_match_the_published_paths(
    index: int, size: int, path: list[bytes]
) -> None:
    supplied = Supplied(CT_NODES, inclusion_keys(index, size))
    assert inclusion_proof(index, size, supplied) == path
    verify_inclusion(CT_LEAVES[index], index, size, path, CT_ROOTS[size])


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY)
def test_consistency_proofs_match_the_published_proofs(
    old: int, new: int, proof: list[bytes]
) -> None:
    supplied = Supplied(CT_NODES, consistency_keys(old, new))
    assert consistency_proof(old, new, supplied) == proof
    verify_consistency(old, new, CT_ROOTS[old], CT_ROOTS[new], proof)


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION[1:])
def test_published_inclusion_proofs_refuse_every_corruption(
    index: int, size: int, path: list[bytes]
) -> None:
    """The probes of transparency-dev verify_test.go corruptInclusionProof."""
    leaf, root = CT_LEAVES[index], CT_ROOTS[size]
    some_hash = hx("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes: list[tuple[bytes, int, int, list[bytes], bytes]] = [
        (leaf, index + 1, size, path, root),
        (leaf, index ^ 2, size, path, root),
        (leaf, index, size * 2, path, root),
        (leaf, index, size // 2, path, root),
        (leaf_hash(b"WrongLeaf"), index, size, path, root),
        (leaf, index, size, path, CT_EMPTY_ROOT),
        (leaf, index, size, path, some_hash),
        (leaf, index, size, [*path, b""], root),
        (leaf, index, size, [*path, root], root),
        (leaf, index, size, [b"", *path], root),
        (leaf, index, size, [root, *path], root),
        (leaf, index, size, path[:-1], root),
        (leaf, index, size, [path[0], some_hash, *path[1:]], root),
    ]
    if index:
        probes.append((leaf, index - 1, size, path, root))
    for position in range(len(path)):
        changed = list(path)
        changed[position] = flip(changed[position], 3)
        probes.append((leaf, index, size, changed, root))
    for probe in probes:
        assert proof_error(verify_inclusion, *probe) == PROOF_INVALID, probe


@pytest.mark.parametrize(("old", "new", "proof"), CT_CONSISTENCY[1:])
def test_published_consistency_proofs_refuse_every_corruption(
    old: int, new: int, proof: list[bytes]
) -> None:
    """The probes of transparency-dev verify_test.go corruptConsistencyProof."""
    first, second = CT_ROOTS[old], CT_ROOTS[new]
    wrong = leaf_hash(b"WrongRoot")
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (old - 1, new, first, second, proof),
        (old + 1, new, first, second, proof),
        (old ^ 2, new, first, second, proof),
        (old, new * 2, first, second, proof),
        (old, new // 2, first, second, proof),
        (old, new, b"WrongRoot", second, proof),
        (old, new, first, b"WrongRoot", proof),
        (old, new, wrong, second, proof),
        (old, new, first, wrong, proof),
        (old, new, second, first, proof),
        (old, new, first, second, []),
        (old, new, first, second, [*proof, b""]),
        (old, new, first, second, [*proof, first]),
        (old, new, first, second, [*proof, second]),
        (old, new, first, second, [b"", *proof]),
        (old, new, first, second, [first, *proof]),
        (old, new, first, second, [second, *proof]),
        (old, new, first, second, [proof[0], *proof]),
        (old, new, first, second, proof[:-1]),
    ]
    for position in range(len(proof)):
        changed = list(proof)
        changed[position] = flip(changed[position], 4)
        probes.append((old, new, first, second, changed))
    for probe in probes:
        assert proof_error(verify_consistency, *probe) == PROOF_INVALID, probe


def test_trivial_consistency_cases() -> None:
    """transparency-dev TestVerifyConsistency, with 32-byte roots.

    Deviation, on purpose: the Go suite accepts any old root for size 0 ("don't care"); here
    the old root of an empty tree must be the empty root, since that is what it is.
    """
    root1, root2 = leaf_hash(b"don't care 1"), leaf_hash(b"don't care 2")
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    verify_consistency(0, 1, EMPTY_ROOT, root2, [])
    verify_consistency(1, 1, root2, root2, [])
    refused: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (0, 0, root1, root2, []),
        (1, 1, root1, root2, []),
        (0, 0, root1, root1, []),
        (0, 1, root1, root2, []),
        (1, 0, root1, root2, []),
        (2, 1, root1, root2, []),
        (1, 2, root1, root2, []),
        (0, 0, EMPTY_ROOT, root2, []),
        (1, 1, EMPTY_ROOT, root2, []),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),
    ]
    for probe in refused:
        assert proof_error(verify_consistency, *probe) == PROOF_INVALID, probe


def test_trivial_inclusion_cases() -> None:
    """transparency-dev TestVerifyInclusion and TestVerifyInclusionSingleEntry."""
    some_hash = hx("abacaba000000000000000000000000000000000000000000060061e00123456")
    for index, size in [(0, 0), (0, 1), (1, 0), (2, 1)]:
        for leaf, root in [(some_hash, b""), (b"", EMPTY_ROOT), (some_hash, EMPTY_ROOT)]:
            assert proof_error(verify_inclusion, leaf, index, size, [], root) == PROOF_INVALID
    single = leaf_hash(b"data")
    verify_inclusion(single, 0, 1, [], single)
    for leaf, root in [(single, b""), (b"", single), (b"", b"")]:
        assert proof_error(verify_inclusion, leaf, 0, 1, [], root) == PROOF_INVALID


def test_a_real_ct_log_audit_path_verifies() -> None:
    verify_inclusion(CT_LOG_LEAF_HASH, CT_LOG_INDEX, CT_LOG_SIZE, CT_LOG_PATH, CT_LOG_ROOT)
    bad: list[tuple[bytes, int, int, list[bytes], bytes]] = [
        (CT_LOG_LEAF_HASH, CT_LOG_INDEX, CT_LOG_SIZE, CT_LOG_PATH, bytes(32)),
        (CT_LOG_LEAF_HASH, CT_LOG_INDEX + 2 ** 23, CT_LOG_SIZE, CT_LOG_PATH, CT_LOG_ROOT),
        (CT_LOG_LEAF_HASH, CT_LOG_INDEX + 1, CT_LOG_SIZE, CT_LOG_PATH, CT_LOG_ROOT),
        (CT_LOG_LEAF_HASH, CT_LOG_INDEX, CT_LOG_SIZE * 2, CT_LOG_PATH, CT_LOG_ROOT),
        (CT_LOG_LEAF_HASH, CT_LOG_INDEX, CT_LOG_SIZE // 2, CT_LOG_PATH, CT_LOG_ROOT),
        (CT_LOG_LEAF_HASH, CT_LOG_INDEX, CT_LOG_SIZE, CT_LOG_PATH[:-1], CT_LOG_ROOT),
        (bytes(32), CT_LOG_INDEX, CT_LOG_SIZE, CT_LOG_PATH, CT_LOG_ROOT),
    ]
    for probe in bad:
        assert proof_error(verify_inclusion, *probe) == PROOF_INVALID


@pytest.mark.parametrize(("size", "index", "expected"), TD_INCLUSION_NODES)
def test_inclusion_reads_the_published_node_set(size: int, index: int, expected: set[Key]) -> None:
    assert inclusion_keys(index, size) == expected


@pytest.mark.parametrize(("old", "new", "expected"), TD_CONSISTENCY_NODES)
def test_consistency_reads_the_published_node_set(old: int, new: int, expected: set[Key]) -> None:
    assert consistency_keys(old, new) == expected


@pytest.mark.parametrize(("size", "index"), TD_INCLUSION_ERRORS)
def test_inclusion_of_a_leaf_outside_the_tree_is_refused(size: int, index: int) -> None:
    assert proof_error(inclusion_keys, index, size) == MALFORMED
    assert proof_error(inclusion_proof, index, size, NODES) == MALFORMED


@pytest.mark.parametrize(("old", "new"), TD_CONSISTENCY_ERRORS)
def test_consistency_with_a_shrinking_tree_is_refused(old: int, new: int) -> None:
    assert proof_error(consistency_keys, old, new) == MALFORMED
    assert proof_error(consistency_proof, old, new, NODES) == MALFORMED


# --- the C2SP merkle-tree worked example --------------------------------------------------


def test_the_c2sp_seven_entry_example() -> None:
    a, b, c, d, e, f, g = CT_LEAVES[:7]
    h, i, j = node_hash(a, b), node_hash(c, d), node_hash(e, f)
    k, l_ = node_hash(h, i), node_hash(j, g)
    root = node_hash(k, l_)
    assert root == CT_ROOTS[7]
    nodes = build(CT_LEAVES[:7])
    assert root_from(7, Supplied(nodes, root_keys(7))) == root

    for index, expected in [(0, [b, i, l_]), (3, [c, h, l_]), (4, [f, g, k]), (6, [j, k])]:
        assert inclusion_proof(index, 7, Supplied(nodes, inclusion_keys(index, 7))) == expected
        verify_inclusion(CT_LEAVES[index], index, 7, expected, root)
    for old, expected in [(3, [c, d, h, l_]), (4, [l_]), (6, [j, g, k])]:
        assert consistency_proof(old, 7, Supplied(nodes, consistency_keys(old, 7))) == expected
        verify_consistency(old, 7, CT_ROOTS[old], root, expected)


# --- against the RFC's own recursion ------------------------------------------------------


def test_root_of_and_root_from_agree_with_the_rfc_definition_up_to_300() -> None:
    for size in range(MAX_LEAVES + 1):
        expected = ref_mth(LEAVES[:size]) if size <= 64 or size % 7 == 0 else ROOTS[size]
        assert ROOTS[size] == expected
        keys = root_keys(size)
        assert all(complete_at(key, size) for key in keys)
        assert len(keys) == size.bit_count()
        assert root_from(size, Supplied(NODES, keys)) == ROOTS[size]


def test_every_proof_of_small_trees_is_the_rfc_path_and_subproof() -> None:
    for size in range(1, 49):
        hashes = LEAVES[:size]
        for index in range(size):
            keys = inclusion_keys(index, size)
            supplied = Supplied(NODES, keys)
            assert inclusion_proof(index, size, supplied) == ref_path(index, hashes)
            assert supplied.reads == keys
        for old in range(1, size + 1):
            keys = consistency_keys(old, size)
            supplied = Supplied(NODES, keys)
            assert consistency_proof(old, size, supplied) == ref_subproof(old, hashes, True)
            assert supplied.reads == keys


def test_the_right_edge_node_is_a_right_fold_of_its_perfect_subtrees() -> None:
    """MTH(D[4:7]) is node(node(e, f), g): folding the tiling from the left would not do."""
    keys = range_keys(4, 7)
    assert keys == [(1, 2), (0, 6)]
    # MTH(D[0:7]) = node(k, node(j, g)), whereas a left fold gives node(node(k, j), g).
    tiles = [CT_NODES[key] for key in root_keys(7)]
    assert root_keys(7) == [(2, 0), (1, 2), (0, 6)]
    assert node_hash(tiles[0], node_hash(tiles[1], tiles[2])) == CT_ROOTS[7]
    assert node_hash(node_hash(tiles[0], tiles[1]), tiles[2]) != CT_ROOTS[7]


# --- properties over trees of up to 300 leaves --------------------------------------------

sizes = st.integers(min_value=1, max_value=MAX_LEAVES)


@st.composite
def positions(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(sizes)
    return draw(st.integers(min_value=0, max_value=size - 1)), size


@st.composite
def size_pairs(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(sizes)
    return draw(st.integers(min_value=0, max_value=new)), new


@settings(max_examples=200, deadline=None)
@given(positions(), st.data())
def test_inclusion_proofs_verify_and_refuse_tampering(
    position: tuple[int, int], data: st.DataObject
) -> None:
    index, size = position
    leaf, root = LEAVES[index], ROOTS[size]
    keys = inclusion_keys(index, size)
    assert all(complete_at(key, size) for key in keys), "a key outside the tree was requested"
    supplied = Supplied(NODES, keys)
    proof = inclusion_proof(index, size, supplied)
    assert supplied.reads == keys
    verify_inclusion(leaf, index, size, proof, root)

    bound = ceil_log2(size)
    assert len(proof) <= bound <= 2 * bound
    assert len(keys) <= 2 * bound
    assert len(keys) <= (bound + 1) ** 2

    for position_in_proof in range(len(proof)):
        bit = data.draw(st.integers(min_value=0, max_value=8 * HASH_SIZE - 1))
        changed = list(proof)
        changed[position_in_proof] = flip(changed[position_in_proof], bit)
        assert proof_error(verify_inclusion, leaf, index, size, changed, root) == PROOF_INVALID
    bit = data.draw(st.integers(min_value=0, max_value=8 * HASH_SIZE - 1))
    assert proof_error(verify_inclusion, leaf, index, size, proof, flip(root, bit)) == PROOF_INVALID
    assert proof_error(verify_inclusion, flip(leaf, bit), index, size, proof, root) == PROOF_INVALID

    other_index = data.draw(st.integers(min_value=0, max_value=size + 3).filter(
        lambda value: value != index))
    assert proof_error(verify_inclusion, leaf, other_index, size, proof, root) == PROOF_INVALID
    # A different size, with that tree's true root: the proof must not carry over. (With the
    # old root a neighbouring size can accept the same path; the signed checkpoint binds size
    # and root together, so only this form of the claim is meaningful.)
    other_size = data.draw(sizes.filter(lambda value: value != size))
    assert proof_error(
        verify_inclusion, leaf, index, other_size, proof, ROOTS[other_size]) == PROOF_INVALID
    if proof:
        assert proof_error(verify_inclusion, leaf, index, size, proof[:-1], root) == PROOF_INVALID
    assert proof_error(verify_inclusion, leaf, index, size, [*proof, root], root) == PROOF_INVALID


@settings(max_examples=200, deadline=None)
@given(size_pairs(), st.data())
def test_consistency_proofs_verify_and_refuse_tampering(
    pair: tuple[int, int], data: st.DataObject
) -> None:
    old, new = pair
    first, second = ROOTS[old], ROOTS[new]
    keys = consistency_keys(old, new)
    assert all(complete_at(key, new) for key in keys), "a key outside the tree was requested"
    supplied = Supplied(NODES, keys)
    proof = consistency_proof(old, new, supplied)
    assert supplied.reads == keys
    verify_consistency(old, new, first, second, proof)

    bound = ceil_log2(new)
    assert len(proof) <= bound + 1
    assert len(proof) <= 2 * bound or new == 1
    assert len(keys) <= 2 * bound
    assert len(keys) <= (bound + 1) ** 2
    assert (proof == []) == (old in (0, new))

    for position_in_proof in range(len(proof)):
        bit = data.draw(st.integers(min_value=0, max_value=8 * HASH_SIZE - 1))
        changed = list(proof)
        changed[position_in_proof] = flip(changed[position_in_proof], bit)
        assert proof_error(verify_consistency, old, new, first, second, changed) == PROOF_INVALID
    bit = data.draw(st.integers(min_value=0, max_value=8 * HASH_SIZE - 1))
    assert proof_error(
        verify_consistency, old, new, flip(first, bit), second, proof) == PROOF_INVALID
    if old != 0:
        assert proof_error(
            verify_consistency, old, new, first, flip(second, bit), proof) == PROOF_INVALID
    if first != second:
        assert proof_error(verify_consistency, old, new, second, first, proof) == PROOF_INVALID

    other_new = data.draw(st.integers(min_value=2, max_value=MAX_LEAVES))
    other_old = data.draw(st.integers(min_value=1, max_value=other_new - 1))
    assume((other_old, other_new) != (old, new))
    assert proof_error(
        verify_consistency, other_old, other_new, ROOTS[other_old], ROOTS[other_new], proof
    ) == PROOF_INVALID
    if proof:
        assert proof_error(
            verify_consistency, old, new, first, second, proof[:-1]) == PROOF_INVALID
        assert proof_error(
            verify_consistency, old, new, first, second, [*proof, second]) == PROOF_INVALID


# --- key arithmetic on large trees (no hashing) -------------------------------------------

big = st.integers(min_value=1, max_value=2**48)


@settings(max_examples=300, deadline=None)
@given(big, big)
def test_range_keys_tile_the_range_with_maximal_aligned_blocks(a: int, b: int) -> None:
    start, end = min(a, b) - 1, max(a, b)
    keys = range_keys(start, end)
    position = start
    for level, index in keys:
        assert index << level == position, "blocks must be contiguous and aligned"
        block = 1 << level
        # Maximal: doubling the block would misalign it or run past the end.
        assert position % (2 * block) != 0 or position + 2 * block > end
        position += block
    assert position == end
    assert len(keys) <= 2 * max(1, (end - start).bit_length())
    assert range_keys(end, end) == []


@settings(max_examples=200, deadline=None)
@given(big, st.data())
def test_key_counts_stay_logarithmic_for_huge_trees(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    old = data.draw(st.integers(min_value=0, max_value=size))
    bound = max(1, ceil_log2(size))
    assert len(root_keys(size)) <= bound + 1
    assert len(inclusion_keys(index, size)) <= 2 * bound
    assert len(consistency_keys(old, size)) <= 2 * bound
    assert all(complete_at(key, size) for key in inclusion_keys(index, size))
    assert all(complete_at(key, size) for key in consistency_keys(old, size))


def test_key_counts_for_every_pair_up_to_128() -> None:
    for size in range(1, 129):
        bound = ceil_log2(size)
        for index in range(size):
            assert len(inclusion_keys(index, size)) <= 2 * bound
        for old in range(size + 1):
            assert len(consistency_keys(old, size)) <= 2 * bound


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=2**48))
def test_append_keys_are_the_left_siblings_of_the_completed_parents(index: int) -> None:
    keys = append_keys(index)
    trailing_ones = (index ^ (index + 1)).bit_length() - 1
    assert len(keys) == trailing_ones
    for level, sibling in keys:
        assert sibling % 2 == 0
        assert (sibling + 2) << level == index + 1
        assert complete_at((level, sibling), index), "a sibling must already be stored"
    assert [level for level, _ in keys] == list(range(trailing_ones))


def test_appending_keeps_exactly_the_complete_perfect_subtrees() -> None:
    nodes: dict[Key, bytes] = {}
    for size in range(1, 130):
        written = appended_nodes(size - 1, LEAVES[size - 1], NODES)
        assert len(written) <= size.bit_length()
        nodes.update(written)
        expected = {key for key in NODES if complete_at(key, size)}
        assert set(nodes) == expected
        assert all(nodes[key] == NODES[key] for key in nodes)


# --- argument checking --------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, True, 1.0, "3", None])
def test_sizes_and_indices_must_be_non_negative_integers(bad: object) -> None:
    calls: list[tuple[object, ...]] = [
        (range_keys, bad, 4),
        (range_keys, 0, bad),
        (root_keys, bad),
        (root_from, bad, {}),
        (inclusion_keys, bad, 4),
        (inclusion_keys, 0, bad),
        (inclusion_proof, bad, 4, NODES),
        (consistency_keys, bad, 4),
        (consistency_keys, 1, bad),
        (consistency_proof, bad, 4, NODES),
        (append_keys, bad),
        (appended_nodes, bad, LEAVES[0], NODES),
        (verify_inclusion, LEAVES[0], bad, 4, [], ROOTS[4]),
        (verify_inclusion, LEAVES[0], 0, bad, [], ROOTS[4]),
        (verify_consistency, bad, 4, ROOTS[1], ROOTS[4], []),
        (verify_consistency, 1, bad, ROOTS[1], ROOTS[4], []),
    ]
    for call, *args in calls:
        assert proof_error(call, *args) == MALFORMED, (call, args)


def test_malformed_inputs_are_refused() -> None:
    assert proof_error(range_keys, 5, 4) == MALFORMED
    assert proof_error(root_of, [b"short"]) == MALFORMED
    assert proof_error(appended_nodes, 0, b"short", {}) == MALFORMED
    assert proof_error(verify_inclusion, "leaf", 0, 1, [], ROOTS[1]) == MALFORMED
    assert proof_error(verify_consistency, 1, 2, ROOTS[1], ROOTS[2], ["not bytes"]) == MALFORMED


def test_missing_or_damaged_nodes_are_malformed_not_wrong_proofs() -> None:
    keys = inclusion_keys(5, 13)
    missing = dict(Supplied(NODES, keys))
    missing.pop(sorted(keys)[0])
    assert proof_error(inclusion_proof, 5, 13, missing) == MALFORMED
    damaged = {key: NODES[key][:-1] for key in keys}
    assert proof_error(inclusion_proof, 5, 13, damaged) == MALFORMED
    assert proof_error(root_from, 13, {}) == MALFORMED
    assert proof_error(appended_nodes, 3, LEAVES[3], {}) == MALFORMED
    assert proof_error(consistency_proof, 3, 13, {}) == MALFORMED


def test_empty_and_trivial_trees() -> None:
    assert root_of([]) == EMPTY_ROOT
    assert root_keys(0) == []
    assert root_from(0, {}) == EMPTY_ROOT
    assert consistency_keys(0, 9) == set() and consistency_proof(0, 9, {}) == []
    assert consistency_keys(9, 9) == set() and consistency_proof(9, 9, {}) == []
    assert inclusion_keys(0, 1) == set() and inclusion_proof(0, 1, {}) == []
    assert append_keys(0) == [] and appended_nodes(0, LEAVES[0], {}) == [((0, 0), LEAVES[0])]


def test_errors_carry_their_stable_codes() -> None:
    assert LogProofInvalid.code == PROOF_INVALID
    assert LogMalformed.code == MALFORMED
    assert set(merkle.__all__) >= {"verify_inclusion", "verify_consistency", "Key"}


@settings(max_examples=200)
@given(sizes, st.data())
def test_inclusion_proofs_of_many_leaves_are_their_proofs_one_by_one(
        size: int, data: st.DataObject) -> None:
    """The receiver proves a batch at once; sharing the hashes of common ranges changes nothing,
    and it reads exactly the nodes the single proofs read."""
    indices = data.draw(st.lists(st.integers(min_value=0, max_value=size - 1), max_size=70))
    keys = merkle.inclusion_keys_many(indices, size)
    assert keys == set().union(*(inclusion_keys(i, size) for i in indices))
    supplied = Supplied(NODES, keys)
    assert merkle.inclusion_proofs(indices, size, supplied) == [
        inclusion_proof(i, size, NODES) for i in indices]
    assert supplied.reads == keys
    with pytest.raises(LogMalformed):
        merkle.inclusion_keys_many([*indices, size], size)
