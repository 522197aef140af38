"""What a quality cell does, fixed for every variant: data, schedule, optimiser, steps, sampler, seeds.

Two cells of one sweep differ only in the UNetSpec's axis values; everything here is shared, so a
difference in score is the block choice's (plus seed noise, which the seeds are there to measure).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from variants import BASES, UNetSpec
from variants.checks import check_int


@dataclass(frozen=True)
class DatasetInfo:
    shape: tuple[int, int, int]
    num_classes: int
    heldout_n: int | None  # size of the held-out split when it is fixed here (embedded data)
    downloaded: bool


# The data sets a quality preset can train and score on (loaded by bench/measure/quality/data.py).
DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo((1, 8, 8), 10, heldout_n=500, downloaded=False),
    "mnist5k": DatasetInfo((1, 28, 28), 10, heldout_n=2000, downloaded=False),
    "fashion_mnist": DatasetInfo((1, 28, 28), 10, heldout_n=10_000, downloaded=True),
    "cifar10": DatasetInfo((3, 32, 32), 10, heldout_n=10_000, downloaded=True),
}
LR_SCHEDULES = ("constant", "cosine", "inv_sqrt")


@dataclass(frozen=True)
class QualityConfig:
    dataset: str = "digits"
    base: UNetSpec = BASES["digits8_ch16"]  # the runner applies each variant's axis values to this spec
    # training: AdamW, smalldiffusion's ScheduleLogLinear and denoising loss. lr, lr_schedule, weight_decay and
    # ema_decay are recipe axes (bench/plan/recipe.py): a sweep may vary or tune them per variant.
    train_steps: int = 1500
    batch_size: int = 64
    lr: float = 4e-3
    lr_schedule: str = "constant"    # "cosine": decays to 0 over train_steps; "inv_sqrt": EDM2's decay, below
    weight_decay: float = 0.01       # AdamW's decoupled weight decay (torch's default); EDM2 trains with none
    ema_decay: float = 0.99          # weights averaged with torch.optim.swa_utils; 0 samples the raw weights
    # EDM2's inverse-square-root decay, lr / sqrt(max(step / lr_ref_steps, 1)) after a linear warm-up over
    # lr_rampup_steps, at the same fractions of a short run as EDM2-S's of its long one (about 1/15 and 1/200)
    lr_ref_steps: int = 100
    lr_rampup_steps: int = 7
    schedule_n: int = 1000
    sigma_min: float = 0.01
    sigma_max: float = 10.0
    # checkpoints: every eval_every steps and the last, the held-out denoising loss on a fixed grid of noise
    # levels, and samples scored as at the end (effects along training)
    eval_every: int = 500
    loss_eval_n: int = 250           # held-out images in the loss (each at every sigma of the grid)
    sigma_grid: int = 8              # log-spaced sigmas from sigma_min to sigma_max
    # sampling: smalldiffusion's samples(model, sigmas, gam); gam=2 is its accelerated sampler
    sampler_steps: int = 20
    gam: float = 2.0
    sample_batch: int = 1000         # images per sampler call (memory bound on GPU)
    # scoring, always at equal N for samples and reference
    eval_n: int = 250
    pr_k: int = 3                    # k of the k-NN radii (Kynkaanniemi et al. 2019 use 3)
    kid_subsets: int = 50
    kid_subset_size: int = 100
    swd_projections: int = 256
    copy_quantile: float = 0.01      # copy threshold: this quantile of real held-out-to-train NN distances
    grid_images: int = 64            # images in each PNG grid
    # seeds that must be the same for every cell (the per-cell seed is an argument)
    split_seed: int = 0              # train / held-out split of the embedded datasets
    eval_seed: int = 0               # held-out loss noise, KID subsets, SWD projections
    classifier_seed: int = 0         # the feature classifier every cell is scored with
    classifier_epochs: int = 15
    # equivalence of checkpoint on/off
    checkpoint_check_steps: int = 5
    # data: torchvision datasets only (the embedded ones ship inside packages)
    data_dir: str | None = None      # default: <cache_dir>/data
    download: bool = False
    inception_fid: bool = False      # also score with Inception-v3 FID (needs torch-fidelity + weights)

    def __post_init__(self) -> None:
        if isinstance(self.base, dict):  # from JSON
            object.__setattr__(self, "base", UNetSpec.from_dict(self.base))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field, the bad value and what is valid."""
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset={self.dataset!r} is invalid; valid: {', '.join(DATASETS)}")
        info = DATASETS[self.dataset]
        if not isinstance(self.base, UNetSpec):
            raise ValueError(f"base={self.base!r} is invalid; valid: a variants.UNetSpec")
        shape = (self.base.in_ch, self.base.in_dim, self.base.in_dim)
        if shape != info.shape or self.base.out_ch != info.shape[0]:
            raise ValueError(f"base has in_ch, in_dim, in_dim = {shape} and out_ch={self.base.out_ch}; "
                             f"valid for dataset={self.dataset!r}: {info.shape} and out_ch={info.shape[0]}")
        for name in ("train_steps", "batch_size", "schedule_n", "eval_every", "loss_eval_n", "sigma_grid",
                     "sampler_steps", "sample_batch", "eval_n", "pr_k", "kid_subsets", "kid_subset_size",
                     "swd_projections", "grid_images", "classifier_epochs", "checkpoint_check_steps", "lr_ref_steps"):
            check_int(name, getattr(self, name))
        for name in ("split_seed", "eval_seed", "classifier_seed", "lr_rampup_steps"):
            check_int(name, getattr(self, name), minimum=0)
        if not _is_real(self.lr) or self.lr <= 0:
            raise ValueError(f"lr={self.lr!r} is invalid; valid: a positive float")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule={self.lr_schedule!r} is invalid; valid: {', '.join(LR_SCHEDULES)}")
        if not _is_real(self.weight_decay) or self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay!r} is invalid; valid: a float >= 0 (0 disables it)")
        if not _is_real(self.ema_decay) or not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay={self.ema_decay!r} is invalid; valid: a float in [0, 1) (0 disables EMA)")
        if not (_is_real(self.sigma_min) and _is_real(self.sigma_max) and 0 < self.sigma_min < self.sigma_max):
            raise ValueError(f"sigma_min={self.sigma_min!r}, sigma_max={self.sigma_max!r} are invalid; "
                             "valid: 0 < sigma_min < sigma_max")
        if not _is_real(self.gam) or self.gam < 1:
            raise ValueError(f"gam={self.gam!r} is invalid; valid: a float >= 1 (smalldiffusion's advice)")
        if not _is_real(self.copy_quantile) or not 0 < self.copy_quantile < 0.5:
            raise ValueError(f"copy_quantile={self.copy_quantile!r} is invalid; valid: a float in (0, 0.5)")
        # The real floor compares two disjoint held-out subsets of eval_n images each.
        if info.heldout_n is not None and 2 * self.eval_n > info.heldout_n:
            raise ValueError(f"eval_n={self.eval_n} is too large for dataset={self.dataset!r}: the real floor needs "
                             f"2 * eval_n held-out images; valid: eval_n <= {info.heldout_n // 2}")
        if info.heldout_n is not None and self.validation_start + self.eval_n > info.heldout_n:
            raise ValueError(f"eval_n={self.eval_n} and loss_eval_n={self.loss_eval_n} are too large for "
                             f"dataset={self.dataset!r}: tuning scores on eval_n held-out images after the first "
                             f"max(eval_n, loss_eval_n), which the final scores use; valid: max(eval_n, loss_eval_n) "
                             f"+ eval_n <= {info.heldout_n}")
        if info.heldout_n is not None and self.loss_eval_n > info.heldout_n:
            raise ValueError(f"loss_eval_n={self.loss_eval_n} is invalid for dataset={self.dataset!r}; "
                             f"valid: at most {info.heldout_n} (the held-out split)")
        if self.kid_subset_size > self.eval_n:
            raise ValueError(f"kid_subset_size={self.kid_subset_size} is invalid; valid: at most eval_n={self.eval_n}")
        if self.pr_k >= self.eval_n:
            raise ValueError(f"pr_k={self.pr_k} is invalid; valid: smaller than eval_n={self.eval_n}")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise ValueError(f"data_dir={self.data_dir!r} is invalid; valid: None or a path string")
        if self.inception_fid and self.dataset not in INCEPTION_DATASETS:
            raise ValueError(f"inception_fid=True is invalid for dataset={self.dataset!r}; "
                             f"valid datasets: {', '.join(INCEPTION_DATASETS)} (Inception features mean little "
                             "on tiny grey digits)")

    @property
    def validation_start(self) -> int:
        """The first held-out image a tuning cell scores on: every image before it belongs to the final scores
        (the FD reference, the first eval_n) or the held-out loss (the first loss_eval_n)."""
        return max(self.eval_n, self.loss_eval_n)

    @property
    def checkpoints(self) -> tuple[int, ...]:
        """The training steps a quality cell samples and scores at: every eval_every steps, and the last."""
        return (*range(self.eval_every, self.train_steps, self.eval_every), self.train_steps)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> QualityConfig:
        return dataclasses.replace(self, **changes)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


INCEPTION_DATASETS = ("fashion_mnist", "cifar10")

QUALITY_PRESETS: dict[str, QualityConfig] = {
    # seconds: tests and CI; numbers mean nothing beyond "the pipeline runs"
    "smoke": QualityConfig(
        base=BASES["digits8_ch8"], train_steps=20, batch_size=32, eval_every=7,
        loss_eval_n=64, sigma_grid=4, sampler_steps=4, eval_n=64, kid_subsets=10, kid_subset_size=32,
        swd_projections=32, grid_images=16, classifier_epochs=2, checkpoint_check_steps=2,
    ),
    # `make bench` on a 2-core CPU (its variants, seeds and cells at a time: bench/plan/presets/quick.toml; how
    # long it took: docs/cli.md, under `bench run`)
    "quick": QualityConfig(),
    # the quick recipe on a network 4x as large (digits8_ch32): does a switch's direction hold at a second scale?
    "quick_ch32": QualityConfig(base=BASES["digits8_ch32"]),
    # GPU scale: 28x28 MNIST shapes, FD at N=1000 (the real-versus-real floor on MNIST-5k by N: docs/columns.md;
    # FD is biased in N, so only equal N compare)
    "full": QualityConfig(
        dataset="mnist5k", base=BASES["fmnist28"], train_steps=20_000, batch_size=128, lr=1e-3, ema_decay=0.999,
        eval_every=1000, loss_eval_n=1000, sampler_steps=50, eval_n=1000, kid_subset_size=500,
        classifier_epochs=20,
    ),
}

# Real Inception FID for users with internet: torchvision downloads the data into <cache-dir>/data and
# torch-fidelity's Inception-v3 weights go to torch.hub's cache (bench/measure/quality/inception.py).
QUALITY_PRESETS["fashion_mnist_fid"] = QUALITY_PRESETS["full"].replace(
    dataset="fashion_mnist", download=True, inception_fid=True)
QUALITY_PRESETS["cifar10_fid"] = QUALITY_PRESETS["full"].replace(
    dataset="cifar10", download=True, inception_fid=True, train_steps=100_000, sampler_steps=100, eval_n=5000,
    base=BASES["cifar32"])

# One H100 or H200 in minutes (the gpu sweep; its estimate: docs/gpu.md): the FashionMNIST-shape U-Net
# that sweep counts and times, on MNIST-5k, 1,000 steps at batch 128 with a cosine learning rate and an EMA short
# enough for that run, FD at N=1000 as in "full"
QUALITY_PRESETS["gpu"] = QualityConfig(
    dataset="mnist5k", base=BASES["fmnist28"], train_steps=1000, batch_size=128, lr=1e-3, lr_schedule="cosine",
    ema_decay=0.99, eval_every=250, loss_eval_n=1000, sampler_steps=50, eval_n=1000, kid_subset_size=500,
)
