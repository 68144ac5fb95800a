"""Synthetic B-mode breast-ultrasound phantom: the default data set, generated offline.

Each image is simulated at twice the requested size and averaged down (recipe in TOOLCHAIN.md):

1. an echogenicity map in dB: skin line, subcutaneous fat, lobular fibroglandular tissue
   (10^(0.5·z) from smoothed noise), chest wall, and one lesion with its posterior effect;
2. scatterers N(0,1)·sqrt(brightness) convolved with the pulse (Gaussian-modulated cosine axially,
   Gaussian laterally) and envelope-detected (analytic signal) -> fully developed Rayleigh speckle;
3. log compression of the envelope to a 45 dB display range -> uint8.

Benign lesions are smooth ovals wider than tall with posterior enhancement; malignant ones are
taller than wide, with a spiculated margin, mottled interior, echogenic rim and posterior shadow.
Lesion area has the same distribution in both classes and an auto-gain sets each image's mean
level independently of its class, so neither size nor brightness gives the answer away. About
15% of each class are atypical (they borrow the other class's shape or posterior sign) and about
3% carry the wrong label, so a perfect score is not reachable.

Image `i` depends only on (seed, i): the anatomy comes from its own random stream, drawn in
field-relative coordinates, so the same case looks the same at 64 and 224 px, and a set of N
images is the first N of any longer set.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import gaussian_filter1d
from scipy.special import expit

DYNAMIC_RANGE_DB = 45.0
ATYPICAL_RATE = 0.15
MISLABEL_RATE = 0.03
# Pulse in simulation pixels at a 448 px simulation (224 px images): 4 px wavelength, ~50%
# fractional bandwidth, beam wider laterally than the pulse is long, as in a real linear probe.
# Smaller images get a proportionally shorter pulse, down to what the pixel grid can carry, so the
# speckle grain stays close to the same fraction of the field at every size.
WAVELENGTH_PX = 4.0
AXIAL_SIGMA_PX = 3.0
LATERAL_SIGMA_PX = 2.0
_REF_SIM = 448
_MIN_PULSE = 0.5  # below half the reference pulse the band would run into DC and Nyquist
_PAD = 12  # simulation pixels around the field so the FFT convolution does not wrap
# Everything is computed in float64: float32 results of BLAS, FFT and numpy's vectorised maths
# depend on which SIMD kernels the CPU gets (measured: the same 480 images at 40 px came out with
# different pixels under OpenBLAS's Cooperlake and Haswell kernels, and with numpy's AVX-512 loops
# switched off), so two machines of one kind produced different data sets and trained different
# models. In float64 those differences stay far below one grey level.


@dataclass
class Case:
    """Everything random about one phantom image except its speckle, in field units (0..1)."""

    seed: int
    index: int
    label: int          # the label the data set reports (after label noise)
    looks_like: int     # the class whose features were drawn
    atypical: bool
    skin: float         # depth of the skin line's lower edge
    fat: float          # depth of the fat / fibroglandular boundary
    wall: float         # depth of the chest wall's upper edge
    wall_thick: float
    waves: np.ndarray   # (3, 2, 2): amplitude/phase pairs for the three layer boundaries
    lobular: np.ndarray  # low-resolution noise grids, interpolated to any size
    fine: np.ndarray
    mottle_grid: np.ndarray
    cx: float
    cy: float
    radius: float       # equivalent radius (area = pi * radius^2), fraction of the width
    aspect: float       # height / width of the underlying ellipse
    tilt: float         # radians
    lobes: np.ndarray   # (k, 3): harmonic, amplitude, phase
    spikes: np.ndarray  # (k, 3): angle, amplitude, half-width (radians)
    shape_scale: float  # keeps the area at pi * radius^2 whatever the margin adds
    edge: float         # soft-edge width in normalised radius
    contrast_db: float
    mottle_db: float
    rim_db: float
    posterior_db: float  # > 0 enhancement, < 0 shadow
    level_db: float      # auto-gain target for the image's mean (below display white)
    tgc_db: float        # residual time-gain slope over the depth


def draw_case(seed: int, index: int) -> Case:
    """The anatomy of image `index`; labels alternate so any even N is exactly balanced."""
    rng = np.random.default_rng([seed, index, 0])
    label = index % 2
    mislabeled = rng.random() < MISLABEL_RATE
    looks = 1 - label if mislabeled else label
    atypical = bool(rng.random() < ATYPICAL_RATE)
    u = rng.uniform

    skin, fat = u(0.025, 0.045), u(0.14, 0.26)
    wall = u(0.78, 0.88)
    radius = u(0.07, 0.14)
    if looks == 0:
        aspect = u(0.8, 1.15) if atypical else u(0.42, 0.72)
        n_lobes = int(rng.integers(2, 4)) if atypical else int(rng.integers(0, 3))
        lobe_amp = (0.05, 0.11) if atypical else (0.0, 0.04)
        spikes = np.zeros((0, 3))
        edge = u(0.04, 0.07)
        contrast = u(-23.0, -16.0)
        mottle = u(0.5, 2.0)
        rim = 0.0
        posterior = u(-5.0, 1.0) if atypical else u(4.0, 8.0)
    else:
        aspect = u(0.65, 0.95) if atypical else u(1.15, 1.7)
        n_lobes = int(rng.integers(3, 6))
        lobe_amp = (0.03, 0.08)
        k = int(rng.integers(6, 14))
        amp = (0.07, 0.16) if atypical else (0.25, 0.6)
        spikes = np.column_stack([rng.uniform(-np.pi, np.pi, k), rng.uniform(*amp, k),
                                  rng.uniform(0.08, 0.18, k)])
        edge = u(0.015, 0.03)
        contrast = u(-18.0, -12.0)
        mottle = u(3.0, 6.0)
        rim = u(0.0, 3.0) if atypical else u(4.0, 9.0)
        posterior = u(-3.0, 3.0) if atypical else u(-18.0, -10.0)
    lobes = np.column_stack([rng.integers(2, 8, n_lobes), rng.uniform(*lobe_amp, n_lobes),
                             rng.uniform(0, 2 * np.pi, n_lobes)]) if n_lobes else np.zeros((0, 3))
    # A spiculated margin adds area; rescale so both classes share one size distribution.
    phi = np.linspace(-np.pi, np.pi, 720, endpoint=False)
    shape_scale = 1.0 / np.sqrt(np.mean(_margin(phi, lobes, spikes) ** 2))

    half_h = radius * np.sqrt(aspect) * 1.3
    cy = u(max(fat + 0.02 + half_h * 0.6, 0.3), min(wall - 0.04 - half_h, 0.62))
    return Case(
        seed=seed, index=index, label=label, looks_like=looks, atypical=atypical,
        skin=skin, fat=fat, wall=wall, wall_thick=u(0.04, 0.07),
        waves=np.stack([rng.uniform(0.0, [0.006, 0.03, 0.025], (2, 3)).T,
                        rng.uniform(0, 2 * np.pi, (3, 2))], axis=-1),
        lobular=rng.standard_normal((9, 9)), fine=rng.standard_normal((22, 22)),
        mottle_grid=rng.standard_normal((30, 30)),
        cx=u(0.3, 0.7), cy=cy, radius=radius, aspect=aspect, tilt=rng.normal(0.0, 0.15),
        lobes=lobes, spikes=spikes, shape_scale=float(shape_scale), edge=edge,
        contrast_db=contrast, mottle_db=mottle, rim_db=rim, posterior_db=posterior,
        level_db=u(-23.0, -17.0), tgc_db=u(-3.0, 3.0),
    )


def _margin(phi: np.ndarray, lobes: np.ndarray, spikes: np.ndarray) -> np.ndarray:
    """Relative radius of the margin at polar angle phi: lobulation plus triangular spicules."""
    r = np.ones_like(phi)
    for harmonic, amp, phase in lobes:
        r += amp * np.cos(harmonic * phi + phase)
    for angle, amp, width in spikes:
        d = np.abs((phi - angle + np.pi) % (2 * np.pi) - np.pi)  # wrapped angular distance
        r += amp * np.clip(1.0 - d / width, 0.0, None)
    return r


_BASES: dict[tuple[int, int], np.ndarray] = {}


def _smooth_field(grid: np.ndarray, n: int) -> np.ndarray:
    """Interpolate a low-resolution noise grid to n×n with Gaussian bumps (two small matmuls),
    normalised to zero mean and unit std: the same field at any resolution."""
    k = grid.shape[0]
    if (n, k) not in _BASES:
        centres = np.linspace(-0.1, 1.1, k)
        x = (np.arange(n) + 0.5) / n
        w = np.exp(-0.5 * ((x[:, None] - centres[None, :]) / (1.2 / (k - 1))) ** 2)
        _BASES[n, k] = w / w.sum(axis=1, keepdims=True)
    w = _BASES[n, k]
    field = w @ grid.astype(np.float64) @ w.T
    return (field - field.mean()) / (field.std() + 1e-12)


def _boundary(x: np.ndarray, base: float, wave: np.ndarray) -> np.ndarray:
    edge = base + sum(a * np.sin(2 * np.pi * (i + 1) * x + p) for i, (a, p) in enumerate(wave))
    return np.asarray(edge, np.float64)


def echo_map(case: Case, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Echogenicity in dB (n×n, 0 dB = average gland) and the lesion's soft mask (0..1)."""
    x = (np.arange(n, dtype=np.float64) + 0.5) / n
    y = x[:, None]

    def step(edge: np.ndarray) -> np.ndarray:
        return expit((y - edge[None, :]) / 0.006)

    skin = step(_boundary(x, case.skin, case.waves[0]))
    fat = step(_boundary(x, case.fat, case.waves[1]))
    wall_top = _boundary(x, case.wall, case.waves[2])
    wall = step(wall_top) - step(wall_top + case.wall_thick)
    below = step(wall_top + case.wall_thick)
    lobular = 5.0 * (0.8 * _smooth_field(case.lobular, n) + 0.6 * _smooth_field(case.fine, n))
    db = (12.0 * (1 - skin) + skin * (1 - fat) * (-5.0 + 0.7 * lobular) + fat * lobular
          + 9.0 * wall - 9.0 * below * (1 - wall))
    db += case.tgc_db * (y - 0.5)

    mask = np.zeros((n, n), np.float64)
    # Work inside the lesion's bounding box only: most of the field is plain tissue.
    reach = case.radius * case.shape_scale * (1.0 + case.spikes[:, 1].max(initial=0.0)
                                              + np.abs(case.lobes[:, 1]).sum()) * 2.2 + 0.02
    r0, r1 = (max(0, int((c - reach) * n)) for c in (case.cy, case.cx))
    r_end, c_end = (min(n, int(np.ceil((c + reach) * n))) for c in (case.cy, case.cx))
    by, bx = y[r0:r_end], x[None, r1:c_end]
    a = case.radius / np.sqrt(case.aspect) * case.shape_scale   # lateral semi-axis
    b = case.radius * np.sqrt(case.aspect) * case.shape_scale   # axial semi-axis
    ct, st = np.cos(case.tilt), np.sin(case.tilt)
    u = ((bx - case.cx) * ct + (by - case.cy) * st) / a
    v = (-(bx - case.cx) * st + (by - case.cy) * ct) / b
    rho = np.hypot(u, v)
    d = rho - _margin(np.arctan2(v, u), case.lobes, case.spikes)  # < 0 inside
    inside = expit(-d / case.edge)
    mottle = _smooth_field(case.mottle_grid, n)[r0:r_end, r1:c_end]
    lesion_db = case.contrast_db + case.mottle_db * mottle
    rim = case.rim_db * np.exp(-0.5 * ((d - 0.12) / 0.07) ** 2) * (0.7 + 0.3 * mottle)
    box = db[r0:r_end, r1:c_end]
    box[:] = (1 - inside) * (box + rim) + inside * lesion_db
    mask[r0:r_end, r1:c_end] = inside

    # Posterior enhancement or shadow below the lesion, weaker behind its thin parts.
    solid = inside > 0.5
    cols = np.flatnonzero(solid.any(axis=0))
    if cols.size:
        depth_px = solid.shape[0] - 1 - np.argmax(solid[::-1, cols], axis=0) + r0
        thick = solid[:, cols].sum(axis=0) / solid[:, cols].sum(axis=0).max()
        dist = (np.arange(n)[:, None] - depth_px[None, :]) / n
        decay = 1.0 if case.posterior_db < 0 else 0.3
        post = np.where(dist > 0, np.exp(-dist / decay), 0.0) * np.sqrt(thick)[None, :]
        sigma = 0.012 * n
        reach_px = int(4 * sigma) + 1
        lo, hi = max(0, r1 + cols[0] - reach_px), min(n, r1 + cols[-1] + reach_px + 1)
        strip = np.zeros((n, hi - lo), np.float64)
        strip[:, r1 + cols - lo] = post
        db[:, lo:hi] += case.posterior_db * gaussian_filter1d(strip, sigma=sigma, axis=1)
    return db, mask


def _pulse_spectrum(rows: int, cols: int, scale: float) -> np.ndarray:
    """One-sided (analytic) 2-D transfer function of the pulse, scaled so that unit brightness
    gives unit mean envelope power; only positive axial frequencies, so the inverse FFT is the
    analytic signal and its magnitude the envelope."""
    fy = sfft.fftfreq(rows)[:, None]
    fx = sfft.fftfreq(cols)[None, :]
    f0 = 1.0 / (WAVELENGTH_PX * scale) if scale >= 1.0 else 0.25
    h = (np.exp(-0.5 * ((fy - f0) * 2 * np.pi * AXIAL_SIGMA_PX * scale) ** 2)
         * np.exp(-0.5 * (fx * 2 * np.pi * LATERAL_SIGMA_PX * scale) ** 2)) * (fy > 0)
    h /= np.sqrt(np.mean(h ** 2))
    return h.astype(np.complex128)


_SPECTRA: dict[tuple[int, int, float], np.ndarray] = {}


def speckle_envelope(brightness: np.ndarray, rng: np.random.Generator,
                     pulse_scale: float = 1.0) -> np.ndarray:
    """Envelope of the echo from random scatterers with the given mean intensity (linear).

    Edges are padded so the circular convolution does not wrap; in a homogeneous region the
    envelope is Rayleigh-distributed, mean/std = sqrt(pi / (4 - pi)) = 1.91."""
    padded = np.pad(brightness.astype(np.float64), _PAD, mode="edge")
    # Drawn in float32 (the stream the phantom was defined with), computed on in float64.
    scat = rng.standard_normal(padded.shape, dtype=np.float32).astype(np.float64) * np.sqrt(padded)
    key = (*padded.shape, pulse_scale)
    if key not in _SPECTRA:
        _SPECTRA[key] = _pulse_spectrum(*key)
    analytic = sfft.ifft2(sfft.fft2(scat) * _SPECTRA[key])
    return np.abs(analytic[_PAD:-_PAD, _PAD:-_PAD])


def log_compress(env: np.ndarray, level_db: float) -> np.ndarray:
    """20·log10 of the envelope, shifted so its mean sits at level_db below white (an auto-gain),
    then mapped over DYNAMIC_RANGE_DB to uint8."""
    db = 20.0 * np.log10(np.maximum(env, 1e-6))
    db += level_db - db.mean()
    grey = (db + DYNAMIC_RANGE_DB) * (255.0 / DYNAMIC_RANGE_DB) + 0.5
    return np.clip(grey, 0, 255).astype(np.uint8)


def _halve(a: np.ndarray) -> np.ndarray:
    n = a.shape[0] // 2
    return a.reshape(n, 2, n, 2).mean(axis=(1, 3))


def render(case: Case, img_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulate `case` at 2·img_size and return (uint8 image, lesion mask) at img_size."""
    n = 2 * img_size
    db, mask = echo_map(case, n)
    rng = np.random.default_rng([case.seed, case.index, 1])
    env = speckle_envelope(10.0 ** (db / 10.0), rng, max(_MIN_PULSE, n / _REF_SIM))
    return log_compress(_halve(env), case.level_db), _halve(mask)


def generate(n: int, img_size: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`n` phantom images (uint8 n×img_size×img_size), their labels and ids `phantom-<i>`."""
    images = np.empty((n, img_size, img_size), np.uint8)
    labels = np.empty(n, np.int64)
    for i in range(n):
        case = draw_case(seed, i)
        images[i], _ = render(case, img_size)
        labels[i] = case.label
    return images, labels, [f"phantom-{i}" for i in range(n)]
