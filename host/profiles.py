"""Profiles for `bench-host run`: named bundles of every stage's settings (one registry)."""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

RECIPES_ALL = ("fp32", "dynamic", "fp16", "int8", "int16x8")
# The four the paper's authors built (their converter's none / dynamic / float / int).
RECIPES_PAPER = ("fp32", "dynamic", "fp16", "int8")

# What training reads from a profile; `per_model` may override any of them for one model.
TRAIN_KEYS = ("data", "img_size", "channels", "epochs", "batch", "lr", "seed", "weight_decay",
              "augment", "normalise", "schedule", "select", "min_epoch")


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
    seed: int = 0
    # training recipe (edgebench.host.train.TrainConfig has the meanings)
    weight_decay: float = 1e-4
    augment: bool = True
    normalise: bool = True
    schedule: str = "step"
    select: str = "accuracy"
    min_epoch: int = 1
    # model name -> {TRAIN_KEYS entry: value}: settings one model needs that the others do not
    per_model: dict = field(default_factory=dict)
    # export: calibration images for int8/int16x8, from which split, and int8's I/O type
    calib: int = 200
    calib_split: str = "train"
    io: str = "int8"
    # agent: a short measurement per row; int16x8 runs on reference kernels and is slow.
    warmup: int = 3
    min_runs: int = 20
    min_seconds: float = 0.5
    max_seconds: float = 5.0
    threads: str = ""  # "" = the agent's default
    # train/val/test image counts ("1000/200/200"), appended to the data spec as @1000/200/200
    # unless the spec has its own; "" = 70/15/15
    split: str = ""

    def stage_inputs(self) -> dict:
        return asdict(self)

    def agent_options(self):
        """The profile's measurement as the agent's options (what the user gives wins)."""
        from edgebench.device.options import AgentOptions

        return AgentOptions(warmup=self.warmup, min_runs=self.min_runs,
                            min_seconds=self.min_seconds, max_seconds=self.max_seconds,
                            threads=self.threads or None)

    def train_settings(self, model: str) -> dict:
        """Everything training needs for `model`: the profile's values, then its own overrides."""
        settings = {k: getattr(self, k) for k in TRAIN_KEYS}
        settings.update(self.per_model.get(model, {}))
        if self.split:
            from edgebench.host.data import split_of

            if split_of(settings["data"])[0] == settings["data"].strip():  # no split of its own
                settings["data"] = f"{settings['data']}@{self.split}"
        return settings

    def with_overrides(self, **changes) -> "Profile":
        """A copy with `changes` (e.g. from the command line) for every model: a setting given
        here also replaces that setting in each model's own overrides."""
        per_model = {m: {k: v for k, v in o.items() if k not in changes}
                     for m, o in self.per_model.items()}
        return dataclasses.replace(self, **changes, per_model={m: o for m, o in per_model.items() if o})


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        summary="default: synthetic phantom at 40 px; vgg16, googlenet, resnet18; recipes fp32, "
                "dynamic, fp16, int8 (int16x8: --recipes all); 4 epochs (vgg16 3); a short measurement "
                "(≤ 120 s on 2 cores)",
        data="phantom:480", img_size=40, models=("vgg16", "googlenet", "resnet18"), epochs=4,
        batch=32, lr=2e-3, per_model={"vgg16": {"epochs": 3}}, recipes=RECIPES_PAPER,
        calib=100, min_runs=20, min_seconds=0.3, max_seconds=3.0),
    "paper": Profile(
        name="paper",
        summary="the paper's setting, as its authors' code trains: 224 px grayscale in [0, 1] (no "
                "mean/std), vgg16, googlenet, resnet34, Adam lr 1e-4, batch 32, cosine annealing "
                "stepped per epoch (T_max = epochs), cross-entropy, best validation loss from "
                "epoch 2, no augmentation, seed 42; 50 epochs by default (the seed trains 500: "
                "--epochs 500); 1000/200/200 train/val/test images (in those proportions when the data "
                "set has another size); int8 with uint8 I/O calibrated on 199 validation images; hours on "
                "a CPU, minutes on a GPU; give --data busi:PATH for real images",
        data="phantom:1400", img_size=224, models=("vgg16", "googlenet", "resnet34"), epochs=50,
        batch=32, lr=1e-4, recipes=RECIPES_PAPER, seed=42, weight_decay=0.0, augment=False,
        normalise=False, schedule="epoch", select="loss", min_epoch=2, calib=199,
        calib_split="val", io="uint8", split="1000/200/200", min_runs=50, min_seconds=5.0,
        max_seconds=60.0),
}
