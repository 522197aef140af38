"""The two workloads every cost measurement times or inspects, built the same way everywhere.

train_step: smalldiffusion's denoising loss (``model.get_loss``), backward, AdamW step, in train mode. AdamW is
            torch's fused kernel (one kernel over every parameter instead of its default per-parameter loop),
            as a tuned training job would run it.
inference:  one forward under ``no_grad`` in eval mode (one sampler step's network evaluation).
Inputs are made once, up front, so timing never includes the random-number generator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from bench.schema import TIMED_PHASES, TRAIN_STEP
from variants import UNet, UNetSpec, build


@dataclass
class Workload:
    model: UNet
    x0: Tensor
    sigma: Tensor  # (B, 1, 1, 1): one noise level per sample, as smalldiffusion's training draws them
    eps: Tensor
    optimizer: torch.optim.Optimizer

    @property
    def batch_size(self) -> int:
        return self.x0.shape[0]

    def train_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.model.get_loss(self.x0, self.sigma, self.eps).backward()
        self.optimizer.step()

    @torch.no_grad()
    def inference(self) -> None:
        self.model(self.x0 + self.sigma * self.eps, self.sigma)

    def phase(self, name: str) -> Callable[[], None]:
        """The callable for a phase, with the model put in that phase's mode."""
        if name not in TIMED_PHASES:
            raise ValueError(f"phase={name!r} is invalid; valid: {', '.join(TIMED_PHASES)}")
        self.model.train(name == TRAIN_STEP)
        return getattr(self, name)


def make_workload(spec: UNetSpec, batch_size: int, device: str | torch.device = "cpu", seed: int = 0,
                  build_model: Callable[[UNetSpec], nn.Module] = build) -> Workload:
    """``build_model`` makes the network from the spec (our builder, or a peer's closest match), after seeding."""
    torch.manual_seed(seed)
    model = build_model(spec).to(device)
    x0 = torch.randn(batch_size, *model.input_dims, device=device)
    sigma = torch.logspace(-2, 1, batch_size, device=device).view(-1, 1, 1, 1)
    eps = torch.randn_like(x0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    return Workload(model, x0, sigma, eps, optimizer)
