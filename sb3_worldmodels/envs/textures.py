"""Procedural textures in numpy (no image assets) for the distracted DMC environments.

Every pattern is a function of 3D points with period 1 along each axis, so one code path gives both
seamless floor tiles (points ``(u, v, 0)`` on the unit square) and seamless skyboxes (points on the
unit sphere, one per texel of the six cube faces). The random draws all come from the ``numpy``
``Generator`` passed in, so a seed gives the same texture every time.
"""

from __future__ import annotations

import colorsys

import numpy as np

__all__ = [
    "TEXTURE_PATTERNS", "cube_directions", "pattern", "plane_texture", "random_colors", "skybox_texture",
]  # fmt: skip

#: Kinds of :func:`pattern`.
TEXTURE_PATTERNS: tuple[str, ...] = ("checker", "stripes", "gradient", "noise")


def random_colors(
    rng: np.random.Generator,
    n: int,
    saturation: tuple[float, float] = (0.2, 1.0),
    value: tuple[float, float] = (0.25, 1.0),
) -> np.ndarray:
    """Draw ``n`` RGB colours in ``[0, 1]``: uniform hue, saturation and value in the given ranges.

    Args:
        rng: Source of randomness.
        n: Number of colours.
        saturation: Range of the HSV saturation.
        value: Range of the HSV value (brightness).

    Returns:
        ``float64`` array ``(n, 3)``.
    """
    hsv = np.stack([rng.uniform(0.0, 1.0, n), rng.uniform(*saturation, n), rng.uniform(*value, n)], axis=1)
    return np.array([colorsys.hsv_to_rgb(*c) for c in hsv], dtype=np.float64).reshape(n, 3)


def _blend(colors: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Piecewise-linear colour ramp through ``colors`` (k, 3) at ``t`` in ``[0, 1]``: (N, 3)."""
    pos = np.clip(t, 0.0, 1.0) * (len(colors) - 1)
    lo = np.minimum(pos.astype(np.int64), len(colors) - 2)
    w = (pos - lo)[:, None]
    return colors[lo] * (1.0 - w) + colors[lo + 1] * w


def _integer_direction(rng: np.random.Generator, high: int) -> np.ndarray:
    """Random non-zero integer 3-vector with entries in ``[-high, high]`` (keeps patterns periodic)."""
    while True:
        k = rng.integers(-high, high + 1, size=3)
        if np.any(k[:2] != 0):  # at least one in-plane component, so floors show the pattern too
            return k.astype(np.float64)


def _periodic_noise(rng: np.random.Generator, points: np.ndarray, base: int, octaves: int) -> np.ndarray:
    """Fractal value noise with period 1: random lattices of ``base * 2**o`` cells, smooth trilinear."""
    total = np.zeros(len(points))
    norm = 0.0
    for octave in range(octaves):
        cells = base * 2**octave
        lattice = rng.uniform(0.0, 1.0, cells**3)  # flat (x, y, z) lattice
        scaled = points * cells
        low = np.floor(scaled)
        f = scaled - low
        f = f * f * (3.0 - 2.0 * f)  # smoothstep: no creases along the lattice lines
        low = low.astype(np.int64) % cells
        strides = np.array([cells * cells, cells, 1])
        corners = [(low[:, a] * strides[a], (low[:, a] + 1) % cells * strides[a]) for a in range(3)]
        weights = [(1.0 - f[:, a], f[:, a]) for a in range(3)]
        value = np.zeros(len(points))
        for bx in (0, 1):
            for by in (0, 1):
                index_xy = corners[0][bx] + corners[1][by]
                weight_xy = weights[0][bx] * weights[1][by]
                for bz in (0, 1):
                    value += weight_xy * weights[2][bz] * lattice[index_xy + corners[2][bz]]
        amplitude = 0.5**octave
        total += amplitude * value
        norm += amplitude
    total /= norm
    lo, hi = total.min(), total.max()
    return (total - lo) / max(hi - lo, 1e-8)


def pattern(rng: np.random.Generator, points: np.ndarray, kind: str | None = None) -> np.ndarray:
    """Colour ``points`` with a random pattern that has period 1 along each axis.

    Args:
        rng: Source of randomness (pattern parameters and colours).
        points: ``(N, 3)`` coordinates.
        kind: One of :data:`TEXTURE_PATTERNS`; ``None`` draws one uniformly.

    Returns:
        ``(N, 3)`` RGB colours in ``[0, 1]``.

    Raises:
        ValueError: Unknown ``kind``.
    """
    if kind is None:
        kind = TEXTURE_PATTERNS[int(rng.integers(len(TEXTURE_PATTERNS)))]
    if kind not in TEXTURE_PATTERNS:
        raise ValueError(f"Unknown texture pattern {kind!r}; valid patterns: {TEXTURE_PATTERNS}")
    points = np.asarray(points, dtype=np.float64)
    if kind == "checker":
        cells = int(rng.integers(2, 9))
        parity = np.floor(points * cells).astype(np.int64).sum(axis=1) % 2
        return random_colors(rng, 2)[parity]
    if kind == "stripes":
        phase = np.sin(2 * np.pi * (points @ _integer_direction(rng, 6)) + rng.uniform(0, 2 * np.pi))
        sharpness = rng.uniform(1.0, 12.0)  # from soft waves to hard-edged bands
        return _blend(random_colors(rng, 2), 0.5 + 0.5 * np.tanh(sharpness * phase))
    if kind == "gradient":
        s = points @ _integer_direction(rng, 2) + rng.uniform()
        return _blend(random_colors(rng, 3), np.abs(2.0 * (s - np.floor(s)) - 1.0))  # periodic triangle wave
    noise = _periodic_noise(rng, points, base=int(rng.integers(2, 6)), octaves=3)
    return _blend(random_colors(rng, 3), noise)


def _to_uint8(colors: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(colors * 255.0), 0, 255).astype(np.uint8)


def _upscale(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-texel resize of ``(..., h, w, 3)`` up to ``(..., height, width, 3)`` (``np.repeat``: fast)."""
    h, w = image.shape[-3:-1]
    rows = np.bincount(np.arange(height) * h // height, minlength=h)
    cols = np.bincount(np.arange(width) * w // width, minlength=w)
    return np.repeat(np.repeat(image, cols, axis=-2), rows, axis=-3)


def plane_texture(
    rng: np.random.Generator, height: int, width: int, kind: str | None = None, resolution: int = 128
) -> np.ndarray:
    """A random tileable 2D texture (left/right and top/bottom edges match), e.g. for a floor.

    Args:
        rng: Source of randomness.
        height: Texture height in texels.
        width: Texture width in texels.
        kind: Pattern (see :func:`pattern`); ``None`` draws one.
        resolution: The pattern is evaluated on at most ``resolution x resolution`` texels and
            scaled up (nearest texel): enough for small frames, and fast.

    Returns:
        ``uint8`` array ``(height, width, 3)``.
    """
    h, w = min(height, resolution), min(width, resolution)
    v, u = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
    points = np.stack([u.ravel(), v.ravel(), np.zeros(u.size)], axis=1)
    return _upscale(_to_uint8(pattern(rng, points, kind)).reshape(h, w, 3), height, width)


def cube_directions(size: int) -> np.ndarray:
    """Unit view directions of the texels of a MuJoCo skybox (``type="skybox"`` cube texture).

    MuJoCo stores the six ``size x size`` faces one below the other, in the order +X, -X, +Z, -Z,
    -Y, +Y of its z-up world, each row-major; the mapping was measured by rendering a texture whose
    colours encode the direction (see ``tests/test_envs_dmcr.py``).

    Args:
        size: Face width in texels.

    Returns:
        ``(6, size, size, 3)`` unit vectors.
    """
    t = 2.0 * (np.arange(size) + 0.5) / size - 1.0
    r, c = np.meshgrid(t, t, indexing="ij")  # row, column coordinate of each texel
    one = np.ones_like(r)
    faces = [(one, c, -r), (-one, -c, -r), (c, -r, one), (c, r, -one), (c, -one, -r), (-c, one, -r)]
    dirs = np.stack([np.stack(face, axis=-1) for face in faces])
    return dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)


def skybox_texture(
    rng: np.random.Generator, size: int, kind: str | None = None, resolution: int = 100
) -> np.ndarray:
    """A random seamless skybox: a pattern over view directions, darker towards the ground.

    Args:
        rng: Source of randomness.
        size: Face width of the target texture (its height is ``6 * size``).
        kind: Pattern (see :func:`pattern`); ``None`` draws one.
        resolution: The pattern is evaluated on faces of at most ``resolution`` texels and scaled
            up (nearest texel), which keeps DMC's 800-texel skyboxes fast to make.

    Returns:
        ``uint8`` array ``(6 * size, size, 3)``, laid out as MuJoCo stores a skybox.
    """
    resolution = min(resolution, size)
    dirs = cube_directions(resolution).reshape(-1, 3)
    colors = pattern(rng, dirs, kind)
    horizon_shade = rng.uniform(0.0, 0.7)  # how much darker looking straight down is than straight up
    colors *= 1.0 - horizon_shade * (1.0 - dirs[:, 2:]) / 2.0
    faces = _to_uint8(colors).reshape(6, resolution, resolution, 3)
    return _upscale(faces, size, size).reshape(6 * size, size, 3)
