"""Parameter counts: exact, complete over the block types, and equal to smalldiffusion's Unet."""
import pytest
from smalldiffusion import Unet
from torch import nn

from bench.measure.blocks import BLOCK_TYPES, block_modules, breakdown_rows
from bench.measure.params import count_params
from bench.plan.designs import grid
from variants import BASES, UNetSpec, build

from helpers import SMALL_SPECS, n_params

SMALL = SMALL_SPECS["8x8x1"]


def by_block(rows):
    return {r.block: r.value for r in rows}


@pytest.mark.parametrize("spec,expected", [
    (BASES["fmnist28"], 4_424_833),  # the figure smalldiffusion's FashionMNIST example prints
    (UNetSpec(in_dim=16, in_ch=3, out_ch=3, ch=32, ch_mult=(1, 2), attn_resolutions=(8,), norm_groups=8), None),
])
def test_baseline_total_equals_smalldiffusion_unet(spec, expected):
    theirs = Unet(spec.in_dim, spec.in_ch, spec.out_ch, ch=spec.ch, ch_mult=spec.ch_mult,
                  attn_resolutions=spec.attn_resolutions)  # smalldiffusion's GroupNorm has 32 groups: no params
    their_count = n_params(theirs)
    assert by_block(count_params(build(spec)))["total"] == their_count
    if expected is not None:
        assert their_count == expected


def test_rows_carry_phase_unit_method_and_add_up():
    rows = count_params(build(SMALL))
    assert {(r.phase, r.metric, r.unit, r.method) for r in rows} == {("model", "params", "count", "numel")}
    counts = by_block(rows)
    assert list(counts) == ["total", *BLOCK_TYPES]
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_block_counts_match_a_hand_count():
    spec = SMALL  # ch=32, ch_mult=(1, 2), temb 128, 1 -> 1 channel
    counts = by_block(count_params(build(spec)))
    temb, ch, deep = spec.ch * spec.embed_ch_mult, spec.ch, spec.level_channels[-1]
    assert counts["embed"] == (2 * temb + temb) + (temb * temb + temb)  # Linear(2, temb), Linear(temb, temb)
    assert counts["conv_in"] == 1 * ch * 9 + ch
    assert counts["downsample"] == ch * ch * 9 + ch  # leaving the 32-channel level
    assert counts["upsample"] == deep * deep * 9 + deep  # leaving the 64-channel level: nearest, then a 3x3 conv
    assert counts["out"] == 2 * ch + ch * 1 * 9 + 1  # GroupNorm(ch) affine, conv ch -> 1


def test_blocks_do_not_overlap_and_cover_every_parameter():
    model = build(SMALL.replace(upsample="conv_transpose", time_injection="film"))
    blocks = block_modules(model)
    names = list(blocks)
    assert not [(a, b) for a in names for b in names if b.startswith(a + ".")]
    owned = {p for name in names for p in dict(model.named_modules())[name].parameters()}
    assert owned == set(model.parameters())


@pytest.mark.parametrize("upsample", ["nearest_conv", "conv_transpose"])
@pytest.mark.parametrize("time_injection", ["additive", "film"])
def test_heads_and_checkpointing_change_no_parameter(upsample, time_injection):
    specs = list(grid(SMALL, upsample=[upsample], time_injection=[time_injection], attn_heads=(1, 4),
                      checkpoint=(False, True)))
    assert len(specs) == 4
    counts = [by_block(count_params(build(s))) for s in specs]
    assert all(c == counts[0] for c in counts)


def test_conv_transpose_upsampler_has_16_9_the_weights_of_nearest_conv():
    def upsample_weights(spec):
        model = build(spec)
        biases = sum(m.conv.bias.numel() for name, m in model.named_modules() if block_modules(model).get(name) == "upsample")
        return by_block(count_params(model))["upsample"] - biases

    nearest, transpose = upsample_weights(SMALL), upsample_weights(SMALL.replace(upsample="conv_transpose"))
    assert transpose * 9 == nearest * 16


def test_film_doubles_the_time_projection():
    def time_projection_params(spec):
        model = build(spec)
        return sum(p.numel() for name, m in model.named_modules() if name.endswith(".time") for p in m.parameters())

    additive = time_projection_params(SMALL)
    assert additive > 0
    assert time_projection_params(SMALL.replace(time_injection="film")) == 2 * additive
    film_total = by_block(count_params(build(SMALL.replace(time_injection="film"))))["resnet"]
    assert film_total - by_block(count_params(build(SMALL)))["resnet"] == additive


def test_parameters_outside_every_block_are_an_error():
    model = build(SMALL)
    model.extra_head = nn.Linear(4, 4)  # not a block type
    with pytest.raises(RuntimeError, match="outside every block type"):
        count_params(model)


def test_a_model_without_blocks_is_rejected_by_name():
    with pytest.raises(ValueError, match="model: a Linear has no module of any block type"):
        count_params(nn.Linear(2, 2))


def test_breakdown_rows_refuse_a_breakdown_that_does_not_add_up():
    with pytest.raises(RuntimeError, match="forward/flops \\(fvcore\\): 5 of 10 MAC"):
        breakdown_rows("forward", "flops", "MAC", "fvcore", 10, {"resnet": 5})
    rows = breakdown_rows("forward", "flops", "MAC", "fvcore", 10, {"resnet": 6, "out": 4}, n=3)
    assert [(r.block, r.value, r.n) for r in rows] == [("total", 10.0, 3), ("resnet", 6.0, 3), ("out", 4.0, 3)]
