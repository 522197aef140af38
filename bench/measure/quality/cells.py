"""The three jobs the runner gives the quality measurement: one trained cell, the real floor, and the
check that gradient checkpointing leaves training unchanged (so the sweep trains only checkpoint=False)."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import save_image

from bench.measure.quality.data import DatasetSplits, load_dataset
from bench.measure.quality.features import accuracy, feature_name, load_or_train_classifier
from bench.measure.quality.inception import inception_rows, require_inception
from bench.measure.quality.packed import train_packed
from bench.measure.quality.scoring import score
from bench.measure.quality.train import generate, train, training_steps
from bench.plan.quality_presets import QualityConfig
from bench.schema import ALONG_TRAINING, SAMPLE, Measurement, measure_into
from variants import UNetSpec, build


def run_quality_cell(spec: UNetSpec, config: QualityConfig, seed: int, device: str | torch.device,
                     out_dir: Path, cache_dir: Path, tuning: bool = False) -> list[Measurement]:
    """Train ``spec`` with ``config`` and ``seed``, sample ``eval_n`` images at every checkpoint and score them
    (``scoring_reference``). Writes ``out_dir/samples/<spec.name>-seed<seed>.png`` from the last."""
    return run_quality_seeds(spec, config, (seed,), device, out_dir, cache_dir, tuning)


def run_quality_seeds(spec: UNetSpec, config: QualityConfig, seeds: tuple[int, ...], device: str | torch.device,
                      out_dir: Path, cache_dir: Path, tuning: bool = False) -> list[Measurement]:
    """``run_quality_cell`` for each of ``seeds``: one seed trained alone (train.py), several packed into one wide
    network (packed.py), with the same rows per seed, each sampled and scored on its own."""
    data, classifier = _prepare(spec, config, device, cache_dir)
    reference, where = scoring_reference(data, config, tuning)
    rows: list[Measurement] = []

    def score_checkpoint(step: int, models: Sequence[torch.nn.Module]) -> None:
        for seed, model in zip(seeds, models):
            rows.extend(_sample_and_score(model, config, seed, data, classifier, reference, where, device, step))

    if len(seeds) == 1:
        torch.manual_seed(seeds[0])
        model, curve = train(build(spec).to(device), data, config, seeds[0], device, score_checkpoint)
        models, curves = [model], [curve]
    else:
        models, curves = train_packed(spec, data, config, seeds, device, score_checkpoint)
    along_training, rows = rows, []
    for seed, model, curve in zip(seeds, models, curves):
        grid = Path(out_dir) / "samples" / f"{spec.name}{'-tuning' if tuning else ''}-seed{seed}.png"
        rows += curve + _sample_and_score(model, config, seed, data, classifier, reference, where, device,
                                          config.train_steps, grid)
    return rows + along_training


def scoring_reference(data: DatasetSplits, config: QualityConfig, tuning: bool) -> tuple[Tensor, str]:
    """The real images samples are scored against, and their description: the first ``eval_n`` held-out images
    for the final scores; for tuning, the ``eval_n`` after ``validation_start``, which neither the final scores
    nor the held-out loss use, so a recipe chosen on them is not chosen on the data it is scored on."""
    start = config.validation_start if tuning else 0
    images = data.heldout_x[start: start + config.eval_n]
    if len(images) < config.eval_n:
        raise ValueError(f"the held-out split has {len(data.heldout_x)} images; tuning needs "
                         f"{config.validation_start + config.eval_n} (validation_start + eval_n)")
    what = "validation" if tuning else "reference"
    return images, f"{what}: held-out images {start} to {start + config.eval_n - 1}"


def _prepare(spec: UNetSpec, config: QualityConfig, device: str | torch.device, cache_dir: Path
             ) -> tuple[DatasetSplits, torch.nn.Module]:
    _check_spec(spec, config)
    if config.inception_fid:
        require_inception()  # fail before minutes of training, not after
    data = _data(config, cache_dir)
    return data, load_or_train_classifier(data, config.classifier_seed, config.classifier_epochs, cache_dir, device)


def _sample_and_score(model: torch.nn.Module, config: QualityConfig, seed: int, data: DatasetSplits,
                      classifier: torch.nn.Module, reference: Tensor, where: str, device: str | torch.device,
                      step: int, grid: Path | None = None) -> list[Measurement]:
    """Sample ``eval_n`` images and score them against ``reference``: phase ``SAMPLE`` at the last step, else
    ALONG_TRAINING, every row at ``step``; the first images go to the PNG ``grid`` if given."""
    cuda = torch.device(device).type == "cuda"
    start = time.perf_counter()
    images = generate(model, config, config.eval_n, seed, device)
    if cuda:
        torch.cuda.synchronize()
    rows = [Measurement(SAMPLE, "sampling_time", time.perf_counter() - start, "s",
                        f"time.perf_counter, smalldiffusion samples(gam={config.gam:g}), "
                        f"{config.sampler_steps} steps", seed=seed, n=config.eval_n)]
    images = images.clamp(-1, 1)  # the data range: what an image file would store
    # Each of these fails on its own (a row says why), keeping the trained cell's other rows.
    measure_into(rows, SAMPLE, "scores", lambda: score(images, reference, data, classifier, config, seed))
    if config.inception_fid:
        measure_into(rows, SAMPLE, "inception_fd", lambda: inception_rows(
            images, reference, f"{data.name} held-out ({data.split}), {where}", seed, device))
    if grid is not None:
        measure_into(rows, SAMPLE, "sample_grid", lambda: save_grid(images, grid, config.grid_images))
    phase = SAMPLE if step == config.train_steps else ALONG_TRAINING
    return [dataclasses.replace(row, phase=phase if row.phase == SAMPLE else row.phase, step=step,
                                message=row.message or where) for row in rows]


def real_floor(config: QualityConfig, seed: int, out_dir: Path, cache_dir: Path,
               device: str | torch.device = "cpu") -> list[Measurement]:
    """The same scores for real against real: two disjoint random subsets of the held-out split, eval_n
    each, drawn with ``seed`` (the first plays the reference, the second the samples). Also records the
    feature classifier's held-out accuracy and writes ``out_dir/samples/real-seed<seed>.png``."""
    data = _data(config, cache_dir)
    classifier = load_or_train_classifier(data, config.classifier_seed, config.classifier_epochs, cache_dir, device)
    n = config.eval_n
    if 2 * n > len(data.heldout_x):
        raise ValueError(f"eval_n={n} is too large: the floor needs 2 * eval_n held-out images and {data.name} has "
                         f"{len(data.heldout_x)}")
    order = torch.randperm(len(data.heldout_x), generator=torch.Generator().manual_seed(seed))
    reference, images = data.heldout_x[order[:n]], data.heldout_x[order[n: 2 * n]]
    if config.inception_fid:
        require_inception()
    # Each of these fails on its own (a row says why), keeping the floor's other rows.
    rows: list[Measurement] = []
    measure_into(rows, SAMPLE, "scores", lambda: score(images, reference, data, classifier, config, seed))
    if config.inception_fid:
        measure_into(rows, SAMPLE, "inception_fd", lambda: inception_rows(
            images, reference, f"{data.name} held-out ({data.split}), disjoint halves", seed, device))
    measure_into(rows, "classifier", "accuracy", lambda: Measurement(
        "classifier", "accuracy", accuracy(classifier, data.heldout_x, data.heldout_y), "ratio",
        f"{feature_name(data)} trained on the train split (seed {config.classifier_seed}, "
        f"{config.classifier_epochs} epochs)", seed=config.classifier_seed, n=len(data.heldout_y),
        message="held-out accuracy of the feature classifier"))
    measure_into(rows, SAMPLE, "sample_grid", lambda: save_grid(
        images, Path(out_dir) / "samples" / f"real-seed{seed}.png", config.grid_images))
    return rows


def checkpoint_equivalence(spec: UNetSpec, config: QualityConfig, seed: int, device: str | torch.device = "cpu",
                           cache_dir: Path = Path(".cache")) -> list[Measurement]:
    """Train ``checkpoint_check_steps`` steps with checkpointing off and on from the same initial weights,
    batches and noise; record the largest absolute differences in loss and in final weights."""
    _check_spec(spec, config)
    data = _data(config, cache_dir)
    losses, weights = [], []
    for checkpoint in (False, True):
        torch.manual_seed(seed)
        model = build(spec.replace(checkpoint=checkpoint)).to(device)
        steps = training_steps(model, data, config, seed, device, config.checkpoint_check_steps)
        losses.append(torch.stack([loss for _, loss in steps]))
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    method = (f"torch.utils.checkpoint(use_reentrant=False) on vs off, same init, batches and noise, "
              f"AdamW lr={config.lr:g}, dropout={spec.dropout:g}")
    steps_n = config.checkpoint_check_steps
    return [
        Measurement("checkpoint_check", "max_abs_loss_diff", (losses[0] - losses[1]).abs().max().item(), "mse",
                    method, seed=seed, n=steps_n, message="over every training step's loss"),
        Measurement("checkpoint_check", "max_abs_weight_diff", (weights[0] - weights[1]).abs().max().item(),
                    "weight", method, seed=seed, n=steps_n, message="over every parameter after the last step"),
    ]


def save_grid(images: Tensor, path: Path, count: int, min_side: int = 32) -> None:
    """A PNG grid of the first ``count`` images, upscaled (nearest) so that tiny ones stay legible."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = (images[:count].clamp(-1, 1) + 1) / 2
    scale = max(1, -(-min_side // x.shape[-1]))
    save_image(F.interpolate(x, scale_factor=scale, mode="nearest"), path, nrow=8, padding=scale)


def _check_spec(spec: UNetSpec, config: QualityConfig) -> None:
    if (spec.in_ch, spec.in_dim, spec.in_dim) != (config.base.in_ch, config.base.in_dim, config.base.in_dim) \
            or spec.out_ch != config.base.out_ch:
        raise ValueError(f"spec has in_ch={spec.in_ch}, in_dim={spec.in_dim}, out_ch={spec.out_ch}; valid for "
                         f"dataset={config.dataset!r}: those of config.base ({config.base.in_ch}, "
                         f"{config.base.in_dim}, {config.base.out_ch})")


def _data(config: QualityConfig, cache_dir: Path) -> DatasetSplits:
    data_dir = config.data_dir if config.data_dir is not None else Path(cache_dir) / "data"
    return load_dataset(config.dataset, data_dir, config.download, config.split_seed)
