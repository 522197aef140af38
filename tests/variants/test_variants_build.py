"""Every variant builds, has the right shapes, and follows smalldiffusion's model protocol."""
import pytest
import torch
from smalldiffusion import ScheduleLogLinear, samples

from bench.plan.designs import grid
from variants import UNet, build, default_grid

from helpers import SMALL_SPECS

ALL_VARIANTS = [(cfg, spec) for cfg, base in SMALL_SPECS.items() for spec in grid(base)]


def test_default_grid_is_the_16_axis_combinations():
    specs = list(grid())
    assert len(specs) == 16
    assert len({s.name for s in specs}) == 16
    assert {s.upsample for s in specs} == set(default_grid()["upsample"])
    assert {s.checkpoint for s in specs} == {False, True}


def test_grid_holds_an_axis_fixed_and_keeps_the_base():
    base = SMALL_SPECS["8x8x1"]
    specs = list(grid(base, **(default_grid() | {"checkpoint": [False], "attn_heads": [4]})))
    assert len(specs) == 4
    assert all(s.ch == 32 and s.attn_heads == 4 and not s.checkpoint for s in specs)


@pytest.mark.parametrize("cfg,spec", ALL_VARIANTS, ids=[f"{c}-{s.name}" for c, s in ALL_VARIANTS])
@pytest.mark.parametrize("batch", [1, 3])
def test_variant_output_shape(cfg, spec, batch):
    model = build(spec)
    x = torch.randn(batch, spec.in_ch, spec.in_dim, spec.in_dim)
    per_sample = model(x, torch.rand(batch) + 0.1)
    shared = model(x, torch.tensor(0.5))
    assert per_sample.shape == x.shape == shared.shape
    assert torch.isfinite(per_sample).all()


def test_sigma_shapes_smalldiffusion_uses_agree():
    model = build(SMALL_SPECS["8x8x1"]).eval()
    x = torch.randn(3, 1, 8, 8)
    sigma = torch.full((3,), 0.7)
    expected = model(x, sigma)
    torch.testing.assert_close(model(x, torch.tensor(0.7)), expected)
    torch.testing.assert_close(model(x, sigma.view(3, 1, 1, 1)), expected)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("form", ["scalar", "one value", "one value as (1, 1, 1, 1)", "one per sample",
                                  "one per sample as (B, 1, 1, 1)"])
def test_every_sigma_form_gives_the_same_output_at_every_batch_size(batch, form):
    model = build(SMALL_SPECS["8x8x1"]).eval()
    x = torch.randn(batch, 1, 8, 8)
    sigma = {"scalar": torch.tensor(0.7), "one value": torch.full((1,), 0.7),
             "one value as (1, 1, 1, 1)": torch.full((1, 1, 1, 1), 0.7), "one per sample": torch.full((batch,), 0.7),
             "one per sample as (B, 1, 1, 1)": torch.full((batch, 1, 1, 1), 0.7)}[form]
    torch.testing.assert_close(model(x, sigma), model(x, torch.full((batch,), 0.7)))


def test_a_sigma_of_neither_one_value_nor_one_per_sample_is_refused():
    model = build(SMALL_SPECS["8x8x1"])
    with pytest.raises(ValueError, match=r"sigma has shape \(2,\); valid: one value .* or one per sample \(3 values"):
        model(torch.randn(3, 1, 8, 8), torch.ones(2))


def test_model_protocol_drives_smalldiffusion_sampler_and_loss():
    model = build(SMALL_SPECS["8x8x1"])
    assert model.input_dims == (1, 8, 8)
    assert model.rand_input(5).shape == (5, 1, 8, 8)
    x0 = torch.randn(4, 1, 8, 8)
    sigma = torch.rand(4, 1, 1, 1) + 0.1
    loss = model.get_loss(x0, sigma, torch.randn_like(x0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    sigmas = ScheduleLogLinear(N=50, sigma_min=0.02, sigma_max=10).sample_sigmas(4)
    *_, final = samples(model, sigmas, gam=2, batchsize=2)
    assert final.shape == (2, 1, 8, 8)


def test_bad_input_shape_and_cond_are_refused():
    model = build(SMALL_SPECS["8x8x1"])
    with pytest.raises(ValueError, match=r"expected \(batch, 1, 8, 8\)"):
        model(torch.randn(2, 1, 16, 16), torch.tensor(1.0))
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randn(2, 1, 8, 8), torch.tensor(1.0), cond=torch.zeros(2, dtype=torch.long))


def test_build_returns_a_unet_that_remembers_its_spec():
    spec = SMALL_SPECS["32x32x3"].replace(upsample="conv_transpose")
    model = build(spec)
    assert isinstance(model, UNet) and model.spec == spec


def test_a_block_written_for_the_old_signature_is_refused_at_registration_naming_the_new_one():
    from variants.upsample import UPSAMPLERS

    class OldUpsample(torch.nn.Module):
        def __init__(self, channels):  # before blocks took `parts`
            super().__init__()

    with pytest.raises(TypeError) as err:
        UPSAMPLERS.register("old_style")(OldUpsample)
    assert str(err.value).startswith("upsample: 'old_style' is "
                                     "test_a_block_written_for_the_old_signature_is_refused_at_registration_naming_"
                                     "the_new_one.<locals>.OldUpsample(channels), but the builder calls it as ")
    assert "valid: def __init__(self, channels, parts)" in str(err.value)
    assert "old_style" not in UPSAMPLERS
