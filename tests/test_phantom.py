"""The synthetic phantom, checked by statistics (and by bytes only where machines must agree):
determinism, balance, speckle, lesion contrast, and that only shape, margin and shadow (not
brightness or size) tell the classes apart."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from edgebench.host.data import phantom as P

RAYLEIGH_SNR = np.sqrt(np.pi / (4 - np.pi))  # 1.913


def threshold_accuracy(feature: np.ndarray, labels: np.ndarray) -> float:
    """Held-out accuracy of the best one-feature threshold rule fitted on the first half: what a
    classifier that sees only this feature could do."""
    half = len(labels) // 2
    fit_x, fit_y, test_x, test_y = feature[:half], labels[:half], feature[half:], labels[half:]
    best = (-1.0, 0.0, 1)
    for t in np.unique(fit_x):
        for sign in (1, -1):
            acc = np.mean((sign * (fit_x - t) > 0) == fit_y)
            if acc > best[0]:
                best = (acc, t, sign)
    _, t, sign = best
    return float(np.mean((sign * (test_x - t) > 0) == test_y))


@pytest.fixture(scope="module")
def small_set():
    return P.generate(240, 32, seed=11)


def test_same_seed_same_images_and_other_seed_differs():
    a, la, ida = P.generate(6, 32, seed=3)
    b, lb, idb = P.generate(6, 32, seed=3)
    c, _, _ = P.generate(6, 32, seed=4)
    assert np.array_equal(a, b) and np.array_equal(la, lb) and ida == idb
    assert all(not np.array_equal(a[i], c[i]) for i in range(6))


_DIGEST = ("import hashlib; from edgebench.host.data.phantom import generate; "
           "print(hashlib.sha256(generate(120, 40, 0)[0].tobytes()).hexdigest())")


@pytest.mark.parametrize("kernels", [
    {"OPENBLAS_CORETYPE": "Haswell"},  # another BLAS kernel than this CPU's own
    {"NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL"},
])
def test_same_pixels_whatever_simd_kernels_the_cpu_gets(kernels):
    """Two machines of one kind gave different phantoms (and so different trained models) when
    it was computed in float32: BLAS and numpy pick SIMD kernels by CPU. The same images must come
    out under another kernel choice, byte for byte."""
    import os
    import subprocess
    import sys

    def digest(extra):
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
        return subprocess.run([sys.executable, "-c", _DIGEST], env={**env, **extra}, check=True,
                              capture_output=True, text=True).stdout.strip()

    own = digest({})
    assert len(own) == 64 and digest(kernels) == own


def test_image_i_does_not_depend_on_n():
    short, ls, _ = P.generate(4, 32, seed=5)
    long, ll, ids = P.generate(9, 32, seed=5)
    assert np.array_equal(short, long[:4]) and np.array_equal(ls, ll[:4])
    assert ids[8] == "phantom-8"


def test_shape_dtype_and_dynamic_range(small_set):
    images, labels, ids = small_set
    assert images.shape == (240, 32, 32) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and len(ids) == 240
    # Log compression over 45 dB should use the grey scale, not a narrow band of it.
    lo, hi = np.percentile(images, [1, 99])
    assert lo < 40 and hi > 200


def test_classes_are_balanced(small_set):
    _, labels, _ = small_set
    assert np.bincount(labels).tolist() == [120, 120]
    _, odd, _ = P.generate(11, 16, seed=0)
    assert abs(int(odd.sum()) * 2 - 11) == 1


def test_atypical_and_mislabelled_rates():
    cases = [P.draw_case(7, i) for i in range(2000)]
    mislabelled = np.mean([c.looks_like != c.label for c in cases])
    assert 0.015 < mislabelled < 0.05
    for cls in (0, 1):
        atypical = np.mean([c.atypical for c in cases if c.looks_like == cls])
        assert 0.11 < atypical < 0.19, (cls, atypical)


@pytest.mark.parametrize("pulse_scale", [1.0, 0.5])
def test_speckle_envelope_is_rayleigh(pulse_scale):
    """Fully developed speckle in a homogeneous region: envelope mean/std = 1.91, and the mean
    power follows the brightness map."""
    rng = np.random.default_rng(0)
    env = np.concatenate([P.speckle_envelope(np.full((256, 256), 4.0), rng, pulse_scale).ravel()
                          for _ in range(4)])
    assert env.mean() / env.std() == pytest.approx(RAYLEIGH_SNR, abs=0.06)
    assert np.mean(env ** 2) == pytest.approx(4.0, rel=0.08)


def test_speckle_tracks_brightness():
    brightness = np.ones((128, 256), np.float32)
    brightness[:, 128:] = 100.0  # +20 dB on the right half
    env = P.speckle_envelope(brightness, np.random.default_rng(1))
    ratio_db = 10 * np.log10(np.mean(env[:, 160:] ** 2) / np.mean(env[:, :96] ** 2))
    assert ratio_db == pytest.approx(20.0, abs=1.5)


def test_lesions_are_darker_than_surrounding_tissue():
    contrast = {0: [], 1: []}
    for i in range(40):
        case = P.draw_case(0, i)
        image, mask = P.render(case, 64)
        solid = mask > 0.5
        ring = (ndimage.binary_dilation(solid, iterations=6)
                & ~ndimage.binary_dilation(solid, iterations=2))
        ring &= np.arange(64)[:, None] < case.cy * 64  # beside and above: not the posterior zone
        db = image.astype(float) * P.DYNAMIC_RANGE_DB / 255
        contrast[case.looks_like].append(db[ring].mean() - db[mask > 0.9].mean())
    assert np.mean(contrast[0]) > 12 and min(contrast[0]) > 6
    assert np.mean(contrast[1]) > 9 and min(contrast[1]) > 4


def test_posterior_shadow_and_enhancement():
    """Typical malignant lesions darken what lies below them, typical benign ones brighten it."""
    for label in (0, 1):
        case = next(c for c in (P.draw_case(2, i) for i in range(label, 200, 2))
                    if not c.atypical and c.looks_like == label)
        db, mask = P.echo_map(case, 128)
        case.posterior_db = 0.0
        flat, _ = P.echo_map(case, 128)
        cols = np.flatnonzero((mask > 0.5).any(axis=0))
        bottom = np.flatnonzero((mask > 0.5).any(axis=1)).max()
        below = (db - flat)[bottom + 3: bottom + 20, cols].mean()
        assert (below < -5) if label else (below > 2), (label, below)


def test_global_brightness_does_not_give_the_class_away(small_set):
    images, labels, _ = small_set
    flat = images.reshape(len(images), -1).astype(float)
    for name, feature in (("mean", flat.mean(1)), ("median", np.median(flat, 1)),
                          ("std", flat.std(1))):
        assert threshold_accuracy(feature, labels) < 0.64, name


def lesion_geometry(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels, areas, aspects = [], [], []
    for i in range(n):
        case = P.draw_case(seed, i)
        _, mask = P.echo_map(case, 96)
        solid = mask > 0.5
        rows, cols = np.flatnonzero(solid.any(1)), np.flatnonzero(solid.any(0))
        labels.append(case.label)
        areas.append(solid.sum())
        aspects.append((rows.ptp() + 1) / (cols.ptp() + 1))
    return np.array(labels), np.array(areas, float), np.array(aspects)


def test_size_alone_is_near_chance_but_shape_separates_imperfectly():
    labels, areas, aspects = lesion_geometry(seed=1, n=300)
    assert threshold_accuracy(areas, labels) < 0.64
    # Taller-than-wide is the textbook cue; atypical cases and label noise keep it short of 100%.
    shape = threshold_accuracy(aspects, labels)
    assert 0.75 < shape < 0.97


def test_same_case_keeps_its_anatomy_across_sizes():
    case = P.draw_case(9, 3)
    _, small = P.render(case, 32)
    _, large = P.render(case, 64)
    shrunk = large.reshape(32, 2, 32, 2).mean(axis=(1, 3))
    assert np.abs(shrunk - small).mean() < 0.03
