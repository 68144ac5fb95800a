"""Profiles for `bench-host run`: named bundles of every stage's settings (one registry)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

RECIPES_ALL = ("fp32", "dynamic", "fp16", "int8", "int16x8")


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    data: str
    img_size: int
    models: tuple[str, ...]
    epochs: int
    batch: int
    lr: float
    recipes: tuple[str, ...] = RECIPES_ALL
    channels: int = 1
    calib: int = 200
    seed: int = 0
    # agent: a short measurement per row; int16x8 runs on reference kernels and is slow.
    warmup: int = 3
    min_runs: int = 20
    min_seconds: float = 0.5
    max_seconds: float = 5.0
    threads: str = ""  # "" = the agent's default

    def stage_inputs(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        summary="default: synthetic phantom at 48 px; vgg16, googlenet, resnet18; all five "
                "recipes; 4 epochs; a short measurement (≤ 5 min on 2 cores)",
        data="phantom:480", img_size=48, models=("vgg16", "googlenet", "resnet18"), epochs=4,
        batch=32, lr=2e-3, calib=100, min_runs=20, min_seconds=0.3, max_seconds=3.0),
    "paper": Profile(
        name="paper",
        summary="the paper's setting: 224 px grayscale, vgg16, googlenet, resnet34, Adam + cosine "
                "annealing (lr 1e-4, batch 16, 50 epochs: our choice, the paper's own schedule "
                "was not at hand); hours on a CPU; give --data busi:PATH for real images",
        data="phantom:780", img_size=224, models=("vgg16", "googlenet", "resnet34"), epochs=50,
        batch=16, lr=1e-4, calib=200, min_runs=50, min_seconds=5.0, max_seconds=60.0),
}
