"""The resize step of image sizing, on PIL images or RGB arrays. Imports no torch; OpenCV only when it is used.

After a JPEG decoded at a reduced DCT scale (M/8 < 1: itself a low-pass reduction) the step left to the target is
a mild one (:data:`MILD_RATIO` or more). OpenCV's bit-exact bilinear resize (``INTER_LINEAR_EXACT``: the same bytes
on every CPU) does it on the decoder's array in ≈ 2 ms where PIL's antialiased bilinear took ≈ 6 ms after a copy
into PIL; against a full decode + Lanczos it is 0.6-1 dB lower before the encode (43.3 vs 43.9 dB PSNR on 1024 px
photo-like JPEGs to 532 x 560) and the same after the q90 encode that ``prepare`` stores (37.41 vs 37.41 dB;
``benchmarks/measure_resize.py``). Without OpenCV the mild step is PIL's bilinear. Every other resize — full-size
decodes, PNG sources, steps below :data:`MILD_RATIO` — is PIL's antialiased bicubic, what the Qwen2-VL processor uses.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from PIL import Image

RESAMPLE = Image.Resampling.BICUBIC  # what Qwen2VLImageProcessor uses
REDUCING_GAP = 3.0  # PIL: box-reduce first when shrinking a lot; "indistinguishable from fair resampling"
MILD_RESAMPLE = Image.Resampling.BILINEAR  # the mild step without OpenCV
MILD_RATIO = 0.75

Pixels = np.ndarray | Image.Image  # an upright RGB picture: an H x W x 3 uint8 array or a PIL image


@cache
def _cv2() -> Any:
    """OpenCV, or None where it is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def set_opencv_threads(threads: int) -> None:
    """OpenCV's thread count, where it is installed (``prepare``'s workers use one each: the pool is the
    parallelism, and more threads per worker only compete for the same cores)."""
    cv2 = _cv2()
    if cv2 is not None:
        cv2.setNumThreads(threads)


def as_image(pixels: Pixels) -> Image.Image:
    """A PIL image of ``pixels`` (no copy when it is one already)."""
    return pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)


def pixels_hw(pixels: Pixels) -> tuple[int, int]:
    """(height, width) of an array or a PIL image."""
    if isinstance(pixels, Image.Image):
        return pixels.height, pixels.width
    return int(pixels.shape[0]), int(pixels.shape[1])


def resize(pixels: Pixels, target_hw: tuple[int, int], mild: bool) -> Pixels:
    """``pixels`` at ``target_hw``: the mild step (``mild``: after a reduced-scale decode, ratio at least
    :data:`MILD_RATIO`) with OpenCV's bit-exact bilinear when it is installed, else PIL's antialiased filters."""
    size = (target_hw[1], target_hw[0])
    cv2 = _cv2() if mild else None
    if cv2 is not None:
        return cv2.resize(np.asarray(pixels), size, interpolation=cv2.INTER_LINEAR_EXACT)
    return as_image(pixels).resize(size, MILD_RESAMPLE if mild else RESAMPLE, reducing_gap=REDUCING_GAP)


__all__ = ["MILD_RATIO", "MILD_RESAMPLE", "REDUCING_GAP", "RESAMPLE", "Pixels", "as_image", "pixels_hw", "resize",
           "set_opencv_threads"]
