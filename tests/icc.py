"""A minimal ICC v2 matrix/TRC display profile, built in bytes, for the colour-management
tests (no profile files ship with the tests and none can be downloaded)."""

from __future__ import annotations

import struct

D50 = (0.9642, 1.0, 0.8249)
# Adobe RGB (1998): its colorants adapted to D50 (Bradford), and its gamma 563/256.
ADOBE_RGB = {
    "r": (0.60974, 0.31111, 0.01947),
    "g": (0.20528, 0.62567, 0.06087),
    "b": (0.14919, 0.06322, 0.74457),
    "gamma": 563 / 256,
}


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(v) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15(c) for c in v)


def _desc(text: str) -> bytes:
    a = text.encode("ascii") + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(a)) + a + b"\0" * 8 + b"\0" * 3 + b"\0" * 67


def matrix_profile(description: str = "Adobe RGB (1998) test", primaries=ADOBE_RGB) -> bytes:
    curve = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(primaries["gamma"] * 256)) + b"\0\0"
    tags = [
        (b"desc", _desc(description)),
        (b"wtpt", _xyz(D50)),
        (b"cprt", b"text\0\0\0\0public domain\0"),
        (b"rXYZ", _xyz(primaries["r"])),
        (b"gXYZ", _xyz(primaries["g"])),
        (b"bXYZ", _xyz(primaries["b"])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I", size)
        + b"\0" * 4
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + b"".join(_s15(c) for c in D50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data
