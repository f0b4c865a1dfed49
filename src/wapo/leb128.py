"""Unsigned LEB128: the variable-length integer of the wasm binary format and of multiformats
(CIDs, multihashes), written in one place for both."""


def uleb128(n: int) -> bytes:
    if n < 0:
        raise ValueError("unsigned LEB128 of a negative number")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)
