"""Seeded variants of a receipt image: the ways a real photo or scan differs from a clean one.

The robustness test and ``scripts/eval_robustness.py`` read each variant through the real
pipeline to check that a degraded page is either read right or sent to review, never
submitted wrong. Every variant is a pure function of the image, its name and a seed, so a
failure seen once can be reproduced exactly; random parameters (perspective corners,
shadow band) come from a generator seeded by both, never from global state.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable

import cv2
import numpy as np

Image = np.ndarray  # uint8, H x W x 3, BGR (as cv2.imread gives it)

# Skew of a page laid crooked on a scanner or photographed at a slant.
SKEW_DEGREES = 8.0
# Perspective: each corner moves inwards by this share of the page's width / height.
PERSPECTIVE_MIN, PERSPECTIVE_MAX = 0.03, 0.10
JPEG_QUALITY = 30
BLUR_SIGMA = 1.5
# Shadow: the band keeps this share of the light at its darkest point.
SHADOW_DARKEST = (0.45, 0.6)
# What shows around a page turned or warped inside its frame: a grey desk.
BACKGROUND = (96, 96, 96)


def rotate90(image: Image, rng: np.random.Generator) -> Image:
    """A quarter turn clockwise: a receipt photographed sideways."""
    return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)


def rotate180(image: Image, rng: np.random.Generator) -> Image:
    """Upside down: a page fed into the scanner head first."""
    return cv2.rotate(image, cv2.ROTATE_180)


def rotate270(image: Image, rng: np.random.Generator) -> Image:
    """A quarter turn anticlockwise."""
    return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)


def _skew(image: Image, degrees: float) -> Image:
    """Rotate by ``degrees`` (positive: anticlockwise) on a canvas large enough for it all."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w = round(height * sin + width * cos)
    new_h = round(height * cos + width * sin)
    matrix[0, 2] += (new_w - width) / 2
    matrix[1, 2] += (new_h - height) / 2
    return cv2.warpAffine(
        image,
        matrix,
        (new_w, new_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=BACKGROUND,
    )


def skew_plus(image: Image, rng: np.random.Generator) -> Image:
    """Turned 8 degrees anticlockwise."""
    return _skew(image, SKEW_DEGREES)


def skew_minus(image: Image, rng: np.random.Generator) -> Image:
    """Turned 8 degrees clockwise."""
    return _skew(image, -SKEW_DEGREES)


def perspective(image: Image, rng: np.random.Generator) -> Image:
    """The page seen at an angle: its corners pulled inwards by different amounts."""
    height, width = image.shape[:2]
    src = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    pull = rng.uniform(PERSPECTIVE_MIN, PERSPECTIVE_MAX, size=(4, 2)) * (width, height)
    inwards = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float32)
    dst = (src + pull * inwards).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(
        image,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=BACKGROUND,
    )


def jpeg30(image: Image, rng: np.random.Generator) -> Image:
    """Saved as a JPEG of quality 30: blocky edges around thin print."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def half_resolution(image: Image, rng: np.random.Generator) -> Image:
    """Half the width and height: a phone photo sent scaled down."""
    height, width = image.shape[:2]
    return cv2.resize(
        image, (max(1, width // 2), max(1, height // 2)), interpolation=cv2.INTER_AREA
    )


def blurred(image: Image, rng: np.random.Generator) -> Image:
    """Gaussian blur: a photo slightly out of focus."""
    return cv2.GaussianBlur(image, (0, 0), BLUR_SIGMA)


def shadowed(image: Image, rng: np.random.Generator) -> Image:
    """A soft band of shadow (a hand or phone above the page) across part of the page."""
    height, width = image.shape[:2]
    angle = rng.uniform(0, np.pi)
    # Signed distance of every pixel from a line through a random point, across the band.
    cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
    half_band = rng.uniform(0.15, 0.3) * max(height, width)
    darkest = rng.uniform(*SHADOW_DARKEST)
    # Full shadow at the band's centre, fading smoothly (raised cosine) to none at its edge.
    profile = 0.5 * (1 + np.cos(np.clip(distance / half_band, -1.0, 1.0) * np.pi))
    light = 1.0 - (1.0 - darkest) * profile
    shaded = image.astype(np.float32) * light[:, :, None]
    return np.clip(shaded, 0, 255).astype(np.uint8)


Variant = Callable[[Image, np.random.Generator], Image]

VARIANTS: dict[str, Variant] = {
    "rotate90": rotate90,
    "rotate180": rotate180,
    "rotate270": rotate270,
    "skew+8": skew_plus,
    "skew-8": skew_minus,
    "perspective": perspective,
    "jpeg30": jpeg30,
    "half": half_resolution,
    "blur": blurred,
    "shadow": shadowed,
}


def make_variant(image: Image, name: str, seed: int = 0) -> Image:
    """The variant ``name`` of ``image``; the same image, name and seed give the same pixels."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    return np.ascontiguousarray(VARIANTS[name](image, rng))


def make_variants(
    image: Image, seed: int = 0, names: Iterable[str] | None = None
) -> dict[str, Image]:
    """``{name: variant}`` for ``names`` (default: every variant), in that order."""
    return {name: make_variant(image, name, seed) for name in names or VARIANTS}


def encode_png(image: Image) -> bytes:
    """Lossless bytes for the pipeline, so encoding adds nothing to the variant itself."""
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("OpenCV could not encode the image as PNG")
    return data.tobytes()
