"""Random input corruptions: Gaussian noise and rotation (paper 002 Table 2's last columns).

Both act on a batch of images in ``[0, 1]`` pixel units (``x / 255``; add the dataset
mean back to mean-subtracted inputs first) and draw from a NumPy ``Generator`` that the
caller seeds once, so streaming a test set batch by batch gives the same draws whatever
the batch size.

    rng = np.random.default_rng(0)
    noisy = gaussian_noise(pixels, sigma=0.05, rng=rng)          # N(0, 0.05^2), clipped
    turned = random_rotation(pixels, max_degrees=30, rng=rng)    # uniform in +-30 degrees
"""
from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from utils.errors import UsageError

FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")


def _check_images(images: Any) -> np.ndarray:
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise UsageError(f"images must be (batch, H, W, C), got shape {images.shape}")
    return images


def gaussian_noise(images: Any, sigma: float, rng: np.random.Generator,
                   clip_min: Any = 0.0, clip_max: Any = 1.0) -> np.ndarray:
    """``clip(images + N(0, sigma^2), clip_min, clip_max)``, i.i.d. per value.

    Args:
        images: ``(batch, H, W, C)`` float32.
        sigma: standard deviation in the units of ``images`` (>= 0; 0 returns ``images``).
        rng: NumPy generator the noise is drawn from (advanced by one draw per value).
        clip_min, clip_max: scalars or arrays broadcastable to ``images``.

    Returns:
        float32 ``(batch, H, W, C)``.
    """
    images = _check_images(images)
    if not sigma >= 0 or not math.isfinite(sigma):
        raise UsageError(f"sigma must be a finite number >= 0, got {sigma}")
    noise = rng.standard_normal(images.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(images + noise, clip_min, clip_max).astype(np.float32)


def rotation_matrices(angles_deg: Any, height: int, width: int) -> np.ndarray:
    """Projective transforms ``(batch, 8)`` rotating images by ``angles_deg`` about their
    centre (counter-clockwise for positive angles, Keras' ``RandomRotation`` convention).

    Each row ``[a0, a1, a2, b0, b1, b2, 0, 0]`` maps an output pixel ``(x, y)`` to the
    input point ``(a0 x + a1 y + a2, b0 x + b1 y + b2)``, as ``affine_transform`` expects.
    """
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64)).reshape(-1)
    cos, sin = np.cos(theta), np.sin(theta)
    w, h = width - 1.0, height - 1.0
    x_offset = (w - (cos * w - sin * h)) / 2.0
    y_offset = (h - (sin * w + cos * h)) / 2.0
    zeros = np.zeros_like(theta)
    return np.stack([cos, -sin, x_offset, sin, cos, y_offset, zeros, zeros],
                    axis=1).astype(np.float32)


def rotate(images: Any, angles_deg: Any, fill_mode: str = "nearest") -> np.ndarray:
    """Rotate each image by its angle (degrees), bilinear interpolation.

    Args:
        images: ``(batch, H, W, C)`` float32.
        angles_deg: ``(batch,)`` angles in degrees; 0 returns the image unchanged.
        fill_mode: how points outside the image are filled (:data:`FILL_MODES`;
            ``nearest`` as Keras' ``ImageDataGenerator`` default that the original used).

    Returns:
        float32 ``(batch, H, W, C)``.
    """
    images = _check_images(images)
    if fill_mode not in FILL_MODES:
        raise UsageError(f"fill_mode must be one of {FILL_MODES}, got {fill_mode!r}")
    angles = np.asarray(angles_deg, dtype=np.float64).reshape(-1)
    if angles.shape[0] != images.shape[0]:
        raise UsageError(f"need one angle per image: {angles.shape[0]} angles, "
                         f"{images.shape[0]} images")
    transforms = rotation_matrices(angles, images.shape[1], images.shape[2])
    out = keras.ops.image.affine_transform(images, transforms, interpolation="bilinear",
                                           fill_mode=fill_mode, data_format="channels_last")
    return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)


def random_rotation(images: Any, max_degrees: float, rng: np.random.Generator,
                    clip_min: Any = 0.0, clip_max: Any = 1.0,
                    fill_mode: str = "nearest") -> np.ndarray:
    """Rotate each image by an angle uniform in ``[-max_degrees, max_degrees]``, then clip.

    Args:
        images: ``(batch, H, W, C)`` float32.
        max_degrees: largest rotation (>= 0; 0 returns ``images``).
        rng: NumPy generator of the angles (advanced by one draw per image).
        clip_min, clip_max: scalars or arrays broadcastable to ``images``.
        fill_mode: see :func:`rotate`.

    Returns:
        float32 ``(batch, H, W, C)``.
    """
    images = _check_images(images)
    if not max_degrees >= 0 or not math.isfinite(max_degrees):
        raise UsageError(f"max_degrees must be a finite number >= 0, got {max_degrees}")
    angles = rng.uniform(-max_degrees, max_degrees, size=images.shape[0])
    return np.clip(rotate(images, angles, fill_mode), clip_min, clip_max).astype(np.float32)
