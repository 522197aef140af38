"""K seeds of one variant trained at once, in one process, as one wide network.

The K models run as one network in which sample b of model k sits at batch row b*K + k, so a (B*K, C, H, W)
activation is a free view of (B, K*C, H, W): every Conv2d / ConvTranspose2d runs as one grouped convolution
(K groups per group), every GroupNorm as one GroupNorm of K times its groups, every Linear as one batched matmul,
while every composite block's own forward (ResnetBlock, attention, FiLM, the skip concatenations) runs unchanged.
A submodule whose buffers differ between the seeds (the ``fourier`` noise embedding's random frequencies), or a
parametric module without a packed form (a plugin's), runs under ``torch.func.vmap`` over its K stacked states.
The fused AdamW and torch's EMA (``_foreach_lerp_``) are elementwise, so they act on each model as on its own.

Faithful to training the seeds one by one (bench/measure/quality/train.py): the same initial weights
(``torch.manual_seed(seed); build(spec)``), batches, noise levels and noise, drawn from per-seed generators that
reproduce the serial path's streams draw for draw; the same recipe. Not bitwise: a grouped convolution's backward
sums in another order than K separate ones, so gradients agree to ~1e-6 relative and trajectories then drift
apart as under any change of summation order (tests/measure/test_packed_seeds.py states and checks the tolerance).
Dropout would draw one mask for all K models from the global generator, so a network with dropout is refused.
"""
from __future__ import annotations

import copy
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from bench.measure.quality.data import DatasetSplits
from bench.measure.quality.train import (AtCheckpoint, HeldoutLoss, curve_rows, make_schedule,
                                         optimizer_and_schedule, scored_midway, train_loop)
from bench.plan.quality_presets import QualityConfig
from bench.schema import Measurement
from variants import UNetSpec, build

# --- the packed leaves ------------------------------------------------------------------------------------------

class PackedConv(nn.Module):
    """K Conv2d or ConvTranspose2d of one shape as one grouped convolution on the interleaved batch."""

    def __init__(self, convs: list[nn.Module]) -> None:
        super().__init__()
        first = convs[0]
        self.k = len(convs)
        self.transpose = isinstance(first, nn.ConvTranspose2d)
        self.stride, self.padding, self.dilation = first.stride, first.padding, first.dilation
        self.groups = first.groups
        self.output_padding = getattr(first, "output_padding", 0)
        self.weight = nn.Parameter(torch.cat([c.weight.detach() for c in convs]))
        self.bias = nn.Parameter(torch.cat([c.bias.detach() for c in convs])) if first.bias is not None else None

    def forward(self, x: Tensor) -> Tensor:
        rows, channels = x.shape[:2]
        wide = x.reshape(rows // self.k, self.k * channels, *x.shape[2:])
        if self.transpose:
            y = F.conv_transpose2d(wide, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                   self.k * self.groups, self.dilation)
        else:
            y = F.conv2d(wide, self.weight, self.bias, self.stride, self.padding, self.dilation, self.k * self.groups)
        return y.reshape(rows, -1, *y.shape[2:])

    def unpack(self, i: int) -> dict[str, Tensor]:
        state = {"weight": self.weight.detach().chunk(self.k)[i]}
        if self.bias is not None:
            state["bias"] = self.bias.detach().chunk(self.k)[i]
        return state


class PackedGroupNorm(nn.Module):
    """K GroupNorms as one: group statistics are per sample already, the affine per model."""

    def __init__(self, norms: list[nn.GroupNorm]) -> None:
        super().__init__()
        self.k, self.groups, self.eps = len(norms), norms[0].num_groups, norms[0].eps
        self.weight = nn.Parameter(torch.cat([n.weight.detach() for n in norms]))
        self.bias = nn.Parameter(torch.cat([n.bias.detach() for n in norms]))

    def forward(self, x: Tensor) -> Tensor:
        rows, channels = x.shape[:2]
        wide = x.reshape(rows // self.k, self.k * channels, *x.shape[2:])
        return F.group_norm(wide, self.k * self.groups, self.weight, self.bias, self.eps).reshape(x.shape)

    def unpack(self, i: int) -> dict[str, Tensor]:
        return {"weight": self.weight.detach().chunk(self.k)[i], "bias": self.bias.detach().chunk(self.k)[i]}


class PackedLinear(nn.Module):
    """K Linears as one batched matmul over the (K, rows of that model, in) view."""

    def __init__(self, linears: list[nn.Linear]) -> None:
        super().__init__()
        self.k = len(linears)
        self.weight = nn.Parameter(torch.stack([m.weight.detach().t() for m in linears]))  # (K, in, out)
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in linears])) if linears[0].bias is not None \
            else None

    def forward(self, x: Tensor) -> Tensor:
        rows = x.shape[0]
        per_model = x.reshape(rows // self.k, self.k, -1, x.shape[-1]).transpose(0, 1).reshape(self.k, -1, x.shape[-1])
        out = torch.baddbmm(self.bias[:, None], per_model, self.weight) if self.bias is not None \
            else per_model @ self.weight
        out = out.reshape(self.k, rows // self.k, -1, out.shape[-1]).transpose(0, 1)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def unpack(self, i: int) -> dict[str, Tensor]:
        state = {"weight": self.weight.detach()[i].t()}
        if self.bias is not None:
            state["bias"] = self.bias.detach()[i]
        return state


class VmapModule(nn.Module):
    """K copies of a module with different states, run by ``torch.func.vmap`` over their stacked states; every
    tensor argument and the output are interleaved (B*K, ...) batches."""

    def __init__(self, modules: list[nn.Module]) -> None:
        super().__init__()
        self.k = len(modules)
        params, buffers = stack_module_state(modules)
        self.param_names, self.buffer_names = list(params), list(buffers)
        for i, p in enumerate(params.values()):
            self.register_parameter(f"p{i}", nn.Parameter(p.detach()))
        for i, b in enumerate(buffers.values()):
            self.register_buffer(f"b{i}", b)
        self.template = [copy.deepcopy(modules[0]).to("meta")]  # in a list: not a submodule of its own
        self.persistent = set(modules[0].state_dict())

    def forward(self, *args: Tensor | nn.Module) -> Tensor:
        """Tensor arguments are split per model; a module argument (a time injection's ``norm``) is called inside
        each model's computation, so it must hold no parameters of its own (an Identity, a pixel norm)."""
        params = {n: getattr(self, f"p{i}") for i, n in enumerate(self.param_names)}
        buffers = {n: getattr(self, f"b{i}") for i, n in enumerate(self.buffer_names)}
        tensors = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        for a in args:
            if isinstance(a, nn.Module) and any(True for _ in a.parameters()):
                raise ValueError(f"{type(self.template[0]).__name__} is called with {type(a).__name__}, which holds "
                                 "parameters: packed seeds cannot share it; valid: train these seeds one by one "
                                 "(--seeds-at-once 1)")
        split = [args[i].reshape(args[i].shape[0] // self.k, self.k, *args[i].shape[1:]) for i in tensors]

        def one(p: dict, b: dict, *inputs: Tensor) -> Tensor:
            call = list(args)
            for i, tensor in zip(tensors, inputs):
                call[i] = tensor
            return functional_call(self.template[0], (p, b), tuple(call))

        out = vmap(one, in_dims=(0, 0) + (1,) * len(split), out_dims=1, randomness="different")(params, buffers,
                                                                                              *split)
        return out.reshape(-1, *out.shape[2:])

    def unpack(self, i: int) -> dict[str, Tensor]:
        state = {n: getattr(self, f"p{j}").detach()[i] for j, n in enumerate(self.param_names)}
        state |= {n: getattr(self, f"b{j}")[i] for j, n in enumerate(self.buffer_names)}
        return {n: t for n, t in state.items() if n in self.persistent}


PACKED = {nn.Conv2d: PackedConv, nn.ConvTranspose2d: PackedConv, nn.GroupNorm: PackedGroupNorm,
          nn.Linear: PackedLinear}
PACKED_TYPES = (*set(PACKED.values()), VmapModule)


def pack(models: list[nn.Module]) -> nn.Module:
    """One network that runs ``models`` (same architecture) on interleaved batches."""
    wide = copy.deepcopy(models[0])
    named = [dict(m.named_modules()) for m in models]
    packed: list[str] = []
    for name, module in named[0].items():
        if not name or any(name.startswith(p + ".") for p in packed):
            continue
        group = [n[name] for n in named]
        own_params = any(True for _ in module.parameters(recurse=False))
        if _buffers_differ(group) or (type(module) not in PACKED and own_params):
            replacement: nn.Module = VmapModule(group)
        elif type(module) in PACKED:
            replacement = PACKED[type(module)](group)
        else:
            continue
        parent, _, leaf = name.rpartition(".")
        setattr(wide.get_submodule(parent) if parent else wide, leaf, replacement)
        packed.append(name)
    if _buffers_differ(models):
        raise ValueError("the top module's own buffers differ between the seeds; it cannot be packed")
    return wide


def _buffers_differ(modules: list[nn.Module]) -> bool:
    own = [dict(m.named_buffers(recurse=False)) for m in modules]
    return any(not torch.equal(own[0][n], other[n]) for other in own[1:] for n in own[0])


def unpack(wide: nn.Module, k: int) -> list[dict[str, Tensor]]:
    """Each model's state dict (parameters and persistent buffers) from a wide network."""
    states: list[dict[str, Tensor]] = [{} for _ in range(k)]
    packed = [name for name, m in wide.named_modules() if isinstance(m, PACKED_TYPES)]
    for name in packed:
        module = wide.get_submodule(name)
        for i in range(k):
            states[i] |= {f"{name}.{key}": t.clone() for key, t in module.unpack(i).items()}
    persistent = set(wide.state_dict())
    for name, buffer in wide.named_buffers():  # shared by all K (outside the packed modules)
        if name in persistent and not any(name.startswith(p + ".") for p in packed):
            for state in states:
                state[name] = buffer.clone()
    return states


# --- randomness: the serial path's draws, per seed ------------------------------------------------------------

class SeedStreams:
    """The draws ``training_steps`` makes for one seed, from generators of its own: batch indices from a generator
    seeded with ``seed`` (as there), sigma and noise from a second one seeded with ``seed``, which yields what the
    global generator yields there after ``torch.manual_seed(seed)`` (smalldiffusion's generate_train_sample:
    randint over the schedule, then randn)."""

    def __init__(self, seed: int, config: QualityConfig, train_x: Tensor) -> None:
        self.batches = torch.Generator().manual_seed(seed)
        self.noise = torch.Generator().manual_seed(seed)
        self.sigmas = make_schedule(config).sigmas
        self.train_x, self.batch_size = train_x, config.batch_size

    def draw(self) -> tuple[Tensor, Tensor, Tensor]:
        idx = torch.randint(len(self.train_x), (self.batch_size,), generator=self.batches)
        x0 = self.train_x[idx]
        sigma = self.sigmas[torch.randint(len(self.sigmas), (len(x0),), generator=self.noise)].to(x0)
        eps = torch.randn(x0.shape, generator=self.noise, dtype=x0.dtype)
        return x0, sigma.reshape(-1, *([1] * (x0.dim() - 1))), eps


def interleave(x: Tensor) -> Tensor:
    """(K, B, ...) -> (B*K, ...), model k at rows k, K+k, ..."""
    return x.transpose(0, 1).reshape(-1, *x.shape[2:])


def deinterleave(x: Tensor, k: int) -> Tensor:
    """(B*K, ...) -> (K, B, ...)."""
    return x.reshape(x.shape[0] // k, k, *x.shape[1:]).transpose(0, 1)


# --- training ----------------------------------------------------------------------------------------------------

def initial_models(spec: UNetSpec, seeds: list[int] | tuple[int, ...]) -> list[nn.Module]:
    """What a one-seed cell builds: ``torch.manual_seed(seed); build(spec)``, per seed."""
    if spec.dropout > 0:
        raise ValueError(f"dropout={spec.dropout:g}: seeds trained together would share dropout masks; valid: "
                         "dropout 0, or one seed per cell")
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(build(spec))
    return models


def packed_steps(wide: nn.Module, data: DatasetSplits, config: QualityConfig, seeds: list[int] | tuple[int, ...],
                 device: str | torch.device, steps: int) -> Iterator[tuple[int, Tensor]]:
    """``training_steps`` for the K models of ``wide`` at once; yields (step, the K losses)."""
    k = len(seeds)
    streams = [SeedStreams(seed, config, data.train_x) for seed in seeds]
    optimizer, scheduler = optimizer_and_schedule(wide.parameters(), config, steps)
    wide.train()
    for step in range(1, steps + 1):
        draws = [s.draw() for s in streams]
        x0, sigma, eps = (torch.stack([d[j] for d in draws]).to(device) for j in range(3))
        optimizer.zero_grad(set_to_none=True)
        pred = deinterleave(wide(interleave(x0 + sigma * eps), interleave(sigma).reshape(-1)), k)
        losses = torch.stack([F.mse_loss(pred[i], eps[i]) for i in range(k)])  # smalldiffusion's get_loss, per model
        losses.sum().backward()  # the models share no parameter: each gets its own loss's gradient
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        yield step, losses.detach()


def train_packed(spec: UNetSpec, data: DatasetSplits, config: QualityConfig, seeds: list[int] | tuple[int, ...],
                 device: str | torch.device, at_checkpoint: AtCheckpoint | None = None
                 ) -> tuple[list[nn.Module], list[list[Measurement]]]:
    """``train`` for every seed at once, in the same loop: per seed, the model to sample from (the EMA when
    enabled) and its learning-curve rows; ``at_checkpoint`` gets the seeds' unpacked models, in the order of
    ``seeds``. Each seed's held-out loss is taken on its own unpacked weights by ``HeldoutLoss``; its wall time is
    the shared training time divided by K (the method says so)."""
    k = len(seeds)
    wide = pack(initial_models(spec, seeds)).to(device)
    heldout = HeldoutLoss(data.heldout_x, config, device)
    models = [build(spec).to(device) for _ in seeds]
    rows: list[list[Measurement]] = [[] for _ in seeds]

    def log(step: int, elapsed: float, scored: nn.Module) -> None:
        timing = f"time.perf_counter, training only; {k} seeds trained at once, each charged 1/{k} of their time"
        for i, (seed, model, state) in enumerate(zip(seeds, models, unpack(scored, k))):
            model.load_state_dict(state)
            rows[i].extend(curve_rows(heldout, model, config, seed, step, elapsed / k, timing))
        if at_checkpoint is not None and scored_midway(step, config):
            at_checkpoint(step, models)

    train_loop(packed_steps(wide, data, config, seeds, device, config.train_steps), wide, config, device, log)
    return models, rows  # the last log left each seed's scored weights in ``models``
