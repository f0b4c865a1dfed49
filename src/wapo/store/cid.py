"""Content ids computed exactly as ``ipfs add`` computes them by default.

A script published here must have the same id as on IPFS, so we re-implement
the default importer of go-ipfs/kubo (``ipfs add`` with no flags):

* chunker ``size-262144``: the file is cut into fixed 256 KiB chunks; only the
  last one may be shorter. A file of exactly N * 256 KiB gives N chunks (the
  splitter stops at EOF, it never emits an empty trailing chunk).
* leaves are dag-pb nodes holding a UnixFS ``File`` (``--raw-leaves=false``
  is the default for CIDv0): ``Data{Type=File, Data=<chunk>, filesize=len}``.
* layout ``balanced`` with ``DefaultLinksPerBlock = 174`` links per node.
* CIDv0: base58btc of the sha2-256 multihash of the root node's bytes.

The balanced layout (go-unixfs ``importer/balanced/builder.go``) works like
this: the first leaf becomes the root. While data remains, a new root of depth
``d`` (1, 2, ...) is created whose first child is the old root (a full tree of
depth ``d-1``), and it is filled with ``fillNodeRec(depth=d)``: children are
added while the node has fewer than 174 links and data remains; at depth 1 the
children are leaves, deeper they are fresh internal nodes filled recursively
with depth ``d-1``. The result is a tree whose depth is the smallest ``d``
with ``174**d >= leaves`` (a lone leaf is its own root), where every internal
node of height ``h`` covers a run of up to ``174**h`` consecutive leaves, and
all subtrees are packed to the left. Note that an internal node may have a
single child (e.g. 175 leaves: the root has two children, a full node of 174
leaves and a node holding one leaf); only the root is ever a bare leaf. Given
the list of leaves, that shape is fully determined, so we hash each leaf as
its chunk arrives (keeping 34 bytes + two sizes per 256 KiB) and build the
internal nodes at the end: this is what makes :class:`CidBuilder` incremental.

Internal nodes are ``PBNode{Links, Data}``, serialized in the canonical dag-pb
order (Links, field 2, before Data, field 1). Each ``PBLink`` is
``Hash`` (1, the child's multihash), ``Name`` (2, the empty string, present),
``Tsize`` (3, the child's serialized size plus the Tsize of all its links,
i.e. go-merkledag's ``Node.Size()``). Their UnixFS data is
``Type=File, filesize=<sum>, blocksizes=[<file bytes under each child>...]``
(unpacked repeated varints, no ``Data`` field). ``filesize`` is always present,
as go-unixfs initialises it to 0; the empty file is therefore the node
``0a 04 08 02 18 00``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Iterable, NamedTuple

from ..leb128 import uleb128

__all__ = [
    "CHUNK_SIZE", "MAX_LINKS", "CID", "CidBuilder", "InvalidCID",
    "compute_cid", "parse_cid", "cidv1", "verify", "dag_blocks", "b58encode", "b58decode",
]

CHUNK_SIZE = 262144
MAX_LINKS = 174

_SHA2_256 = 0x12
_DAG_PB = 0x70
_UNIXFS_FILE = 2
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_B32_LOWER = set("abcdefghijklmnopqrstuvwxyz234567")


class InvalidCID(ValueError):
    """A string that is not a CID we can serve (malformed or unsupported)."""


class CID(NamedTuple):
    """A parsed CID: the normalized CIDv0 text and the sha2-256 multihash."""

    v0: str
    multihash: bytes

    @property
    def v1(self) -> str:
        return _encode_v1(self.multihash)


# ---------------------------------------------------------------- encodings

def b58encode(data: bytes) -> str:
    """Base58btc (bitcoin alphabet), as used by CIDv0."""
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Inverse of :func:`b58encode`; ValueError on a character outside the alphabet."""
    n = 0
    for ch in text:
        try:
            n = n * 58 + _B58_INDEX[ch]
        except KeyError:
            raise ValueError(f"invalid base58 character {ch!r}") from None
    pad = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * pad + body




def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(buf):
            raise InvalidCID("truncated varint in CID")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and shift:
                raise InvalidCID("non-minimal varint in CID")
            return n, pos
        shift += 7
        if shift > 63:
            raise InvalidCID("varint too long in CID")


def _field_bytes(field: int, value: bytes) -> bytes:
    return uleb128(field << 3 | 2) + uleb128(len(value)) + value


def _field_varint(field: int, value: int) -> bytes:
    return uleb128(field << 3) + uleb128(value)


def _multihash(block: bytes) -> bytes:
    return bytes([_SHA2_256, 32]) + hashlib.sha256(block).digest()


def _encode_v1(multihash: bytes) -> str:
    return _encode_v1_raw(uleb128(1) + uleb128(_DAG_PB) + multihash)


def _encode_v1_raw(raw: bytes) -> str:
    return "b" + base64.b32encode(raw).decode("ascii").rstrip("=").lower()


# ---------------------------------------------------------------- dag-pb / UnixFS

def _leaf_node(chunk: bytes) -> bytes:
    """A dag-pb leaf: PBNode{Data: UnixFS{Type=File, Data=chunk, filesize}}."""
    unixfs = _field_varint(1, _UNIXFS_FILE)
    if chunk:  # go-unixfs leaves Data unset (nil) for the empty file
        unixfs += _field_bytes(2, chunk)
    unixfs += _field_varint(3, len(chunk))
    return _field_bytes(1, unixfs)


class _Link(NamedTuple):
    multihash: bytes
    tsize: int      # serialized size of the child's whole DAG
    filesize: int   # file bytes under the child


def _parent_node(children: list[_Link]) -> tuple[bytes, _Link]:
    """An internal node over ``children``; returns its bytes and a link to it."""
    out = bytearray()
    for c in children:
        link = _field_bytes(1, c.multihash) + _field_bytes(2, b"") + _field_varint(3, c.tsize)
        out += _field_bytes(2, link)
    filesize = sum(c.filesize for c in children)
    unixfs = _field_varint(1, _UNIXFS_FILE) + _field_varint(3, filesize)
    for c in children:
        unixfs += _field_varint(4, c.filesize)
    out += _field_bytes(1, unixfs)
    block = bytes(out)
    return block, _Link(_multihash(block), len(block) + sum(c.tsize for c in children), filesize)


def _height(leaves: int) -> int:
    """Depth of the balanced tree over ``leaves`` leaves: smallest d with 174**d >= leaves."""
    height, capacity = 0, 1
    while capacity < leaves:
        height += 1
        capacity *= MAX_LINKS
    return height


def _build(leaves: list[_Link], height: int, sink: list[bytes] | None = None) -> _Link:
    """A balanced subtree of ``height`` over ``leaves`` (left-packed, see module doc)."""
    if height == 0:
        return leaves[0]
    span = MAX_LINKS ** (height - 1)
    children = [_build(leaves[i:i + span], height - 1, sink) for i in range(0, len(leaves), span)]
    block, link = _parent_node(children)
    if sink is not None:
        sink.append(block)
    return link


class CidBuilder:
    """Computes a CIDv0 from data given in pieces, keeping at most one chunk in memory.

    Why: code fetched from a remote gateway is streamed; it is checked against
    its CID as it arrives instead of being buffered twice.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._leaves: list[_Link] = []
        self._size = 0
        self._result: CID | None = None

    @property
    def size(self) -> int:
        """Bytes received so far."""
        return self._size

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._result is not None:
            raise RuntimeError("CidBuilder already finished")
        self._size += len(data)
        self._buf += data
        while len(self._buf) >= CHUNK_SIZE:
            self._add_leaf(bytes(self._buf[:CHUNK_SIZE]))
            del self._buf[:CHUNK_SIZE]

    def _add_leaf(self, chunk: bytes) -> None:
        block = _leaf_node(chunk)
        self._leaves.append(_Link(_multihash(block), len(block), len(chunk)))

    def finish(self) -> CID:
        """The CID of everything given to :meth:`update`."""
        if self._result is None:
            if self._buf or not self._leaves:
                self._add_leaf(bytes(self._buf))
                self._buf.clear()
            root = _build(self._leaves, _height(len(self._leaves)))
            self._result = CID(b58encode(root.multihash), root.multihash)
        return self._result


def compute_cid(data: bytes | bytearray | memoryview | Iterable[bytes]) -> str:
    """The CIDv0 ``ipfs add`` gives ``data`` (bytes, or an iterable of byte pieces)."""
    builder = CidBuilder()
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        for i in range(0, len(view), CHUNK_SIZE):
            builder.update(view[i:i + CHUNK_SIZE])
    else:
        for piece in data:
            builder.update(piece)
    return builder.finish().v0


def dag_blocks(data: bytes) -> list[bytes]:
    """Every block of ``data``'s DAG, leaves first, then parents bottom-up; the root is last.

    Why: lets tests (and a future CAR export) inspect the exact structure.
    """
    chunks = [data[i:i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)] or [b""]
    blocks = [_leaf_node(c) for c in chunks]
    leaves = [_Link(_multihash(b), len(b), len(c)) for b, c in zip(blocks, chunks)]
    _build(leaves, _height(len(leaves)), blocks)
    return blocks


# ---------------------------------------------------------------- parsing

def parse_cid(text: str) -> CID:
    """Parse a CIDv0 (``Qm...``) or a CIDv1 (``bafy...``: base32, dag-pb, sha2-256).

    Why normalize to v0: code is stored under one id whatever form the caller
    used. Raises :class:`InvalidCID` with the reason for anything else.
    """
    if not isinstance(text, str):
        raise InvalidCID(f"CID must be a string, not {type(text).__name__}")
    if not text:
        raise InvalidCID("empty CID")
    if len(text) > 200:
        raise InvalidCID("CID too long")
    if text.startswith("Qm"):
        if len(text) != 46:
            raise InvalidCID(f"CIDv0 must be 46 characters, got {len(text)}")
        try:
            mh = b58decode(text)
        except ValueError as exc:
            raise InvalidCID(f"CIDv0 is not base58btc: {exc}") from None
        if len(mh) != 34 or mh[0] != _SHA2_256 or mh[1] != 32:
            raise InvalidCID("CIDv0 is not a sha2-256 multihash")
        return CID(text, mh)
    if text[0] == "b":
        body = text[1:]
        bad = sorted(set(body) - _B32_LOWER)
        if bad:
            raise InvalidCID(f"CIDv1 must be base32 lowercase (multibase 'b'); invalid characters {''.join(bad)!r}")
        if len(body) % 8 in (1, 3, 6):
            raise InvalidCID("CIDv1 has an impossible base32 length")
        try:
            raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        except ValueError as exc:
            raise InvalidCID(f"CIDv1 is not valid base32: {exc}") from None
        if _encode_v1_raw(raw) != text:
            raise InvalidCID("CIDv1 base32 is not canonical (non-zero padding bits)")
        version, pos = _read_varint(raw, 0)
        if version != 1:
            raise InvalidCID(f"unsupported CID version {version}")
        codec, pos = _read_varint(raw, pos)
        if codec != _DAG_PB:
            raise InvalidCID(f"unsupported CID codec 0x{codec:x} (only dag-pb 0x70 is served)")
        hash_code, pos2 = _read_varint(raw, pos)
        if hash_code != _SHA2_256:
            raise InvalidCID(f"unsupported multihash 0x{hash_code:x} (only sha2-256 0x12)")
        length, pos2 = _read_varint(raw, pos2)
        if length != 32 or len(raw) - pos2 != 32:
            raise InvalidCID("sha2-256 multihash must hold exactly 32 bytes")
        mh = raw[pos:]
        return CID(b58encode(mh), mh)
    if text[0] in "Bfz":
        raise InvalidCID(f"unsupported multibase prefix {text[0]!r}: use CIDv0 (Qm...) or base32 CIDv1 (b...)")
    raise InvalidCID("not a CID: expected CIDv0 'Qm...' (46 chars) or CIDv1 'bafy...'")


def cidv1(cid: str) -> str:
    """The base32 CIDv1 (``bafy...``) of a CID given as v0 or v1."""
    return parse_cid(cid).v1


def verify(data: bytes | bytearray | memoryview | Iterable[bytes], cid: str) -> bool:
    """True when ``data`` is the content named by ``cid`` (v0 or v1).

    Why: content fetched from a remote gateway is untrusted until it matches.
    """
    return compute_cid(data) == parse_cid(cid).v0
