"""Train a denoiser and sample from it with smalldiffusion's schedule, loss and sampler.

Every cell uses the same recipe (config) and differs only in the model and the seed; the seed fixes
the initial weights, the batch order, the training noise and the sampler's starting noise.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Iterator, Sequence

import torch
from smalldiffusion import ScheduleLogLinear, generate_train_sample, samples
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from bench.measure.quality.data import DatasetSplits
from bench.plan.quality_presets import QualityConfig
from bench.schema import HELDOUT_LOSS, TRAIN, WALL_TIME, Measurement

# Called at every checkpoint before the last with the step and the models to sample from (one per seed).
AtCheckpoint = Callable[[int, Sequence[nn.Module]], None]


def make_schedule(config: QualityConfig) -> ScheduleLogLinear:
    return ScheduleLogLinear(N=config.schedule_n, sigma_min=config.sigma_min, sigma_max=config.sigma_max)


class HeldoutLoss:
    """smalldiffusion's denoising MSE on held-out images at every sigma of a fixed log-spaced grid, with
    noise drawn once from ``eval_seed``: every model is judged on exactly the same noisy inputs."""

    def __init__(self, images: Tensor, config: QualityConfig, device: str | torch.device) -> None:
        self.x0 = images[: config.loss_eval_n].to(device)
        self.sigmas = torch.logspace(math.log10(config.sigma_min), math.log10(config.sigma_max), config.sigma_grid)
        generator = torch.Generator().manual_seed(config.eval_seed)
        self.eps = torch.randn((config.sigma_grid, *self.x0.shape), generator=generator).to(device)
        self.batch = config.sample_batch
        self.method = (f"smalldiffusion get_loss (eps MSE) on {len(self.x0)} held-out images x {config.sigma_grid} "
                       f"log-spaced sigmas in [{config.sigma_min:g}, {config.sigma_max:g}], noise seed "
                       f"{config.eval_seed}")

    @property
    def n(self) -> int:
        return len(self.x0) * len(self.sigmas)

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> float:
        was_training = model.training
        model.eval()
        total = 0.0
        for sigma, eps in zip(self.sigmas.tolist(), self.eps):
            for x0, e in zip(self.x0.split(self.batch), eps.split(self.batch)):
                total += model.get_loss(x0, torch.tensor(sigma, device=x0.device), e).item() * len(x0)
        model.train(was_training)
        return total / self.n


def training_steps(model: nn.Module, data: DatasetSplits, config: QualityConfig, seed: int,
                   device: str | torch.device, steps: int) -> Iterator[tuple[int, Tensor]]:
    """AdamW (constant or cosine learning rate) on smalldiffusion's loss; yields (step, loss) after each
    optimiser step, counting from 1.

    Batches are drawn with replacement by a generator seeded with ``seed``; sigma and the noise come from
    ``generate_train_sample`` (the global RNG, seeded here too).
    """
    torch.manual_seed(seed)
    batches = torch.Generator().manual_seed(seed)
    schedule = make_schedule(config)
    train_x = data.train_x.to(device)
    optimizer, scheduler = optimizer_and_schedule(model.parameters(), config, steps)
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(len(train_x), (config.batch_size,), generator=batches).to(device)
        x0, sigma, eps, _ = generate_train_sample(train_x[idx], schedule)
        optimizer.zero_grad(set_to_none=True)
        loss = model.get_loss(x0, sigma, eps)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        yield step, loss.detach()


def optimizer_and_schedule(params: Iterator[nn.Parameter], config: QualityConfig, steps: int
                           ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """AdamW at the recipe's lr and weight decay, and its learning-rate schedule (None: constant). Every model
    of a packed cell has the same rate at every step, so one optimizer and schedule serve them all."""
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay,
                                  fused=True)  # one kernel for every parameter, as in the timed train_step
    if config.lr_schedule == "cosine":  # decays to 0 at the last step, which settles short runs (T_max = steps)
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    if config.lr_schedule == "inv_sqrt":
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda done: inv_sqrt_factor(done + 1, config))
    return optimizer, None


def inv_sqrt_factor(step: int, config: QualityConfig) -> float:
    """EDM2's learning-rate factor at ``step`` (counting from 1): a linear warm-up over lr_rampup_steps, then
    1 / sqrt(max(step / lr_ref_steps, 1)) (Karras et al. 2024, eq. 16)."""
    factor = 1 / math.sqrt(max(step / config.lr_ref_steps, 1))
    if config.lr_rampup_steps > 0:
        factor *= min(step / config.lr_rampup_steps, 1)
    return factor


def curve_rows(heldout: HeldoutLoss, model: nn.Module, config: QualityConfig, seed: int, step: int,
               seconds: float, timing: str) -> list[Measurement]:
    """One point of a learning curve: ``model``'s held-out loss and the training time so far, ``seconds``."""
    weights = f"EMA({config.ema_decay:g}) weights" if config.ema_decay > 0 else "raw weights"
    return [Measurement(TRAIN, HELDOUT_LOSS, heldout(model), "mse", f"{heldout.method}; {weights}", seed=seed,
                        step=step, n=heldout.n),
            Measurement(TRAIN, WALL_TIME, seconds, "s", timing, seed=seed, step=step, n=step * config.batch_size,
                        message="n: training images seen")]


def scored_midway(step: int, config: QualityConfig) -> bool:
    """A checkpoint where ``at_checkpoint`` scores samples: neither step 0 (the untrained network) nor the last
    step, which the quality cell scores itself."""
    return 0 < step < config.train_steps


def train_loop(steps: Iterator[tuple[int, Tensor]], model: nn.Module, config: QualityConfig,
               device: str | torch.device, log: Callable[[int, float, nn.Module], None]) -> nn.Module:
    """The loop every quality cell trains in, one seed (``training_steps``) or K packed (``packed_steps``):
    ``steps`` optimises ``model``; after each step the EMA (when enabled) follows it, and at step 0 and at every
    checkpoint ``log`` gets the step, the training time so far (evaluations excluded) and the weights to score.
    Returns those weights. torch's EMA acts on every tensor elementwise, so on K packed models as on each alone."""
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True) \
        if config.ema_decay > 0 else None
    scored = ema.module if ema is not None else model
    cuda = torch.device(device).type == "cuda"
    elapsed = 0.0
    log(0, elapsed, scored)
    start = time.perf_counter()
    for step, _ in steps:
        if ema is not None:
            ema.update_parameters(model)
        if step % config.eval_every == 0 or step == config.train_steps:
            if cuda:
                torch.cuda.synchronize()
            elapsed += time.perf_counter() - start
            log(step, elapsed, scored)
            start = time.perf_counter()
    return scored


def train(model: nn.Module, data: DatasetSplits, config: QualityConfig, seed: int,
          device: str | torch.device, at_checkpoint: AtCheckpoint | None = None
          ) -> tuple[nn.Module, list[Measurement]]:
    """Train for ``config.train_steps``; return the weights to sample from (the EMA when enabled) and the
    learning curve: held-out loss and cumulative training wall time at step 0 and every checkpoint
    (``config.checkpoints``), where ``at_checkpoint`` is also called, but for the last."""
    heldout = HeldoutLoss(data.heldout_x, config, device)
    rows: list[Measurement] = []

    def log(step: int, elapsed: float, scored: nn.Module) -> None:
        rows.extend(curve_rows(heldout, scored, config, seed, step, elapsed, "time.perf_counter, training only"))
        if at_checkpoint is not None and scored_midway(step, config):
            at_checkpoint(step, [scored])

    scored = train_loop(training_steps(model, data, config, seed, device, config.train_steps), model, config,
                        device, log)
    return scored, rows


@torch.no_grad()
def generate(model: nn.Module, config: QualityConfig, n: int, seed: int, device: str | torch.device) -> Tensor:
    """``n`` samples with smalldiffusion's ``samples(model, sigmas, gam)``, on CPU, unclamped.

    The starting noise comes from a generator seeded with ``seed``, so it does not depend on the device.
    """
    sigmas = make_schedule(config).sample_sigmas(config.sampler_steps).to(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # any noise the sampler adds itself (none for mu=0) comes from the global RNG
    out = []
    for size in _chunks(n, config.sample_batch):
        xt = torch.randn((size, *model.input_dims), generator=generator).to(device) * sigmas[0]
        # samples() builds an accelerate.Accelerator; with xt given, that Accelerator's device is never used.
        *_, x0 = samples(model, sigmas, gam=config.gam, xt=xt)
        out.append(x0.cpu())
    return torch.cat(out)


def _chunks(n: int, size: int) -> list[int]:
    return [min(size, n - start) for start in range(0, n, size)]
