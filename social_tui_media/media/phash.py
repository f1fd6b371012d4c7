"""Perceptual hashes: the same picture re-encoded, resized or lightly cropped hashes to nearly
the same 64 bits; different pictures differ in about half of them. Pure Pillow, no numpy.

`phash` is the DCT hash (pHash): the picture shrunk to 32x32 grey levels, its 8x8
lowest-frequency DCT coefficients, one bit per coefficient: above the median or not.
"""

from __future__ import annotations

import math
from functools import cache

from PIL import Image

SIZE = 32
LOW = 8


@cache
def _cosines() -> list[list[float]]:
    """cos((2x + 1) u pi / 2N) for the LOW lowest frequencies u, every x < N."""
    return [[math.cos((2 * x + 1) * u * math.pi / (2 * SIZE)) for x in range(SIZE)] for u in range(LOW)]


def phash(image: Image.Image) -> str:
    """The 64-bit DCT perceptual hash of a picture, as 16 hex digits."""
    grey = image.convert("L").resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    pixels = list(grey.tobytes())
    rows = [pixels[y * SIZE : (y + 1) * SIZE] for y in range(SIZE)]
    cos = _cosines()
    # separable 2-D DCT-II, only the LOW x LOW corner: first along rows, then down columns
    along_rows = [[sum(c * p for c, p in zip(cos[u], row, strict=True)) for u in range(LOW)] for row in rows]
    coefficients = [
        sum(cos[v][y] * along_rows[y][u] for y in range(SIZE)) for v in range(LOW) for u in range(LOW)
    ]
    median = sorted(coefficients)[len(coefficients) // 2]
    bits = 0
    for value in coefficients:
        bits = (bits << 1) | (value > median)
    return f"{bits:016x}"


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
