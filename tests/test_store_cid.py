"""CIDs as `ipfs add` computes them: known values, v0/v1, malformed input, DAG structure."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest
from hypothesis import given, settings, strategies as st

from conftest import examples
from wapo.store import CID, CidBuilder, InvalidCID, cidv1, compute_cid, parse_cid, verify
from wapo.store import cid as cidmod
from wapo.store.cid import CHUNK_SIZE, MAX_LINKS, b58decode, b58encode, dag_blocks

EMPTY = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
HELLO = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


# ------------------------------------------------------------ a tiny protobuf reader (test oracle)

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) in wire order."""
    out, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        if tag & 7 == 0:
            value, pos = _varint(buf, pos)
        else:
            assert tag & 7 == 2
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        out.append((tag >> 3, value))
    return out


def decode_node(block: bytes) -> tuple[list[dict], list[tuple[int, int | bytes]]]:
    """(links, unixfs fields) of a dag-pb node; checks Links precede Data."""
    links, data, seen_data = [], None, False
    for num, value in fields(block):
        if num == 2:
            assert not seen_data, "Links must be serialized before Data"
            f = fields(value)
            assert [n for n, _ in f] == [1, 2, 3], "PBLink must hold Hash, Name, Tsize in order"
            links.append({"hash": f[0][1], "name": f[1][1], "tsize": f[2][1]})
        elif num == 1:
            seen_data, data = True, value
    return links, fields(data)


def mh(block: bytes) -> bytes:
    return bytes([0x12, 32]) + hashlib.sha256(block).digest()


# ------------------------------------------------------------ known values

def test_known_cids():
    assert compute_cid(b"") == EMPTY
    assert compute_cid(b"hello world\n") == HELLO
    # the empty file's well-known CIDv1
    assert cidv1(EMPTY) == "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y"
    # vector from ipld/js-unixfs's importer tests (dag-pb leaves, CIDv1)
    assert cidv1(compute_cid(b"this file does not have much content\n")) == \
        "bafybeidequ5soq6smzafv4lb76i5dkvl5fzgvrxz4bmlc2k4dkikklv2j4"


def test_empty_and_leaf_encoding():
    assert dag_blocks(b"") == [bytes.fromhex("0a0408021800")]
    leaf = dag_blocks(b"hello world\n")
    assert leaf == [bytes.fromhex("0a1208021" "20c") + b"hello world\n" + bytes.fromhex("180c")]


def test_v0_v1_round_trip():
    v1 = cidv1(HELLO)
    assert v1.startswith("bafybei") and len(v1) == 59
    parsed = parse_cid(v1)
    assert parsed == CID(HELLO, b58decode(HELLO))
    assert parsed.v1 == v1
    assert parse_cid(HELLO).v1 == v1
    assert cidv1(v1) == v1


@given(st.binary(min_size=32, max_size=32))
def test_round_trip_any_digest(digest):
    multihash = bytes([0x12, 0x20]) + digest
    v0 = b58encode(multihash)
    assert len(v0) == 46 and v0.startswith("Qm")
    assert parse_cid(v0).multihash == multihash
    assert parse_cid(cidv1(v0)) == (v0, multihash)


def test_verify():
    assert verify(b"hello world\n", HELLO)
    assert verify(b"hello world\n", cidv1(HELLO))
    assert not verify(b"hello world", HELLO)
    assert verify([b"hello ", b"world\n"], HELLO)
    with pytest.raises(InvalidCID):
        verify(b"", "nope")


# ------------------------------------------------------------ malformed input

def _v1_raw(raw: bytes) -> str:
    return "b" + base64.b32encode(raw).decode().rstrip("=").lower()


@pytest.mark.parametrize("text, why", [
    ("", "empty"),
    ("Qm", "46"),
    (HELLO[:-1], "46"),
    (HELLO + "a", "46"),
    (HELLO[:10] + "0" + HELLO[11:], "base58"),          # '0' is not base58
    (HELLO[:10] + "l" + HELLO[11:], "base58"),          # nor 'l'
    ("Qm" + "z" * 44, "sha2-256"),                      # decodes to the wrong length/prefix
    (" " + HELLO, "not a CID"),
    ("zdj7WWeQ43G6JJvLWQWZpyHuAMq6uYWRjkBXFad11vE2LHhQ7", "multibase"),
    ("bafybei" + "!" * 52, "base32"),
    (cidv1(HELLO).upper(), "multibase"),
    ("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "codec 0x55"),  # raw codec
    ("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzd", "base32"),  # bad length
    (_v1_raw(bytes([1, 0x70, 0x12, 32]) + bytes(33)), "32 bytes"),  # digest too long
    (_v1_raw(bytes([1, 0x70, 0x12, 32]) + bytes(31)), "32 bytes"),  # digest too short
    (_v1_raw(bytes([2, 0x70, 0x12, 32]) + bytes(32)), "version 2"),
    (_v1_raw(bytes([1, 0xF0])), "truncated"),
    ("bagaaierasords4njcts6vs7qvdjfcvgnume4hqohf65zsfguprqphs3icwea", "codec"),  # dag-json codec
    ("bafy", "impossible"),
    ("bafyb", "canonical"),
])
def test_malformed(text, why):
    with pytest.raises(InvalidCID) as info:
        parse_cid(text)
    assert why.lower() in str(info.value).lower()


def test_non_canonical_base32_and_other_hash():
    v1 = cidv1(HELLO)
    # flip the last character so the unused low bits are non-zero
    last = v1[-1]
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    bumped = alphabet[(alphabet.index(last) + 1) % 32]
    with pytest.raises(InvalidCID):
        parse_cid(v1[:-1] + bumped)
    # a CIDv1 with a blake2b-256 multihash (0xb220)
    raw = bytes([1, 0x70]) + bytes([0xa0, 0xe4, 0x02, 32]) + bytes(32)
    text = "b" + base64.b32encode(raw).decode().rstrip("=").lower()
    with pytest.raises(InvalidCID, match="multihash"):
        parse_cid(text)
    # a CIDv0 whose base58 decodes to a non-sha2 multihash
    with pytest.raises(InvalidCID):
        parse_cid(b58encode(bytes([0x13, 32]) + bytes(32)).rjust(46, "1"))


@pytest.mark.parametrize("value", [None, 5, b"Qm", ["Qm"]])
def test_non_string(value):
    with pytest.raises(InvalidCID):
        parse_cid(value)


@settings(max_examples=examples(300))
@given(st.text(max_size=80))
def test_random_garbage(text):
    try:
        parsed = parse_cid(text)
    except InvalidCID:
        return
    # if it parsed it must be self-consistent
    assert parse_cid(parsed.v0) == parsed and parse_cid(parsed.v1) == parsed


@settings(max_examples=examples(200))
@given(st.integers(0, 45), st.characters(codec="ascii"))
def test_mutated_cid(pos, ch):
    text = HELLO[:pos] + ch + HELLO[pos + 1:]
    try:
        parsed = parse_cid(text)
    except InvalidCID:
        return
    assert parsed.v0 == text


# ------------------------------------------------------------ structure of multi-chunk files

def test_exact_chunk_is_a_single_leaf():
    blocks = dag_blocks(bytes(CHUNK_SIZE))
    assert len(blocks) == 1
    links, unixfs = decode_node(blocks[0])
    assert links == [] and unixfs == [(1, 2), (2, bytes(CHUNK_SIZE)), (3, CHUNK_SIZE)]


def test_two_leaves():
    data = bytes(range(256)) * (CHUNK_SIZE // 256) + b"x"
    assert len(data) == CHUNK_SIZE + 1
    blocks = dag_blocks(data)
    assert len(blocks) == 3
    leaf1, leaf2, root = blocks
    links, unixfs = decode_node(root)
    assert unixfs == [(1, 2), (3, CHUNK_SIZE + 1), (4, CHUNK_SIZE), (4, 1)]
    assert [link["hash"] for link in links] == [mh(leaf1), mh(leaf2)]
    assert [link["name"] for link in links] == [b"", b""]
    assert [link["tsize"] for link in links] == [len(leaf1), len(leaf2)]
    assert decode_node(leaf2)[1] == [(1, 2), (2, b"x"), (3, 1)]
    assert compute_cid(data) == b58encode(mh(root))


def test_full_node_then_second_level():
    """174 leaves fit under one node; the 175th makes a depth-2 root with two children."""
    full = bytes(MAX_LINKS * CHUNK_SIZE)
    blocks = dag_blocks(full)
    assert len(blocks) == MAX_LINKS + 1
    links, unixfs = decode_node(blocks[-1])
    assert len(links) == MAX_LINKS and unixfs[1] == (3, len(full))

    blocks = dag_blocks(full + b"!")
    assert len(blocks) == MAX_LINKS + 1 + 3  # leaves, node of 174, node of 1, root
    root_links, root_fs = decode_node(blocks[-1])
    assert len(root_links) == 2
    assert root_fs == [(1, 2), (3, len(full) + 1), (4, len(full)), (4, 1)]
    small_links, small_fs = decode_node(blocks[-2])
    assert len(small_links) == 1 and small_fs == [(1, 2), (3, 1), (4, 1)]
    # Tsize of a parent link counts the whole sub-DAG
    big = blocks[-3]
    assert root_links[0]["tsize"] == len(big) + sum(len(b) for b in blocks[:MAX_LINKS])


def test_balanced_shape_with_small_fanout(monkeypatch):
    """With 3 links per node, 10 leaves give depth 3 (27 >= 10), left-packed: [9 | 1]."""
    monkeypatch.setattr(cidmod, "MAX_LINKS", 3)
    data = b"".join(bytes([i]) * 10 for i in range(10))
    monkeypatch.setattr(cidmod, "CHUNK_SIZE", 10)
    blocks = dag_blocks(data)
    by_hash = {mh(b): b for b in blocks}

    def shape(block):
        links, _ = decode_node(block)
        return [shape(by_hash[link["hash"]]) for link in links] if links else "L"

    assert shape(blocks[-1]) == [[["L", "L", "L"], ["L", "L", "L"], ["L", "L", "L"]], [["L"]]]
    # and the incremental builder agrees with the block list
    builder = CidBuilder()
    for i in range(0, len(data), 7):
        builder.update(data[i:i + 7])
    assert builder.finish().multihash == mh(blocks[-1])


@settings(max_examples=examples(25), deadline=None)
@given(st.integers(0, 3 * CHUNK_SIZE + 5), st.lists(st.integers(1, CHUNK_SIZE + 3), max_size=8), st.integers(0, 255))
def test_incremental_builder_matches(size, pieces, seed):
    data = random.Random(seed).randbytes(size)
    builder = CidBuilder()
    pos = 0
    for n in pieces:
        builder.update(data[pos:pos + n])
        pos += n
    builder.update(data[pos:])
    assert builder.size == size
    assert builder.finish().v0 == compute_cid(data) == b58encode(mh(dag_blocks(data)[-1]))


def test_builder_cannot_be_reused():
    builder = CidBuilder()
    builder.update(b"a")
    first = builder.finish()
    assert builder.finish() == first
    with pytest.raises(RuntimeError):
        builder.update(b"b")
