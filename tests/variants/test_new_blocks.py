"""The noise embeddings, DDPM's attention block, the rescaled residual sum and the resampling ResnetBlock:
shapes, hand-counted parameters, and outputs equal to their references with the same weights."""
import math

import pytest
import torch
from smalldiffusion import SigmaEmbedderSinCos
from torch import nn

from variants import ATTENTIONS, Parts, ResnetBlock, baseline_parts
from variants.attention import DDPMAttention
from variants.noise_embedding import (
    NOISE_EMBEDDINGS,
    DDPMNoiseEmbedding,
    FourierNoiseEmbedding,
    NoiseEmbedding,
    SinCosNoiseEmbedding,
)
from variants.parts import rescaled_sum
from variants.resnet import ResampleResnetBlock
from variants.time_injection import AdditiveTimeInjection, FiLMTimeInjection

from helpers import n_params

CH, TEMB = 16, 64
PARTS = baseline_parts()


def parts(groups: int, injection: type[nn.Module], skip_rescale: bool = False) -> Parts:
    """The baseline's parts with ``groups`` GroupNorm groups, the time injection ``injection`` and, if asked, the
    1/sqrt(2) residual join."""
    out = baseline_parts(groups)
    out.time_injection = injection
    if skip_rescale:
        out.residual_join = rescaled_sum
    return out
SIGMA = torch.tensor([0.002, 0.05, 1.0, 80.0])  # EDM's range, ends included


def copy_params(dst: nn.Module, src: nn.Module) -> None:
    """Copy parameter for parameter, in creation order; linear weights fill 1x1 convs."""
    with torch.no_grad():
        for mine, ref in zip(dst.parameters(), src.parameters(), strict=True):
            mine.copy_(ref.reshape(mine.shape))


# --- noise embeddings ------------------------------------------------------------------------------
def test_the_embeddings_are_registered_and_map_sigma_to_the_embedding_width():
    assert NOISE_EMBEDDINGS.names() == ("sincos", "ddpm", "fourier", "mp_fourier")
    for name in NOISE_EMBEDDINGS.names():
        embed = NOISE_EMBEDDINGS.get(name)(CH, TEMB, PARTS)
        assert isinstance(embed, NoiseEmbedding)
        out = embed(SIGMA)
        assert out.shape == (len(SIGMA), TEMB)
        assert not torch.allclose(out[0], out[-1])  # it does depend on sigma


def test_embedding_parameter_counts():
    mlp = TEMB * TEMB + TEMB  # the second Linear, the same in all three
    assert n_params(SinCosNoiseEmbedding(CH, TEMB, PARTS)) == 2 * TEMB + TEMB + mlp
    assert n_params(DDPMNoiseEmbedding(CH, TEMB, PARTS)) == CH * TEMB + TEMB + mlp
    assert n_params(FourierNoiseEmbedding(CH, TEMB, PARTS)) == CH * TEMB + TEMB + mlp  # the frequencies are no parameter


def test_sincos_is_smalldiffusions_embedder_with_the_same_state_dict():
    ours, theirs = SinCosNoiseEmbedding(CH, TEMB, PARTS), SigmaEmbedderSinCos(TEMB)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight",
                                                                      "mlp.2.bias"]
    ours.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(ours(SIGMA), theirs(len(SIGMA), SIGMA), rtol=0, atol=0)


def test_ddpm_embedding_is_diffusers_ddpm_cifar10_embedding_of_edms_c_noise():
    from diffusers.models.embeddings import TimestepEmbedding, Timesteps

    ours = DDPMNoiseEmbedding(CH, TEMB, PARTS)
    proj, mlp = Timesteps(CH, flip_sin_to_cos=False, downscale_freq_shift=1), TimestepEmbedding(CH, TEMB)
    copy_params(ours, mlp)
    c_noise = SIGMA.log() / 4
    torch.testing.assert_close(ours(SIGMA), mlp(proj(c_noise)))
    # not a timestep: feeding ln(sigma) unscaled gives another embedding
    assert not torch.allclose(ours(SIGMA), mlp(proj(SIGMA.log())))


def test_fourier_embedding_matches_the_formula_and_ncsnpp_gaussian_fourier_projection():
    from diffusers.models.embeddings import GaussianFourierProjection

    torch.manual_seed(3)
    ours = FourierNoiseEmbedding(CH, TEMB, PARTS)
    torch.manual_seed(3)
    torch.testing.assert_close(ours.freqs, torch.randn(CH // 2) * 16, rtol=0, atol=0)  # drawn first, at init

    angle = 2 * math.pi * ours.freqs[None, :] * SIGMA.log()[:, None]
    torch.testing.assert_close(ours(SIGMA), ours.mlp(torch.cat([angle.sin(), angle.cos()], dim=1)))

    ncsnpp = GaussianFourierProjection(embedding_size=CH // 2, scale=16, log=True, flip_sin_to_cos=False)
    ncsnpp.weight.data.copy_(ours.freqs)
    torch.testing.assert_close(ours(SIGMA), ours.mlp(ncsnpp(SIGMA)))


def test_fourier_frequencies_are_a_saved_buffer_and_ddpm_frequencies_are_not_saved():
    fourier, ddpm = FourierNoiseEmbedding(CH, TEMB, PARTS), DDPMNoiseEmbedding(CH, TEMB, PARTS)
    assert "freqs" in fourier.state_dict() and "freqs" not in dict(fourier.named_parameters())
    assert "freqs" not in ddpm.state_dict()
    other = FourierNoiseEmbedding(CH, TEMB, PARTS)
    assert not torch.equal(other.freqs, fourier.freqs)  # a fresh draw ...
    other.load_state_dict(fourier.state_dict())
    torch.testing.assert_close(other(SIGMA), fourier(SIGMA), rtol=0, atol=0)  # ... that a checkpoint restores


@pytest.mark.parametrize("cls, ch", [(DDPMNoiseEmbedding, 15), (DDPMNoiseEmbedding, 2), (FourierNoiseEmbedding, 7)])
def test_an_odd_or_too_small_channel_count_is_refused(cls, ch):
    with pytest.raises(ValueError, match=f"ch={ch} is invalid for this noise embedding; valid: an even number >="):
        cls(ch, TEMB, PARTS)


# --- DDPM attention --------------------------------------------------------------------------------
def test_ddpm_attention_is_registered_and_has_four_biased_projections():
    assert ATTENTIONS.get("ddpm") is DDPMAttention
    for c in (8, 32):
        block = DDPMAttention(c, 1, baseline_parts(4))
        assert n_params(block) == 4 * c * c + 4 * c + 2 * c
        assert n_params(block) == n_params(ATTENTIONS.get("sdpa")(c, 1, baseline_parts(4))) - c * c + 2 * c
    assert DDPMAttention(32, 4, baseline_parts(8))(torch.randn(2, 32, 3, 5)).shape == (2, 32, 3, 5)


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_ddpm_attention_matches_diffusers_attention_in_attn_down_block(heads):
    from diffusers.models.unets.unet_2d_blocks import AttnDownBlock2D

    channels, groups = 32, 8
    ours = DDPMAttention(channels, heads, baseline_parts(groups))
    theirs = AttnDownBlock2D(in_channels=channels, out_channels=channels, temb_channels=8, num_layers=1,
                             resnet_groups=groups, attention_head_dim=channels // heads).attentions[0]
    assert theirs.heads == heads and theirs.group_norm.eps == ours.norm.eps
    copy_params(ours, theirs)  # group_norm, to_q, to_k, to_v, to_out[0]
    x = torch.randn(2, channels, 4, 6)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


# --- ResnetBlock: rescaled residual sum and resampling ------------------------------------------
def resnet_params(in_ch: int, out_ch: int, temb_ch: int, proj_width: int) -> int:
    """norm1, conv1, time projection, norm2, conv2 and the 1x1 shortcut when the channels change."""
    shortcut = in_ch * out_ch + out_ch if in_ch != out_ch else 0
    return (2 * in_ch + 9 * in_ch * out_ch + out_ch + temb_ch * proj_width + proj_width + 2 * out_ch
            + 9 * out_ch * out_ch + out_ch + shortcut)


@pytest.mark.parametrize("in_ch, out_ch", [(8, 8), (8, 12)])
def test_default_block_is_the_unchanged_formula(in_ch, out_ch):
    block = ResnetBlock(in_ch, out_ch, 16, 0.0, parts(4, AdditiveTimeInjection)).eval()
    x, temb = torch.randn(2, in_ch, 5, 5), torch.randn(2, 16)
    h = block.conv1(nn.functional.silu(block.norm1(x)))
    h = block.norm2(h + block.time.proj(temb)[:, :, None, None])
    expected = block.conv2(nn.functional.silu(h)) + block.shortcut(x)
    torch.testing.assert_close(block(x, temb), expected, rtol=0, atol=0)


@pytest.mark.parametrize("in_ch, out_ch", [(8, 8), (8, 12)])
def test_skip_rescale_divides_the_residual_sum_by_sqrt_two(in_ch, out_ch):
    plain = ResnetBlock(in_ch, out_ch, 16, 0.0, parts(4, AdditiveTimeInjection)).eval()
    rescaled = ResnetBlock(in_ch, out_ch, 16, 0.0, parts(4, AdditiveTimeInjection, skip_rescale=True)).eval()
    rescaled.load_state_dict(plain.state_dict())  # same parameters, same names
    x, temb = torch.randn(2, in_ch, 5, 5), torch.randn(2, 16)
    torch.testing.assert_close(rescaled(x, temb), plain(x, temb) / math.sqrt(2))
    with torch.no_grad():  # the in-place inference path too
        torch.testing.assert_close(rescaled(x, temb), plain(x, temb) / math.sqrt(2))


def test_skip_rescale_is_diffusers_output_scale_factor_sqrt_two():
    from diffusers.models.resnet import ResnetBlock2D

    ours = ResnetBlock(8, 12, 16, 0.0, parts(4, AdditiveTimeInjection, skip_rescale=True)).eval()
    theirs = ResnetBlock2D(in_channels=8, out_channels=12, temb_channels=16, groups=4,
                           output_scale_factor=math.sqrt(2)).eval()
    copy_params(ours, theirs)
    x, temb = torch.randn(2, 8, 5, 5), torch.randn(2, 16)
    torch.testing.assert_close(ours(x, temb), theirs(x, temb))


@pytest.mark.parametrize("resample, size, out_size", [("down", 6, 3), ("down", 7, 3), ("up", 3, 6)])
def test_resample_block_shapes_and_parameters(resample, size, out_size):
    for injection, width in [(AdditiveTimeInjection, 12), (FiLMTimeInjection, 24)]:
        for in_ch in (8, 12):
            block = ResampleResnetBlock(in_ch, 12, 16, 0.1, parts(4, injection), resample=resample)
            assert isinstance(block, ResnetBlock)  # so cost breakdowns count it as a resnet block
            assert n_params(block) == resnet_params(in_ch, 12, 16, width)
            assert block(torch.randn(2, in_ch, size, size), torch.randn(2, 16)).shape == (2, 12, out_size, out_size)


@pytest.mark.parametrize("resample", ["down", "up"])
@pytest.mark.parametrize("in_ch, out_ch", [(8, 8), (8, 12)])
@pytest.mark.parametrize("skip_rescale", [False, True])
def test_resample_block_matches_diffusers_resnet_block_2d(resample, in_ch, out_ch, skip_rescale):
    from diffusers.models.resnet import ResnetBlock2D

    ours = ResampleResnetBlock(in_ch, out_ch, 16, 0.0, parts(4, AdditiveTimeInjection, skip_rescale),
                               resample=resample).eval()
    theirs = ResnetBlock2D(in_channels=in_ch, out_channels=out_ch, temb_channels=16, groups=4,
                           output_scale_factor=math.sqrt(2) if skip_rescale else 1.0,
                           up=resample == "up", down=resample == "down").eval()
    copy_params(ours, theirs)  # norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut
    x, temb = torch.randn(2, in_ch, 6, 6), torch.randn(2, 16)
    torch.testing.assert_close(ours(x, temb), theirs(x, temb))


def test_resample_block_resamples_before_conv1_and_on_the_shortcut():
    """A hand composition, guided-diffusion's order: norm1 -> SiLU -> resample -> conv1; resample(x) -> shortcut."""
    block = ResampleResnetBlock(8, 12, 16, 0.0, parts(4, FiLMTimeInjection), resample="down").eval()
    x, temb = torch.randn(2, 8, 6, 6), torch.randn(2, 16)
    pool = nn.functional.avg_pool2d
    h = block.conv1(pool(nn.functional.silu(block.norm1(x)), 2))
    scale, shift = block.time.proj(temb)[:, :, None, None].chunk(2, dim=1)
    h = block.conv2(nn.functional.silu(block.norm2(h) * (1 + scale) + shift))
    torch.testing.assert_close(block(x, temb), h + block.shortcut(pool(x, 2)))


def test_an_unknown_resample_is_refused():
    with pytest.raises(ValueError, match="resample='sideways' is invalid; valid: 'down' or 'up'"):
        ResampleResnetBlock(8, 8, 16, 0.0, parts(4, AdditiveTimeInjection), resample="sideways")
