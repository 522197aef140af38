"""EDM2's choices as axes (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion Models"):
each level against its equation and a hand composition, parameters against a hand count, the EDM2 bases against
NVlabs' parameter and multiply-add counts, and the combinations that cannot be built refused naming both axes.

NVlabs/edm2's code is CC BY-NC-SA: nothing here imports it. Its figures are constants, each saying where it came
from; the weight-for-weight comparison of whole networks with its outputs lives outside the project.
"""
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.measure.flops import flop_counter_flops, fvcore_forward_macs, no_macs_reason
from variants import (ATTENTIONS, BASES, NOISE_EMBEDDINGS, TIME_INJECTIONS, UPSAMPLERS, Parts, ResnetBlock, UNetSpec,
                      Upsampler, baseline_parts, build, parts_for_spec)
from variants.bases import EDM2_AXES
from variants.mp import MPConv2d, MPLinear, MPSiLU, PixelNorm, mp_cat, mp_silu, mp_sum, normalize
from variants.assembly import use_layers, use_normalization, use_residual_join
from variants.resnet import ResampleResnetBlock

from helpers import n_params

TEMB = 32


def edm2_parts(**levels) -> Parts:
    """Parts with every EDM2 axis at its EDM2 level (or ``levels``), as parts_for_spec configures them."""
    spec = BASES["edm2_img512_xs"].replace(**levels)
    return parts_for_spec(spec)


def rms(x: torch.Tensor, dim) -> torch.Tensor:
    return x.square().mean(dim=dim, keepdim=True).sqrt()


# --- the magnitude-preserving functions, against their equations ---------------------------------------------
def test_normalize_divides_by_epsilon_plus_the_rms_over_the_given_dims():
    x = torch.randn(3, 5, 4, 4) * 7
    torch.testing.assert_close(normalize(x, dim=1), x / (1e-4 + rms(x, 1)))
    torch.testing.assert_close(normalize(x, dim=(1, 2, 3)), x / (1e-4 + rms(x, (1, 2, 3))))
    assert torch.allclose(rms(normalize(x, dim=1), 1), torch.ones(1), atol=1e-4)
    assert torch.equal(normalize(torch.zeros(2, 3), dim=1), torch.zeros(2, 3))  # finite at zero


def test_mp_silu_is_silu_over_0_596_and_keeps_unit_variance():
    x = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(mp_silu(x), F.silu(x) / 0.596, rtol=0, atol=0)
    assert abs(mp_silu(x).square().mean().sqrt().item() - 1) < 0.01  # sqrt(E[silu(z)^2]) = 0.596
    fresh = x.clone()
    with torch.no_grad():
        out = MPSiLU(fresh_input=True)(fresh)
    assert out.data_ptr() == fresh.data_ptr()  # in place where the input is fresh and no graph is recorded
    torch.testing.assert_close(out, mp_silu(x), rtol=0, atol=0)


@pytest.mark.parametrize("t", [0.3, 0.5, 0.8])
def test_mp_sum_is_a_weighted_sum_rescaled_to_unit_variance(t):
    a, b = torch.randn(2, 100_000, generator=torch.Generator().manual_seed(1))
    expected = ((1 - t) * a + t * b) / math.sqrt((1 - t) ** 2 + t ** 2)
    torch.testing.assert_close(mp_sum(a, b, t), expected)
    assert abs(mp_sum(a, b, t).var().item() - 1) < 0.02
    if t == 0.5:
        torch.testing.assert_close(mp_sum(a, b, t), (a + b) / math.sqrt(2))


def test_mp_cat_weighs_each_part_so_the_whole_has_unit_variance_in_the_given_balance():
    a, b = torch.randn(4, 6, 3, 3), torch.randn(4, 10, 3, 3)
    t = 0.5
    scale = math.sqrt((6 + 10) / ((1 - t) ** 2 + t ** 2))  # eq. 103 by hand
    wa, wb = scale * (1 - t) / math.sqrt(6), scale * t / math.sqrt(10)
    torch.testing.assert_close(mp_cat(a, b), torch.cat([wa * a, wb * b], dim=1))
    assert math.isclose(wa**2 * 6 + wb**2 * 10, 16)  # unit-variance parts give a unit-variance whole
    assert math.isclose(wa**2 * 6, wb**2 * 10)      # t = 0.5: both parts carry the same energy


def test_pixel_norm_gives_each_pixel_unit_rms_over_its_channels():
    x = torch.randn(2, 8, 5, 5) * torch.rand(2, 1, 5, 5) * 10
    y = PixelNorm()(x)
    torch.testing.assert_close(y, x / (1e-4 + rms(x, 1)))
    assert torch.allclose(rms(y, 1), torch.ones(1), atol=1e-3)


# --- magnitude-preserving layers ----------------------------------------------------------------------------
def test_mp_linear_uses_the_row_normalised_weight_over_sqrt_fan_in_and_has_no_bias():
    layer = MPLinear(12, 5, forced=False)
    assert [name for name, _ in layer.named_parameters()] == ["weight"] and n_params(layer) == 60
    x = torch.randn(7, 12)
    w = layer.weight / (1e-4 + rms(layer.weight, 1)) / math.sqrt(12)
    torch.testing.assert_close(layer(x), x @ w.T)
    torch.testing.assert_close(w.norm(dim=1), torch.ones(5), atol=1e-3, rtol=0)  # each row: unit norm


def test_mp_conv_keeps_unit_variance_whatever_the_stored_weight_scale():
    conv = MPConv2d(16, 16, 3, forced=False, padding=1)
    with torch.no_grad():
        conv.weight.mul_(37.0)
    x = torch.randn(8, 16, 12, 12)
    w = conv.weight / (1e-4 + rms(conv.weight, (1, 2, 3))) / math.sqrt(16 * 9)
    torch.testing.assert_close(conv(x), F.conv2d(x, w, padding=1))
    assert 0.8 < conv(x)[:, :, 1:-1, 1:-1].std().item() < 1.2  # unit-variance in, (about) unit-variance out


def test_forced_weight_normalisation_rescales_the_stored_weight_in_training_mode_only():
    torch.manual_seed(0)
    plain, forced = MPConv2d(4, 6, 3, forced=False), MPConv2d(4, 6, 3, forced=True)
    with torch.no_grad():
        forced.weight.copy_(plain.weight * 3)
    raw = forced.weight.detach().clone()
    x = torch.randn(2, 4, 5, 5)
    forced.eval()(x)
    assert torch.equal(forced.weight, raw)  # eval: stored weight untouched
    plain.train()(x)
    before = plain.weight.detach().clone()
    plain(x)
    assert torch.equal(plain.weight, before)  # weight normalisation alone never writes the weight
    y = forced.train()(x)
    once = normalize(raw, (1, 2, 3))
    torch.testing.assert_close(forced.weight.detach(), once)  # rows at unit RMS (Algorithm 1)
    # and the forward uses the rescaled weight, normalised again
    torch.testing.assert_close(y, F.conv2d(x, normalize(once, (1, 2, 3)) / math.sqrt(36)))
    y.sum().backward()
    assert forced.weight.grad is not None


def test_layers_level_decides_every_bias_and_every_layer_class():
    base = UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=16, ch_mult=(1, 2), attn_resolutions=(4,), norm_groups=8)
    biases = lambda model: [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None]
    assert biases(build(base)) and not biases(build(base.replace(layers="no_bias")))
    for level, forced in (("mp", False), ("mp_forced", True)):
        model = build(base.replace(layers=level))
        learned = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, MPConv2d, MPLinear))]
        assert learned and all(isinstance(m, (MPConv2d, MPLinear)) and m.forced == forced for m in learned)
        assert not biases(model)


# --- cosine attention -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("heads", [1, 2, 4])
def test_cosine_attention_is_softmax_of_normalised_q_k_over_normalised_v(heads):
    channels, d = 16, 16 // heads
    block = ATTENTIONS.get("cosine")(channels, heads, baseline_parts(4)).eval()
    x = torch.randn(2, channels, 3, 5)
    qkv = block.qkv(x).reshape(2, 3, heads, d, 15)  # q | k | v, each head's d channels together
    q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))  # (B, heads, tokens, d)
    q, k, v = (t / (1e-4 + rms(t, -1)) for t in (q, k, v))  # unit RMS per head: cosine attention
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    out = (weights @ v).transpose(-1, -2).reshape(2, channels, 3, 5)
    torch.testing.assert_close(block(x), x + block.proj_out(out), rtol=1e-5, atol=1e-5)
    assert not any(isinstance(m, nn.GroupNorm) for m in block.modules())  # no normalisation before it


def test_cosine_attention_does_not_see_the_scale_of_q_k_and_v():
    block = ATTENTIONS.get("cosine")(8, 2, baseline_parts(4)).eval()
    x = torch.randn(2, 8, 4, 4)
    attended = lambda: block(x) - x  # the output projection of the attention alone
    before = attended()
    with torch.no_grad():
        block.qkv.weight.mul_(25.0)
        block.qkv.bias.mul_(25.0)
    torch.testing.assert_close(attended(), before, rtol=0, atol=1e-3)  # up to the 1e-4 added to each RMS
    with torch.no_grad():
        block.proj_out.weight.mul_(25.0)
    assert not torch.allclose(attended(), before, atol=1e-2)  # the output projection's scale does count


def test_cosine_attention_has_four_projections_and_joins_with_the_residual_join():
    parts = baseline_parts(4)
    assert n_params(ATTENTIONS.get("cosine")(32, 1, parts)) == 4 * 32 * 32 + 4 * 32
    assert n_params(ATTENTIONS.get("cosine")(32, 1, edm2_parts())) == 4 * 32 * 32  # MP layers: no biases
    use_residual_join(parts, "mp_sum")
    block = ATTENTIONS.get("cosine")(8, 2, parts).eval()
    x = torch.randn(2, 8, 3, 3)
    plain = ATTENTIONS.get("cosine")(8, 2, baseline_parts(4)).eval()
    plain.load_state_dict(block.state_dict())
    torch.testing.assert_close(block(x), mp_sum(x, plain(x) - x, 0.3))


# --- conditioning, noise embedding, blocks --------------------------------------------------------------------
def test_scale_conditioning_multiplies_by_one_plus_the_projection_and_its_gain_starts_at_zero():
    h, temb, norm = torch.randn(2, 6, 4, 4), torch.randn(2, TEMB), nn.GroupNorm(2, 6)
    scale = TIME_INJECTIONS.get("scale")(TEMB, 6, baseline_parts(2))
    torch.testing.assert_close(scale(norm(h), temb), norm(h) * (1 + scale.proj(temb))[:, :, None, None])
    gained = TIME_INJECTIONS.get("scale_gain")(TEMB, 6, baseline_parts(2))
    assert gained.gain.item() == 0.0
    torch.testing.assert_close(gained(norm(h), temb), norm(h), rtol=0, atol=0)  # off at init
    with torch.no_grad():
        gained.gain.fill_(0.7)
    expected = norm(h) * (1 + 0.7 * gained.proj(temb))[:, :, None, None]
    torch.testing.assert_close(gained(norm(h), temb), expected)
    assert n_params(gained) == n_params(scale) + 1 == TEMB * 6 + 6 + 1  # Linear(temb, C) and the gain


def test_mp_fourier_embedding_is_sqrt2_cos_of_c_noise_then_one_linear():
    torch.manual_seed(5)
    embed = NOISE_EMBEDDINGS.get("mp_fourier")(16, TEMB, edm2_parts())
    torch.manual_seed(5)
    torch.testing.assert_close(embed.freqs, 2 * math.pi * torch.randn(16), rtol=0, atol=0)  # drawn at init
    torch.testing.assert_close(embed.phases, 2 * math.pi * torch.rand(16), rtol=0, atol=0)
    sigma = torch.tensor([0.002, 0.3, 5.0, 80.0])
    c_noise = sigma.log() / 4
    features = math.sqrt(2) * torch.cos(c_noise[:, None] * embed.freqs + embed.phases)
    torch.testing.assert_close(embed(sigma), embed.linear(features))
    assert set(embed.state_dict()) == {"freqs", "phases", "linear.weight"}  # the draw is saved with the weights
    assert n_params(embed) == 16 * TEMB  # one linear, no bias (MP layers)
    assert n_params(NOISE_EMBEDDINGS.get("mp_fourier")(16, TEMB, baseline_parts())) == 16 * TEMB + TEMB


def test_the_edm2_encoder_block_projects_first_pixel_normalises_and_joins_by_mp_sum():
    parts = edm2_parts(layers="mp")  # eval and train alike (no forced normalisation to track)
    block = ResnetBlock(8, 12, TEMB, 0.0, parts, encoder=True).eval()
    with torch.no_grad():
        block.time.gain.fill_(0.5)
    x, temb = torch.randn(2, 8, 5, 5), torch.randn(2, TEMB)
    main = block.shortcut(x)
    main = main / (1e-4 + rms(main, 1))
    h = block.conv1(mp_silu(main))
    h = h * (1 + 0.5 * block.time.proj[1](mp_silu(temb)))[:, :, None, None]
    h = block.conv2(mp_silu(h))
    torch.testing.assert_close(block(x, temb), mp_sum(main, h, 0.3))
    # the residual branch runs at the output width: conv1 is 12 -> 12, the 1x1 projection 8 -> 12
    assert block.conv1.weight.shape == (12, 12, 3, 3) and block.shortcut.weight.shape == (12, 8, 1, 1)
    assert n_params(block) == 12 * 12 * 9 + TEMB * 12 + 1 + 12 * 12 * 9 + 8 * 12  # conv1, linear, gain, conv2, 1x1


def test_the_edm2_decoder_block_keeps_the_standard_form_without_any_norm():
    parts = edm2_parts(layers="mp")
    block = ResnetBlock(20, 12, TEMB, 0.0, parts).eval()
    x, temb = torch.randn(2, 20, 5, 5), torch.randn(2, TEMB)
    h = block.conv1(mp_silu(x))
    h = block.conv2(mp_silu(h))  # the gain is 0 at init: no conditioning
    torch.testing.assert_close(block(x, temb), mp_sum(block.shortcut(x), h, 0.3))
    assert block.main_norm is None and block.conv1.weight.shape == (12, 20, 3, 3)


@pytest.mark.parametrize("resample, size", [("down", 6), ("up", 3)])
def test_an_edm2_resampling_block_resamples_its_main_path_first(resample, size):
    parts = edm2_parts(layers="mp")
    encoder = resample == "down"
    block = ResampleResnetBlock(8, 8, TEMB, 0.0, parts, resample=resample, encoder=encoder).eval()
    plain = ResnetBlock(8, 8, TEMB, 0.0, parts, encoder=encoder).eval()
    plain.load_state_dict(block.state_dict())
    x, temb = torch.randn(2, 8, size, size), torch.randn(2, TEMB)
    moved = F.avg_pool2d(x, 2) if encoder else F.interpolate(x, scale_factor=2, mode="nearest")
    torch.testing.assert_close(block(x, temb), plain(moved, temb), rtol=0, atol=0)


def test_pixel_normalization_is_on_the_encoder_path_only_and_removes_every_group_norm():
    spec = UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=16, ch_mult=(1, 2), num_res_blocks=2, attn_resolutions=(4,),
                    norm_groups=8, resblock_updown=True, time_injection="scale")
    model = build(spec.replace(normalization="pixel"))
    assert not any(isinstance(m, nn.GroupNorm) for m in model.modules())
    # 2 blocks per level on the way down, and the one downsampling block; the middle and decoder have none
    assert sum(isinstance(m, PixelNorm) for m in model.modules()) == 2 * 2 + 1
    assert all(m.main_norm is None for m in [model.mid.first, model.mid.second, *model.ups.modules()]
               if isinstance(m, ResnetBlock))
    assert [type(m) for m in model.out] == [nn.Conv2d]  # no GroupNorm -> SiLU before the output conv
    unnormalised = build(spec.replace(normalization="none"))
    assert not any(isinstance(m, (nn.GroupNorm, PixelNorm)) for m in unnormalised.modules())
    parts = baseline_parts(8)
    use_normalization(parts, "none")
    assert parts.main_norm is None and isinstance(parts.norm(16), nn.Identity)


# --- the network-level choices --------------------------------------------------------------------------------
SMALL_EDM2 = UNetSpec(in_dim=16, in_ch=2, out_ch=2, ch=16, ch_mult=(1, 2), embed_ch_mult=2, num_res_blocks=1,
                      dropout=0.0, attn_resolutions=(8,), **(EDM2_AXES | dict(num_head_channels=8)))


def test_the_ones_channel_is_a_constant_input_channel_after_the_image():
    model = build(SMALL_EDM2).eval()
    assert model.conv_in.weight.shape[1] == 3
    x = torch.randn(2, 2, 16, 16)
    seen = {}
    model.conv_in.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    model(x, torch.ones(2))
    torch.testing.assert_close(seen["x"], torch.cat([x, torch.ones(2, 1, 16, 16)], dim=1), rtol=0, atol=0)


def test_the_output_gain_makes_the_network_zero_at_init_and_is_learned():
    model = build(SMALL_EDM2)
    x, sigma = torch.randn(2, 2, 16, 16), torch.tensor([0.3, 5.0])
    out = model(x, sigma)
    assert torch.equal(out, torch.zeros_like(out))
    (out - x).square().mean().backward()
    assert model.out[-1].gain.grad.abs().item() > 0  # a zero output still teaches the gain
    assert n_params(build(SMALL_EDM2.replace(out_gain=False))) == n_params(model) - 1


def test_activation_clipping_bounds_every_block_output():
    spec = SMALL_EDM2.replace(layers="standard", out_gain=False)
    model = build(spec).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(40.0)  # activations far beyond the bound
    outputs = []
    record = lambda values: outputs.append(values.abs().max().item())
    for module in [*model.modules()]:
        if type(module).__name__ in ("Stage", "Middle"):
            module.register_forward_hook(lambda m, args, out: record(out))
    # the downsampling block's output, clipped by the U-Net, is what the next encoder stage reads
    model.downs[1].blocks[0].register_forward_pre_hook(lambda m, args: record(args[0]))
    x = torch.randn(2, 2, 16, 16) * 100
    model(x, torch.tensor([0.3, 5.0]))
    assert len(outputs) == 1 + 1 + 1 + 4 + 1 and max(outputs) == 256.0  # 2 stages down, middle, 4 up, the down
    unclipped = build(spec.replace(clip_act=False)).eval()
    unclipped.load_state_dict(model.state_dict())
    assert unclipped(x, torch.tensor([0.3, 5.0])).abs().max() > model(x, torch.tensor([0.3, 5.0])).abs().max()


def test_mp_cat_joins_the_decoder_skips():
    model = build(SMALL_EDM2).eval()
    seen = []
    block = model.ups[0].blocks[0]
    block.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    hs = []
    for m in (model.conv_in, *model.downs[0].blocks, model.downs[0].downsample, *model.downs[1].blocks):
        m.register_forward_hook(lambda m, args, out: hs.append(out))
    mid = []
    model.mid.register_forward_hook(lambda m, args, out: mid.append(out))
    model(torch.randn(2, 2, 16, 16), torch.tensor([0.3, 5.0]))
    torch.testing.assert_close(seen[0], mp_cat(mid[0], hs[-1]), rtol=0, atol=0)


# --- the EDM2 bases against NVlabs' counts --------------------------------------------------------------------
# NVlabs/edm2 @ 4bf8162f601bcc09472ce8a32dd0cbe8889dc8fc, training/networks_edm2.py: the sum of p.numel() over
# UNet(img_resolution=64, img_channels=4, label_dim=0, model_channels=C).parameters(), C = 128 (XS) and 192 (S);
# closed form 7580 C^2 + 81 C + 37. With label_dim=1000 (+4000 C) and Precond's 128 logvar weights these are the
# paper's Table 6 counts, 124.7M and 280.2M.
NVLABS_PARAMS = {"edm2_img512_xs": 124_201_125, "edm2_img512_s": 279_444_709}
# The same networks' forward multiply-adds at batch 1: every MPConv's (forward hooks), the attention matmuls
# (2 c (HW)^2 per block) and the depthwise 2x2 resampling convs EDM2 implements down- and upsampling with
# (19,200 C: 4 per output pixel down, 4 per input pixel up), closed form 2,717,432 C^2 + 3,365,632 C.
NVLABS_MACS = {"edm2_img512_xs": 44_953_206_784, "edm2_img512_s": 100_821_614_592}
NVLABS_RESAMPLE_MACS = {"edm2_img512_xs": 2_457_600, "edm2_img512_s": 3_686_400}


@pytest.mark.parametrize("name", list(NVLABS_PARAMS))
def test_the_edm2_bases_have_nvlabs_parameter_count(name):
    with torch.device("meta"):
        model = build(BASES[name])
    assert n_params(model) == NVLABS_PARAMS[name]
    assert all(getattr(BASES[name], axis) == level for axis, level in EDM2_AXES.items())


@pytest.mark.parametrize("name", list(NVLABS_MACS))
def test_the_edm2_bases_multiply_adds_agree_with_nvlabs_within_one_percent(name):
    """Ours count the same convolutions, linears and attention matmuls; 2x2 average pooling and nearest
    upsampling, which EDM2 writes as depthwise convs, are memory-bound ops here and count zero."""
    torch.manual_seed(0)
    model = build(BASES[name]).eval()
    x, sigma = torch.randn(1, 4, 64, 64), torch.tensor([1.0])
    macs, _ = fvcore_forward_macs(model, x, sigma)
    flops, _ = flop_counter_flops(model, x, sigma, "forward")
    assert flops == 2 * macs
    assert macs == NVLABS_MACS[name] - NVLABS_RESAMPLE_MACS[name]
    assert abs(macs / NVLABS_MACS[name] - 1) < 0.01


# The element-wise ops of the EDM2 levels (weight, pixel and per-head normalisation, mp_silu, mp_sum, mp_cat,
# Fourier features, clipping, the ones channel): each counts zero for a stated reason, and one nothing classifies
# still has none (so the count fails on it, tests/measure/test_flops.py).
@pytest.mark.parametrize("op, reason", [
    ("aten::linalg_vector_norm", "reduction"), ("aten::div", "pointwise"), ("aten::mul", "pointwise"),
    ("aten::lerp", "pointwise"), ("aten::silu", "pointwise"), ("aten::cos", "pointwise"),
    ("aten::clamp", "pointwise"), ("aten::new_ones", "memory-bound"), ("aten::cdist", None),
])
def test_the_edm2_element_wise_ops_count_zero_for_a_stated_reason(op, reason):
    assert no_macs_reason(op) == reason


# --- combinations that cannot be built ------------------------------------------------------------------------
@pytest.mark.parametrize("levels, both", [
    (dict(layers="mp", upsample="conv_transpose"), ("layers='mp'", "upsample='conv_transpose'")),
    (dict(layers="mp_forced", checkpoint=True), ("layers='mp_forced'", "checkpoint=True")),
    (dict(normalization="pixel", time_injection="film"), ("time_injection='film'", "normalization='pixel'")),
    (dict(normalization="none", time_injection="film"), ("time_injection='film'", "normalization='none'")),
])
def test_a_combination_that_cannot_be_built_fails_naming_both_axes(levels, both):
    base = UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=16, ch_mult=(1, 2), attn_resolutions=(4,), norm_groups=8)
    with pytest.raises(ValueError) as err:
        base.replace(**levels)
    assert all(name in str(err.value) for name in both) and "valid:" in str(err.value)


class TransposedUpsample(Upsampler):
    """A user's own transposed-conv upsampler: what it builds with, not its name, decides where it is valid."""

    needs_parts = ("conv_transpose",)

    def __init__(self, channels: int, parts: Parts) -> None:
        super().__init__()
        self.conv = parts.conv_transpose(channels, channels, 4, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class NearestUpsample(Upsampler):
    def __init__(self, channels: int, parts: Parts) -> None:
        super().__init__()
        self.conv = parts.conv(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0))


@pytest.fixture
def plugin_upsamplers():
    UPSAMPLERS.register("my_transposed")(TransposedUpsample)
    UPSAMPLERS.register("my_nearest")(NearestUpsample)
    yield
    UPSAMPLERS.unregister("my_transposed")
    UPSAMPLERS.unregister("my_nearest")


def test_a_plugin_block_is_refused_by_the_parts_it_needs_not_by_its_name(plugin_upsamplers):
    base = UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=16, ch_mult=(1, 2), attn_resolutions=(4,), norm_groups=8)
    with pytest.raises(ValueError) as err:
        base.replace(layers="mp", upsample="my_transposed")
    head, valid = str(err.value).split("; valid: ")
    assert head == ("upsample='my_transposed' is invalid with layers='mp': it builds with a transposed convolution "
                    "(parts.conv_transpose), which layers='mp' leaves out")
    # other tests' plugin upsamplers may be registered in this process too: the list holds every one that fits
    upsamplers, layers = re.fullmatch(r"upsample one of (.+), or layers one of (.+)", valid).groups()
    assert {"nearest_conv", "my_nearest"} <= set(upsamplers.split(", "))
    assert not {"conv_transpose", "my_transposed"} & set(upsamplers.split(", "))
    assert layers == "standard, no_bias"
    accepted = base.replace(layers="mp", upsample="my_nearest")
    assert build(accepted)(torch.randn(1, 1, 8, 8), torch.ones(1)).shape == (1, 1, 8, 8)
    assert build(base.replace(upsample="my_transposed"))(torch.randn(1, 1, 8, 8), torch.ones(1)).shape == (1, 1, 8, 8)


def test_without_group_norm_the_groups_need_not_divide_the_channels():
    spec = UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=12, ch_mult=(1, 2), attn_resolutions=(4,), num_head_channels=4,
                    normalization="pixel")  # 32 groups: no divisor of 12 channels
    with pytest.raises(ValueError, match="norm_groups=32 does not divide"):
        spec.replace(normalization="group")
    assert build(spec)(torch.randn(1, 1, 8, 8), torch.ones(1)).shape == (1, 1, 8, 8)


def test_a_closed_list_axis_refuses_an_unknown_level():
    with pytest.raises(ValueError, match="layers='weight_norm' is invalid; valid: standard, no_bias, mp, mp_forced"):
        BASES["fmnist28"].replace(layers="weight_norm")


def test_layers_parts_keep_the_baseline_modules():
    parts = baseline_parts()
    assert type(parts.conv(3, 4, 3, padding=1)) is nn.Conv2d and type(parts.linear(3, 4)) is nn.Linear
    use_layers(parts, "no_bias")
    assert parts.conv(3, 4, 1).bias is None and parts.linear(3, 4).bias is None
