"""Image recipes for emulated devices, and where their cached tarballs live.

A recipe is pure data: the Debian suite, the apt packages, the Python the suite ships and the
aarch64 wheels installed offline on top. Its key (a hash of those fields plus LAYOUT_VERSION)
names the cached tarball, so changing a recipe builds a new image and never reuses a stale one."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from edgebench.host.registry import describe, lookup

# Bump when the build procedure changes what lands in the image (not for recipe fields: those are
# hashed already).
# 2: bullseye's site-packages byte-compiled (its parallel compileall had failed under qemu).
LAYOUT_VERSION = 2
ARCH = "arm64"
MACHINE = "aarch64"
# The login user on the device, named like Raspberry Pi OS's.
DEVICE_USER = "pi"
CACHE_ENV = "EDGEBENCH_EMULATE_CACHE"


@dataclass(frozen=True)
class ImageRecipe:
    name: str
    summary: str
    suite: str
    sources: tuple            # apt source lines; explicit so no -security/-updates suite is added
    packages: tuple           # apt packages beyond the essential set
    python: str               # the suite's python3, "3.11"
    wheels: tuple             # pip requirements, installed from aarch64 wheels fetched on the host
    platforms: tuple          # pip --platform tags to accept
    runtime: str              # the agent's name for the runtime it should pick there
    runtime_dist: str         # that runtime's distribution (whose version the rows carry)

    @property
    def key(self) -> str:
        """Hash of what decides the image's content (not the names and summary)."""
        fields = {k: v for k, v in asdict(self).items() if k in _BUILD_FIELDS}
        blob = json.dumps({**fields, "layout": LAYOUT_VERSION, "arch": ARCH},
                          sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def site_packages(self) -> str:
        """Where the wheels go inside the rootfs: Debian's python3 searches it before the apt
        packages' dist-packages."""
        return f"usr/local/lib/python{self.python}/dist-packages"

    def pinned(self, dist: str):
        """The version a requirement pins with ==, or None."""
        for req in self.wheels:
            name, sep, version = req.partition("==")
            if sep and _norm(name) == _norm(dist):
                return version
        return None


_BUILD_FIELDS = ("suite", "sources", "packages", "python", "wheels", "platforms")


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


# libstdc++6: every manylinux C++ wheel (numpy, LiteRT, ONNX Runtime) needs it; Raspberry Pi OS
# ships it.
_BASE_PACKAGES = ("python3", "openssh-server", "passwd", "libstdc++6")

IMAGES = {
    "bookworm": ImageRecipe(
        name="bookworm",
        summary="Debian 12 arm64 (Raspberry Pi OS Bookworm class): Python 3.11, LiteRT 2.1.0, "
                "ONNX Runtime 1.23.0",
        suite="bookworm",
        sources=("deb http://deb.debian.org/debian bookworm main",),
        packages=_BASE_PACKAGES,
        python="3.11",
        # numpy and onnxruntime pinned to the host venv's, so host and device run the same
        # numeric code paths and the same ORT release (its .onnx rows).
        wheels=("ai-edge-litert==2.1.0", "numpy==1.26.4", "onnxruntime==1.23.0"),
        platforms=("manylinux_2_27_aarch64", "manylinux2014_aarch64"),
        runtime="litert", runtime_dist="ai-edge-litert"),
    "bullseye": ImageRecipe(
        name="bullseye",
        summary="Debian 11 arm64 (Raspberry Pi OS Bullseye class): Python 3.9, glibc 2.31, "
                "tflite-runtime 2.13.0, numpy<2, ONNX Runtime 1.19.2",
        suite="bullseye",
        sources=("deb http://deb.debian.org/debian bullseye main",),
        packages=_BASE_PACKAGES,
        python="3.9",
        # tflite-runtime 2.14's aarch64 wheels need glibc >= 2.34; 2.13.0 is manylinux2014.
        # onnxruntime 1.19.2 is the last release with cp39 wheels; its aarch64 wheel is
        # manylinux_2_27 (glibc 2.31 qualifies), which manylinux2014 alone does not admit
        # (pip then falls back to 1.16.3).
        wheels=("tflite-runtime==2.13.0", "numpy==1.26.4", "onnxruntime==1.19.2"),
        platforms=("manylinux_2_27_aarch64", "manylinux2014_aarch64"),
        runtime="tflite-runtime", runtime_dist="tflite-runtime"),
}


def get_image(name: str) -> ImageRecipe:
    return lookup(IMAGES, name, "emulated image")


def describe_images() -> str:
    return describe(IMAGES, "emulated image")


def cache_root() -> Path:
    """$EDGEBENCH_EMULATE_CACHE, else $XDG_CACHE_HOME/edgebench/emulate, else
    ~/.cache/edgebench/emulate: outside the repo so every checkout and CI run shares it."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "edgebench" / "emulate"


def image_path(recipe: ImageRecipe) -> Path:
    return cache_root() / "images" / f"{recipe.name}-{recipe.key}.tar.zst"


def image_info_path(recipe: ImageRecipe) -> Path:
    """JSON beside the tarball: the wheels actually installed, build time, size."""
    return cache_root() / "images" / f"{recipe.name}-{recipe.key}.json"


def wheel_dir(recipe: ImageRecipe) -> Path:
    return cache_root() / "wheels" / f"{recipe.name}-{recipe.key}"
