"""Source pictures of the kinds the split's grouping rule must hold on — for ``benchmarks/measure_grouping.py`` and
the fault suite. Imports no torch. Each family is a function ``(rng, size) -> HxWx3 uint8`` array; the same seed gives
the same picture.

* ``gradient`` — linear colour ramps in a random direction, 2–4 colour stops, sensor-like noise (σ 0.5–4 levels);
* ``sky`` — a vertical sky ramp (zenith to horizon colours), a sun glow, soft low-contrast clouds, an optional dark
  ground band at the bottom, noise: the "make the sky red" kind of source;
* ``haze`` — a smooth random field (a handful of low-frequency cosine waves of random orientation and phase), with
  a radial vignette and noise;
* ``backdrop`` (held out) — a studio backdrop: a radial gradient behind one large soft subject (a blurred ellipse,
  darker or lighter than the backdrop), a few faint bokeh discs, grain;
* ``sea`` (held out) — a sky ramp over water: soft horizontal swell bands whose phase drifts across the frame, a
  sun's reflection column, haze at the horizon, noise;
* ``twins`` (for false merges) — sources made in sets of four on one shared sky: each adds its own soft dark object
  (a bird, a balloon: 1–6 % of the frame, anywhere), so the four are distinct pictures that differ only there.

The held-out families (:data:`HELD_OUT`) were written before the rule's thresholds were set and only measured once
they were fixed.

``flat`` and ``photo`` sources (the synthetic drawings, plain and with texture) come from
:mod:`editjudge.synthetic`.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

__all__ = ["FAMILIES", "HELD_OUT", "SHARED_BASE", "picture"]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / max(1, size - 1)
    return y, x


def _noise(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    sigma = rng.uniform(0.5, 4.0)
    return np.clip(np.rint(image + rng.normal(0.0, sigma, image.shape)), 0, 255).astype(np.uint8)


def _ramp(t: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Colours at positions ``t`` (0..1) along ``stops`` (k x 3), piecewise linear."""
    k = len(stops)
    position = np.clip(t, 0.0, 1.0) * (k - 1)
    low = np.minimum(np.floor(position).astype(int), k - 2)
    frac = (position - low)[..., None]
    return stops[low] * (1 - frac) + stops[low + 1] * frac


def gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = _grid(size)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * (x - 0.5) + np.sin(angle) * (y - 0.5)) / np.sqrt(0.5) + 0.5
    stops = rng.uniform(20, 235, size=(int(rng.integers(2, 5)), 3))
    return _noise(rng, _ramp(t, stops))


def sky(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = _grid(size)
    zenith = np.array([rng.uniform(10, 80), rng.uniform(40, 130), rng.uniform(120, 230)])
    horizon = np.array([rng.uniform(150, 250), rng.uniform(150, 235), rng.uniform(170, 250)])
    image = _ramp(y ** rng.uniform(0.6, 1.6), np.stack([zenith, horizon]))
    sun_y, sun_x, spread = rng.uniform(0.1, 0.8), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
    glow = np.exp(-((x - sun_x) ** 2 + (y - sun_y) ** 2) / (2 * spread**2))[..., None]
    image = image + glow * rng.uniform(10, 60) * np.array([1.0, 0.9, 0.6])
    clouds = np.zeros((size, size))
    for _ in range(int(rng.integers(0, 5))):
        cy, cx = rng.uniform(0, 0.7), rng.uniform(0, 1)
        sy, sx = rng.uniform(0.02, 0.08), rng.uniform(0.1, 0.3)
        clouds += np.exp(-((x - cx) ** 2 / (2 * sx**2) + (y - cy) ** 2 / (2 * sy**2)))
    image = image + np.clip(clouds, 0, 1)[..., None] * rng.uniform(5, 40)
    if rng.uniform() < 0.5:  # a dark ground below a soft horizon
        line = rng.uniform(0.75, 0.95)
        ground = 1 / (1 + np.exp(-(y - line) * size / 3.0))
        image = image * (1 - ground[..., None]) + ground[..., None] * rng.uniform(15, 70, size=3)
    return _noise(rng, image)


def haze(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = _grid(size)
    field = np.zeros((size, size, 3))
    for _ in range(int(rng.integers(3, 7))):
        angle, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.3, 2.0), rng.uniform(0, 2 * np.pi)
        wave = np.cos(2 * np.pi * freq * (np.cos(angle) * x + np.sin(angle) * y) + phase)
        field += wave[..., None] * rng.uniform(-25, 25, size=3)
    base = rng.uniform(60, 190, size=3)
    vignette = 1 - rng.uniform(0, 0.5) * ((x - 0.5) ** 2 + (y - 0.5) ** 2) * 2
    return _noise(rng, (base + field) * vignette[..., None])


def _soft_disc(y: np.ndarray, x: np.ndarray, cy: float, cx: float, ry: float, rx: float, edge: float) -> np.ndarray:
    """1 inside an ellipse, 0 outside, with a smooth edge ``edge`` wide (in units of the radius)."""
    r = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    return 1 / (1 + np.exp((r - 1) / max(edge, 1e-3)))


def backdrop(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = _grid(size)
    centre, rim = rng.uniform(40, 220, size=3), rng.uniform(10, 160, size=3)
    cy, cx = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)
    radius = np.sqrt((y - cy) ** 2 + (x - cx) ** 2) / rng.uniform(0.6, 1.1)
    image = _ramp(radius, np.stack([centre, rim]))
    subject = _soft_disc(y, x, rng.uniform(0.45, 0.8), rng.uniform(0.25, 0.75), rng.uniform(0.2, 0.45),
                         rng.uniform(0.12, 0.3), rng.uniform(0.05, 0.25))[..., None]
    tone = rng.uniform(10, 245, size=3)
    image = image * (1 - subject * 0.85) + tone * subject * 0.85
    for _ in range(int(rng.integers(0, 6))):
        r = rng.uniform(0.02, 0.07)
        image = image + _soft_disc(y, x, rng.uniform(0, 1), rng.uniform(0, 1), r, r, 0.2)[..., None] * rng.uniform(4, 20)
    return _noise(rng, image)


def sea(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = _grid(size)
    horizon = rng.uniform(0.35, 0.65)
    top, low = rng.uniform([20, 60, 120], [110, 160, 240]), rng.uniform([150, 150, 160], [250, 230, 250])
    sky_part = _ramp(np.clip(y / horizon, 0, 1), np.stack([top, low]))
    deep, near = rng.uniform([5, 30, 50], [60, 110, 150]), rng.uniform([20, 60, 80], [110, 170, 200])
    depth = np.clip((y - horizon) / (1 - horizon), 0, 1)
    water = _ramp(depth, np.stack([near, deep]))
    phase = 2 * np.pi * (rng.uniform(2, 6) * depth ** 0.7 + rng.uniform(0, 0.5) * x)
    water = water + np.cos(phase)[..., None] * rng.uniform(2, 12)
    sun_x = rng.uniform(0.1, 0.9)
    column = np.exp(-((x - sun_x) ** 2) / (2 * rng.uniform(0.01, 0.05) ** 2)) * (y > horizon)
    water = water + column[..., None] * rng.uniform(10, 50) * np.array([1.0, 0.9, 0.7])
    blend = 1 / (1 + np.exp(-(y - horizon) * size / 2.0))
    image = sky_part * (1 - blend[..., None]) + water * blend[..., None]
    haze_band = np.exp(-((y - horizon) ** 2) / (2 * 0.03**2))[..., None] * rng.uniform(0, 30)
    return _noise(rng, image + haze_band)


def twins(rng: np.random.Generator, size: int, seed: int = 0) -> np.ndarray:
    """See the module's docstring: a shared sky (by ``seed // 4``) with this source's own object."""
    base = sky(np.random.default_rng([seed // 4, 97]), size).astype(np.float64)
    y, x = _grid(size)
    area = rng.uniform(0.01, 0.06)
    ry = np.sqrt(area / np.pi) * rng.uniform(0.7, 1.4)
    rx = area / (np.pi * ry)
    mask = _soft_disc(y, x, rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), ry, rx, 0.1)[..., None]
    tone = rng.uniform(0, 70, size=3)
    return np.clip(np.rint(base * (1 - mask) + tone * mask), 0, 255).astype(np.uint8)


FAMILIES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "gradient": gradient, "sky": sky, "haze": haze, "backdrop": backdrop, "sea": sea, "twins": twins,
}
HELD_OUT = frozenset({"backdrop", "sea"})
SHARED_BASE = frozenset({"twins"})  # families whose sources share a background on purpose (4 per background)


def picture(family: str, seed: int, size: int = 256) -> np.ndarray:
    """Picture number ``seed`` of ``family`` (an HxWx3 uint8 array)."""
    rng = np.random.default_rng([seed, zlib.crc32(family.encode())])  # each family its own stream
    if family == "twins":
        return twins(rng, size, seed)
    return FAMILIES[family](rng, size)
