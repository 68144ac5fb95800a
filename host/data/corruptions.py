"""Ultrasound image corruptions of MedMNIST-C (Di Salvo et al., 2024, arXiv:2406.17536), with the
parameters its registry gives for BreastMNIST (breast ultrasound), five severities each.

The `medmnistc` package (0.1.0) is not used: it requires torchvision (which does not import beside
torch 2.13.0 here), medmnist and Wand/ImageMagick, and imports them at module level. The same
operations are written here on Pillow and numpy, following its definitions:
- pixelate: Pillow BOX resize down by the factor, then BOX back up;
- jpeg_compression: a real JPEG round trip through Pillow's encoder at the quality;
- speckle_noise: x + x·n, n ~ N(0, σ²), on [0, 1], clipped (multiplicative noise);
- motion_blur: ImageMagick's MotionBlurImage(radius, sigma, angle) — a one-sided Gaussian kernel
  of 2·radius + 1 taps along a random angle in ±45°, taps at rounded offsets, edges replicated;
- brightness_up/down: Pillow ImageEnhance.Brightness (a blend with black);
- contrast_down: Pillow ImageEnhance.Contrast (a blend with the image's mean grey).
The parameters are for 224 × 224 images. At another size S the corruptions run on the image as it
is (no resampling round trip, which would itself blur), with the parameters that are lengths in
224-px pixels scaled by S / 224: pixelate keeps its intermediate resolution (factor · 224 px, so
factor · 224 / S at size S, capped at 1: a 48 px image cannot show a 67 px pixelation) and motion
blur's radius and sigma shrink with the image. Brightness, contrast, JPEG quality and speckle σ
are per pixel or global and are used unchanged.
Random parts (noise, motion angle) are drawn from a generator seeded by (seed, corruption,
severity, image index): the same bundle always carries the same corrupted images."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance

from edgebench.host.errors import UserError

PROTOCOL_SIZE = 224
SOURCE = ("MedMNIST-C (Di Salvo, Doerrich, Ledig 2024, arXiv:2406.17536), medmnistc 0.1.0 "
          "registry, breastmnist")


def _pixelate(img: Image.Image, factor: float, rng) -> Image.Image:
    w, h = img.size
    small = img.resize((int(w * factor), int(h * factor)), Image.BOX)
    return small.resize((w, h), Image.BOX)


def _jpeg(img: Image.Image, quality: int, rng) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality))
    buf.seek(0)
    return Image.open(buf).convert("L")


def _speckle(img: Image.Image, sigma: float, rng) -> Image.Image:
    x = np.asarray(img, dtype=np.float64) / 255.0
    noisy = np.clip(x + x * rng.normal(scale=sigma, size=x.shape), 0.0, 1.0)
    return Image.fromarray((noisy * 255).astype(np.uint8))


def motion_kernel(radius: float, sigma: float, angle_deg: float) -> list[tuple[int, int, float]]:
    """(dy, dx, weight) taps of ImageMagick's motion blur: width 2·radius + 1, weights
    exp(−i²/2σ²) normalised, tap i at i·(sin, cos) of the angle, rounded."""
    width = 2 * int(math.ceil(radius)) + 1
    weights = np.exp(-(np.arange(width) ** 2) / (2.0 * sigma * sigma))
    weights /= weights.sum()
    a = math.radians(angle_deg)
    return [(int(math.ceil(i * math.sin(a) - 0.5)), int(math.ceil(i * math.cos(a) - 0.5)),
             float(w)) for i, w in enumerate(weights)]


def _motion(img: Image.Image, radius_sigma, rng) -> Image.Image:
    radius, sigma = radius_sigma
    x = np.asarray(img, dtype=np.float64)
    h, w = x.shape
    pad = 2 * int(math.ceil(radius)) + 1
    padded = np.pad(x, pad, mode="edge")
    out = np.zeros_like(x)
    for dy, dx, weight in motion_kernel(radius, sigma, rng.uniform(-45.0, 45.0)):
        out += weight * padded[pad + dy:pad + dy + h, pad + dx:pad + dx + w]
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8))


def _brightness(img: Image.Image, factor: float, rng) -> Image.Image:
    return ImageEnhance.Brightness(img).enhance(factor)


def _contrast(img: Image.Image, factor: float, rng) -> Image.Image:
    return ImageEnhance.Contrast(img).enhance(factor)


def _same(parameter, size: int):
    return parameter


def _scale_factor(factor: float, size: int) -> float:
    return min(1.0, factor * PROTOCOL_SIZE / size)


def _scale_lengths(radius_sigma, size: int) -> tuple:
    return tuple(v * size / PROTOCOL_SIZE for v in radius_sigma)


@dataclass(frozen=True)
class Corruption:
    name: str
    parameter: str                 # what the five numbers are
    severities: tuple              # severity 1..5, for 224 px images
    apply: Callable
    help: str
    at_size: Callable = _same      # (parameter, image size) -> the parameter at that size


CORRUPTIONS = {c.name: c for c in (
    Corruption("pixelate", "resize factor", (0.30, 0.25, 0.20, 0.15, 0.10), _pixelate,
               "box-resize down by the factor and back up", _scale_factor),
    Corruption("jpeg_compression", "JPEG quality", (50, 30, 15, 10, 7), _jpeg,
               "a JPEG round trip at that quality"),
    Corruption("speckle_noise", "sigma", (0.10, 0.15, 0.20, 0.25, 0.30), _speckle,
               "multiplicative Gaussian noise x + x*N(0, sigma^2)"),
    Corruption("motion_blur", "(radius, sigma)", ((5, 5), (9, 7), (9, 10), (13, 10), (17, 12)),
               _motion, "ImageMagick-style motion blur at a random angle in +-45 deg",
               _scale_lengths),
    Corruption("brightness_up", "brightness factor", (1.4, 1.5, 1.6, 1.8, 2.0), _brightness,
               "Pillow brightness enhance (brighter: high gain)"),
    Corruption("brightness_down", "brightness factor", (0.55, 0.5, 0.45, 0.4, 0.3), _brightness,
               "Pillow brightness enhance (darker: low gain)"),
    Corruption("contrast_down", "contrast factor", (0.9, 0.8, 0.7, 0.6, 0.4), _contrast,
               "Pillow contrast enhance towards the mean grey"),
)}
SEVERITIES = (1, 2, 3, 4, 5)


def describe() -> str:
    lines = [f"{c.name:<17} {c.help}; {c.parameter} by severity 1-5: "
             f"{', '.join(str(p) for p in c.severities)}" for c in CORRUPTIONS.values()]
    return "\n".join(lines + ["all               every corruption above", f"source: {SOURCE}"])


def parse(spec: str) -> list[tuple[str, tuple]]:
    """"all", "speckle_noise,contrast_down" or "speckle_noise:1,5" -> [(name, severities)]."""
    spec = (spec or "").strip()
    if not spec:
        raise UserError("--robustness names no corruption; 'all' or a list, e.g. "
                        "speckle_noise,contrast_down (--robustness help lists them)")
    if spec == "all":
        return [(name, SEVERITIES) for name in CORRUPTIONS]
    out = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        name, _, sev = item.partition(":")
        if name not in CORRUPTIONS:
            raise UserError(f"unknown corruption {name!r}; choose from: "
                            f"{', '.join(CORRUPTIONS)} or all")
        try:
            levels = tuple(int(v) for v in sev.split("+")) if sev else SEVERITIES
        except ValueError:
            raise UserError(f"--robustness {item}: severities are 1-5, joined by '+', "
                            f"e.g. {name}:1+5") from None
        if not levels or not all(1 <= v <= 5 for v in levels):
            raise UserError(f"--robustness {item}: severity out of 1-5")
        out.append((name, levels))
    return out


def corrupt(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """uint8 N×H×W×C images (C = 1 or 3, channels corrupted as grey and replicated) under one
    corruption at one severity, the parameter scaled to their size (see the module's text)."""
    if name not in CORRUPTIONS:
        raise UserError(f"unknown corruption {name!r}; choose from: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise UserError(f"severity {severity} out of 1-5")
    c = CORRUPTIONS[name]
    n, h, w, ch = images.shape
    parameter = c.at_size(c.severities[severity - 1], max(h, w))
    index = list(CORRUPTIONS).index(name)
    out = np.empty_like(images)
    for i in range(n):
        rng = np.random.default_rng([seed, index, severity, i])
        img = c.apply(Image.fromarray(images[i, :, :, 0]), parameter, rng)
        out[i] = np.repeat(np.asarray(img, dtype=np.uint8)[:, :, None], ch, axis=2)
    return out


def set_name(name: str, severity: int) -> str:
    return f"{name}-{severity}"


def write_sets(images: np.ndarray, spec, folder, seed: int = 0) -> dict:
    """robustness/<name>-<severity>.npz (images only: labels are the test set's, in its order)
    for each corruption × severity of `spec` (parse()'s list); the manifest's "robustness"
    entry describing them."""
    from pathlib import Path

    folder = Path(folder)
    (folder / "robustness").mkdir(exist_ok=True)
    sets = []
    for name, severities in spec:
        c = CORRUPTIONS[name]
        for severity in severities:
            rel = f"robustness/{set_name(name, severity)}.npz"
            np.savez(folder / rel, images=corrupt(images, name, severity, seed))
            protocol = c.severities[severity - 1]
            applied = c.at_size(protocol, max(images.shape[1:3]))
            sets.append({"corruption": name, "severity": severity, "file": rel,
                         "parameter_name": c.parameter, "parameter": _plain(protocol),
                         "parameter_applied": _plain(applied)})
    return {"source": SOURCE, "seed": seed, "n": int(len(images)),
            "image_size": list(images.shape[1:3]), "protocol_size": PROTOCOL_SIZE,
            "scaling": "lengths in 224-px pixels scaled by size/224 (pixelate: the intermediate "
                       "resolution; motion blur: radius and sigma); intensity parameters as "
                       "given", "sets": sets}


def _plain(value):
    return [round(float(v), 4) for v in value] if isinstance(value, tuple) else value
