"""FLOP counts: two counters agree, match a hand count, attribute every FLOP to a block type, and fail
loudly on work they cannot count."""
from functools import cache
from math import prod

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import set_checkpoint_early_stop

from bench.measure.blocks import BLOCK_TYPES
from bench.measure.flops import count_flops, flop_counter_flops, fvcore_forward_macs
from bench.plan.designs import grid
from variants import BASES, UNetSpec, build
from variants.bases import EDM2_AXES

from helpers import SMALL_SPECS

SMALL = SMALL_SPECS["8x8x1"]
BATCH = 2
VARIANTS = list(grid(SMALL))


def inputs(spec: UNetSpec) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(BATCH, spec.in_ch, spec.in_dim, spec.in_dim)
    return x, torch.logspace(-2, 1, BATCH).view(-1, 1, 1, 1)


@pytest.fixture(autouse=True)
def one_thread():
    # Counting is shape arithmetic plus a traced forward of a tiny model; on a shared 2-core machine
    # more threads only contend (what that cost: docs/cli.md, under `make test`).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def flop_rows(spec: UNetSpec) -> tuple:
    """One count_flops call per spec, shared by the tests."""
    torch.manual_seed(0)
    rows = tuple(count_flops(build(spec), *inputs(spec)))
    assert all(r.n == BATCH and r.status == "ok" for r in rows)
    return rows


def rows_by_key(spec: UNetSpec) -> dict[tuple[str, str, str, str], float]:
    """(phase, metric, unit, block) -> value."""
    return {(r.phase, r.metric, r.unit, r.block): r.value for r in flop_rows(spec)}


def breakdown(spec: UNetSpec, phase: str, metric: str, unit: str) -> dict[str, float]:
    return {block: v for (p, m, u, block), v in rows_by_key(spec).items() if (p, m, u) == (phase, metric, unit)}


# --- a hand count of forward multiply-adds, from the architecture ---------------------------------
def hand_macs(spec: UNetSpec, batch: int) -> dict[str, int]:
    temb = spec.ch * spec.embed_ch_mult
    film = 2 if spec.time_injection == "film" else 1
    macs = dict.fromkeys(BLOCK_TYPES, 0)

    def conv(cin, cout, k, out_res):  # Cout * Cin * k * k per output pixel
        return cout * cin * k * k * out_res**2

    def resnet(cin, cout, res, encoder=False):
        shortcut = conv(cin, cout, 1, res) if cin != cout else 0
        branch_in = cout if encoder and spec.block_form == "edm2" else cin  # EDM2: the 1x1 first, then out -> out
        macs["resnet"] += conv(branch_in, cout, 3, res) + conv(cout, cout, 3, res) + shortcut + temb * film * cout

    def attention(c, res):
        t = res * res
        # sdpa: Linear qkv, Linear proj, 1x1 proj_out; ddpm: 1x1 q, k, v and out; cosine: 1x1 qkv and out
        projections = 5 if spec.attention == "sdpa" else 4
        macs["attention"] += projections * t * c * c + t * t * c + t * t * c  # then QK^T and AV

    def resample(c, res, direction):  # res: the level's resolution
        out_res = res // 2 if direction == "down" else 2 * res
        if spec.resblock_updown:  # a resnet block at the new resolution, conv1 after the resampling
            macs[direction + "sample"] += conv(c, c, 3, out_res) * 2 + temb * film * c
        elif direction == "down":
            macs["downsample"] += conv(c, c, 3, out_res)
        elif spec.upsample == "nearest_conv":
            macs["upsample"] += conv(c, c, 3, out_res)
        else:  # ConvTranspose2d(4, stride 2): Cin * Cout * 4 * 4 per *input* pixel
            macs["upsample"] += c * c * 16 * res**2

    features = 2 if spec.noise_embedding == "sincos" else spec.ch  # sin/cos of sigma, or ch sinusoids
    macs["embed"] = features * temb + temb * temb  # Linear(features, temb), Linear(temb, temb)
    if spec.noise_embedding == "mp_fourier":
        macs["embed"] = features * temb  # one Linear
    macs["conv_in"] = conv(spec.in_ch + spec.ones_channel, spec.ch, 3, spec.in_dim)
    levels, skips = len(spec.ch_mult), (spec.ch,) + spec.level_channels
    c_in = spec.ch
    for level, (c, res) in enumerate(zip(spec.level_channels, spec.resolutions)):
        for _ in range(spec.num_res_blocks):
            resnet(c_in, c, res, encoder=True)
            if res in spec.attn_resolutions:
                attention(c, res)
            c_in = c
        if level < levels - 1:
            resample(c, res, "down")
    resnet(c_in, c_in, spec.resolutions[-1])
    attention(c_in, spec.resolutions[-1])
    resnet(c_in, c_in, spec.resolutions[-1])
    for level in reversed(range(levels)):
        c, res = spec.level_channels[level], spec.resolutions[level]
        for block in range(spec.num_res_blocks + 1):
            resnet(c_in + (c if block < spec.num_res_blocks else skips[level]), c, res)
            if res in spec.attn_resolutions:
                attention(c, res)
            c_in = c
        if level > 0:
            resample(c, res, "up")
    macs["out"] = conv(c_in, spec.out_ch, 3, spec.in_dim)
    return {k: batch * v for k, v in macs.items()}


@pytest.mark.parametrize("spec", [
    SMALL,
    SMALL.replace(upsample="conv_transpose", time_injection="film", attn_heads=4),
    SMALL_SPECS["32x32x3"],
    SMALL.replace(resblock_updown=True, time_injection="film", residual_join="rescaled", checkpoint=True),
    SMALL.replace(attention="ddpm", noise_embedding="fourier", num_head_channels=32, attn_resolutions=(8, 4)),
    BASES["ddpm_cifar10"],
    SMALL.replace(**(EDM2_AXES | dict(num_head_channels=32))),
    SMALL.replace(attention="cosine", layers="no_bias", time_injection="scale", ones_channel=True,
                  block_form="edm2", normalization="pixel", resblock_updown=True, checkpoint=True),
], ids=["small-baseline", "small-transpose-film-4h", "32x32x3", "small-resblock-updown-film-rescaled",
        "small-ddpm-attention-fourier", "ddpm_cifar10", "small-edm2", "small-edm2-blocks-standard-layers"])
def test_both_counters_match_a_hand_count(spec):
    expected = hand_macs(spec, BATCH)
    assert breakdown(spec, "forward", "flops", "MAC") == {"total": sum(expected.values()), **expected}
    assert breakdown(spec, "forward", "flops", "FLOP") == {"total": 2 * sum(expected.values()),
                                                           **{k: 2 * v for k, v in expected.items()}}


# --- the two counters agree on every variant ------------------------------------------------------
@pytest.mark.parametrize("spec", VARIANTS, ids=[s.name for s in VARIANTS])
def test_flop_counter_is_twice_fvcore_per_block_on_every_variant(spec):
    macs = breakdown(spec, "forward", "flops", "MAC")
    flops = breakdown(spec, "forward", "flops", "FLOP")
    assert list(macs) == ["total", *BLOCK_TYPES]
    assert macs["attention"] > 0 and macs["upsample"] > 0
    assert flops == {block: 2 * v for block, v in macs.items()}
    for phase, metric in [("forward", "flops"), ("train_step", "flops"), ("train_step", "model_flops")]:
        counts = breakdown(spec, phase, metric, "FLOP")
        assert counts["total"] == sum(v for b, v in counts.items() if b != "total")


@pytest.mark.parametrize("sigma", [torch.tensor(0.5), torch.full((1,), 0.5), torch.full((1, 1, 1, 1), 0.5)],
                         ids=["scalar", "one value", "one value as (1, 1, 1, 1)"])
def test_a_batch_of_one_counts_half_a_batch_of_two_for_every_sigma_form(sigma):
    spec = SMALL.replace(checkpoint=True)  # the checkpoint-free twin is counted too
    one = {(r.phase, r.metric, r.unit, r.block): r.value for r in count_flops(build(spec), torch.randn(1, 1, 8, 8), sigma)}
    two = {(r.phase, r.metric, r.unit, r.block): r.value
           for r in count_flops(build(spec), torch.randn(2, 1, 8, 8), torch.full((2,), 0.5))}
    assert one.keys() == two.keys()
    assert {k: 2 * v for k, v in one.items()} == two  # every op is per sample


def test_rows_record_unit_and_method():
    keys = {(p, m, u) for p, m, u, _ in rows_by_key(SMALL)}
    assert keys == {("forward", "flops", "MAC"), ("forward", "flops", "FLOP"), ("train_step", "flops", "FLOP"),
                    ("train_step", "model_flops", "FLOP")}
    assert {(r.unit, r.method) for r in flop_rows(SMALL)} == {("MAC", "fvcore"), ("FLOP", "torch.utils.flop_counter")}


def test_training_step_is_about_three_forwards():
    # Backward of a conv / linear costs two forwards (input and weight gradients), except where the input
    # needs no gradient (conv_in, the embedding's first layer): a step is a little under 3x the forward.
    forward = breakdown(SMALL, "forward", "flops", "FLOP")["total"]
    step = breakdown(SMALL, "train_step", "flops", "FLOP")["total"]
    assert 2.9 * forward < step < 3 * forward


# --- what each axis changes -----------------------------------------------------------------------
@pytest.mark.parametrize("upsample", ["nearest_conv", "conv_transpose"])
@pytest.mark.parametrize("time_injection", ["additive", "film"])
def test_heads_do_not_change_flops(upsample, time_injection):
    one, four = (SMALL.replace(upsample=upsample, time_injection=time_injection, attn_heads=h) for h in (1, 4))
    assert rows_by_key(one) == rows_by_key(four)


def test_conv_transpose_upsampler_has_4_9_the_macs_of_nearest_conv():
    nearest = breakdown(SMALL, "forward", "flops", "MAC")["upsample"]
    transpose = breakdown(SMALL.replace(upsample="conv_transpose"), "forward", "flops", "MAC")["upsample"]
    assert transpose * 9 == nearest * 4


def test_film_doubles_the_time_projection_macs():
    additive = breakdown(SMALL, "forward", "flops", "MAC")
    film = breakdown(SMALL.replace(time_injection="film"), "forward", "flops", "MAC")
    temb = SMALL.ch * SMALL.embed_ch_mult
    projection = sum(BATCH * temb * m.time.proj[1].out_features
                     for m in build(SMALL).modules() if hasattr(m, "time"))  # additive: Linear(temb, C) per block
    assert film["resnet"] - additive["resnet"] == projection
    assert {b: v for b, v in film.items() if b not in ("resnet", "total")} == \
           {b: v for b, v in additive.items() if b not in ("resnet", "total")}


def test_checkpointing_keeps_forward_and_adds_the_recompute_to_the_step():
    plain, ckpt = SMALL, SMALL.replace(checkpoint=True)
    for unit in ("MAC", "FLOP"):
        assert breakdown(plain, "forward", "flops", unit) == breakdown(ckpt, "forward", "flops", unit)
    forward = breakdown(plain, "forward", "flops", "FLOP")
    plain_step = breakdown(plain, "train_step", "flops", "FLOP")
    ckpt_step = breakdown(ckpt, "train_step", "flops", "FLOP")
    # model FLOPs ignore the recompute; the plain model's step has none
    assert breakdown(ckpt, "train_step", "model_flops", "FLOP") == plain_step
    assert breakdown(plain, "train_step", "model_flops", "FLOP") == plain_step
    # Resnet and attention blocks are checkpointed: recompute is at most their forward (torch stops
    # recomputing early once backward has what it needs); nothing else changes.
    extra = {b: ckpt_step[b] - plain_step[b] for b in plain_step}
    assert 0 < extra["resnet"] <= forward["resnet"] and 0 < extra["attention"] <= forward["attention"]
    assert all(extra[b] == 0 for b in extra if b not in ("total", "resnet", "attention"))


def test_without_early_stop_checkpointing_recomputes_exactly_the_blocks_forward():
    x, sigma = inputs(SMALL)
    _, forward = flop_counter_flops(build(SMALL), x, sigma, "forward")
    _, plain = flop_counter_flops(build(SMALL), x, sigma, "train_step")
    with set_checkpoint_early_stop(False):
        _, ckpt = flop_counter_flops(build(SMALL.replace(checkpoint=True)), x, sigma, "train_step")
    recomputed = {"resnet": forward["resnet"], "attention": forward["attention"]}
    assert {b: ckpt[b] - plain[b] for b in plain} == {b: recomputed.get(b, 0) for b in plain}


# --- meta device versus a real device -------------------------------------------------------------
def test_meta_count_equals_the_cpu_count_but_for_the_fused_kernels_score_recompute():
    spec = SMALL.replace(attn_heads=4)
    model, (x, sigma) = build(spec), inputs(spec)
    assert flop_counter_flops(model, x, sigma, "forward") == flop_counter_flops(model, x, sigma, "forward", on_meta=False)
    meta_total, meta = flop_counter_flops(model, x, sigma, "train_step")
    cpu_total, cpu = flop_counter_flops(model, x, sigma, "train_step", on_meta=False)
    # CPU's flash-attention backward recomputes QK^T: one more (T x C) @ (C x T) per attention call.
    attention_calls = [(c, r * r) for c, r in zip(spec.level_channels, spec.resolutions) if r in spec.attn_resolutions]
    attention_calls = [call for call in attention_calls for _ in range(2 * spec.num_res_blocks + 1)]  # down + up
    attention_calls.append((spec.level_channels[-1], spec.resolutions[-1] ** 2))  # middle
    score_recompute = sum(2 * BATCH * t * t * c for c, t in attention_calls)
    assert {b: cpu[b] - meta[b] for b in meta} == {b: score_recompute if b == "attention" else 0 for b in meta}
    assert cpu_total - meta_total == score_recompute


# --- failing loudly -------------------------------------------------------------------------------
class PairwiseDistance(nn.Module):
    """A model whose only heavy op is one fvcore has no handle for."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x).flatten(2)
        return torch.cdist(h, h)


class Spectrum(PairwiseDistance):
    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfft2(self.conv_in(x)).abs()


@pytest.mark.parametrize("model,op", [(PairwiseDistance(), "aten::cdist"), (Spectrum(), "aten::fft_rfft2")])
def test_an_op_fvcore_cannot_count_raises_naming_it(model, op):
    with pytest.raises(RuntimeError, match=f"fvcore cannot count .*{op}"):
        fvcore_forward_macs(model, torch.randn(1, 1, 4, 4), torch.ones(1))


class ExtraHead(nn.Module):
    """conv_in is a block; the linear head is not, so its work belongs to no block type."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(1, 4, 3, padding=1)
        self.head = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv_in(x)[:, :, 0, 0])


@pytest.mark.parametrize("phase", ["forward", "train_step"])
def test_flops_outside_every_block_raise(phase):
    with pytest.raises(RuntimeError, match=f"{phase}: FLOPs outside every block, by op: {{'aten.addmm"):
        flop_counter_flops(ExtraHead(), torch.randn(2, 1, 4, 4), torch.ones(2), phase)


def test_fvcore_work_outside_every_block_is_left_over_and_refused():
    model, x, sigma = ExtraHead(), torch.randn(2, 1, 4, 4), torch.ones(2)
    total, by_block = fvcore_forward_macs(model, x, sigma)
    assert total - sum(by_block.values()) == 2 * 4 * 4  # the head: batch x Linear(4, 4)
    with pytest.raises(RuntimeError, match="outside every block"):
        count_flops(model, x, sigma)


def test_unknown_phase_is_rejected():
    with pytest.raises(ValueError, match="phase='inference' is invalid; valid: forward, train_step"):
        flop_counter_flops(build(SMALL), *inputs(SMALL), "inference")


# --- a plugin's own ops ---------------------------------------------------------------------------------------
@torch.library.custom_op("benchtest::channel_mix", mutates_args=())
def channel_mix(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) x (C, C): a 1x1 convolution written as a custom op, so torch knows nothing of its cost."""
    return torch.einsum("bchw,dc->bdhw", x, w)


@channel_mix.register_fake
def _(x, w):
    return x.new_empty(x.shape[0], w.shape[0], *x.shape[2:])


def _channel_mix_backward(ctx, grad):
    x, w = ctx.saved_tensors
    return torch.einsum("bdhw,dc->bchw", grad, w), torch.einsum("bdhw,bchw->dc", grad, x)


channel_mix.register_autograd(_channel_mix_backward,
                              setup_context=lambda ctx, inputs, output: ctx.save_for_backward(*inputs))


class ChannelMix(nn.Module):
    """conv_in (a block) whose output goes through the custom op."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(1, 4, 3, padding=1)
        self.conv_in.mix = nn.Parameter(torch.randn(4, 4))
        self.conv_in.register_forward_hook(lambda m, args, out: channel_mix(out, m.mix))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.conv_in(x)


def test_a_plugin_op_fails_the_count_naming_the_line_that_declares_it_then_counts_as_declared(monkeypatch):
    from bench.measure import flops

    monkeypatch.setattr(flops, "DECLARED_OPS", {})
    model, x, sigma = ChannelMix(), torch.randn(2, 1, 4, 4), torch.ones(2)
    with pytest.raises(RuntimeError, match=r"fvcore cannot count benchtest::channel_mix: .*count_op\('benchtest::"
                                           r"channel_mix'\)"):
        count_flops(model, x, sigma)
    flops.count_op("benchtest::channel_mix", macs=lambda inputs, outputs: prod(outputs[0]) * inputs[1][1])
    rows = {(r.phase, r.metric, r.unit, r.block): r.value for r in count_flops(model, x, sigma)}
    conv, mix = 2 * 4 * 9 * 16, 2 * 4 * 4 * 16  # batch x Cout x Cin x k^2 x pixels; batch x C x C x pixels
    assert rows[("forward", "flops", "MAC", "total")] == conv + mix
    assert rows[("forward", "flops", "FLOP", "total")] == 2 * (conv + mix)
    flops.count_op("benchtest::channel_mix")  # declared as doing no multiply-adds: counts zero, by both counters
    assert {(r.metric, r.unit): r.value for r in count_flops(model, x, sigma) if r.block == "total"
            and r.phase == "forward"} == {("flops", "MAC"): conv, ("flops", "FLOP"): 2 * conv}
