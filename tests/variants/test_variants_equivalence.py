"""Each axis does what it claims, and the baseline is smalldiffusion's Unet."""
import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from smalldiffusion import Unet
from smalldiffusion.model_unet import AttnBlock
from torch import nn

from variants import Parts, ResnetBlock, UNetSpec, UPSAMPLERS, Upsampler, baseline_parts, build
from variants.attention import SDPAAttention
from variants.time_injection import AdditiveTimeInjection, FiLMTimeInjection
from variants.upsample import ConvTransposeUpsample

from helpers import SMALL_SPECS, n_params


SMALLDIFFUSION_CONFIGS = [
    dict(in_dim=28, in_ch=1, out_ch=1, ch=64, ch_mult=(1, 1, 2), attn_resolutions=(14,)),
    dict(in_dim=32, in_ch=3, out_ch=3, ch=32, ch_mult=(1, 2, 2, 2), attn_resolutions=(16,), num_res_blocks=1),
    dict(in_dim=16, in_ch=2, out_ch=1, ch=32, ch_mult=(1, 2), attn_resolutions=(16, 8), dropout=0.0),
]


def test_fashion_mnist_baseline_has_smalldiffusions_parameter_count():
    assert n_params(build(UNetSpec(**SMALLDIFFUSION_CONFIGS[0]))) == 4_424_833


@pytest.mark.parametrize("config", SMALLDIFFUSION_CONFIGS, ids=lambda c: f"{c['in_dim']}x{c['in_ch']}-ch{c['ch']}")
def test_baseline_is_smalldiffusion_unet_parameter_for_parameter_and_output_for_output(config):
    ours = build(UNetSpec(**config)).eval()
    theirs = Unet(**config).eval()
    assert n_params(ours) == n_params(theirs)
    pairs = list(zip(ours.parameters(), theirs.parameters(), strict=True))
    with torch.no_grad():
        for mine, ref in pairs:
            assert mine.shape == ref.shape
            mine.copy_(ref)
    x = torch.randn(3, config["in_ch"], config["in_dim"], config["in_dim"])
    sigma = torch.tensor([0.05, 1.0, 8.0])
    torch.testing.assert_close(ours(x, sigma), theirs(x, sigma), rtol=0, atol=0)


@pytest.mark.parametrize("cfg", list(SMALL_SPECS))
def test_checkpointing_gives_the_same_outputs_and_gradients_with_dropout_in_train_mode(cfg):
    spec = SMALL_SPECS[cfg].replace(dropout=0.3, time_injection="film", attn_heads=4)
    plain, ckpt = build(spec), build(spec.replace(checkpoint=True))
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(3, spec.in_ch, spec.in_dim, spec.in_dim)
    sigma = torch.rand(3) + 0.1

    def loss_and_grads(model):
        torch.manual_seed(123)  # same dropout masks; checkpoint must replay them in the recompute
        out = model.train()(x, sigma)
        loss = out.square().mean()
        loss.backward()
        return out.detach(), loss.detach(), [p.grad for p in model.parameters()]

    out_a, loss_a, grads_a = loss_and_grads(plain)
    out_b, loss_b, grads_b = loss_and_grads(ckpt)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=1e-6)
    torch.testing.assert_close(loss_a, loss_b, rtol=0, atol=1e-6)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=5e-6)
    # Dropout really was active: another seed gives another output.
    torch.manual_seed(7)
    assert not torch.allclose(plain(x, sigma), out_a)


def test_checkpointing_is_active_only_when_gradients_are_enabled(monkeypatch):
    import variants.unet as unet_module

    calls = []
    real = unet_module.checkpoint
    monkeypatch.setattr(unet_module, "checkpoint", lambda *a, **k: calls.append(k) or real(*a, **k))
    model = build(SMALL_SPECS["8x8x1"].replace(checkpoint=True))
    x, sigma = torch.randn(2, 1, 8, 8), torch.tensor(1.0)
    with torch.no_grad():
        model(x, sigma)
    assert calls == []
    model(x, sigma).sum().backward()
    # every down/up stage and the middle: 2 + (1 middle) + 2*3 up stages
    assert len(calls) == 2 * 2 + 1 + 2 * 3
    assert all(k == {"use_reentrant": False} for k in calls)


def test_film_projects_twice_the_channels_and_modulates_after_the_norm():
    additive, film = AdditiveTimeInjection(16, 8, baseline_parts()), FiLMTimeInjection(16, 8, baseline_parts())
    assert additive.proj[-1].out_features == 8 and film.proj[-1].out_features == 16
    norm = nn.GroupNorm(4, 8, affine=False)
    h, temb = torch.randn(2, 8, 5, 5), torch.randn(2, 16)
    scale, shift = film.proj(temb).chunk(2, dim=1)
    expected = norm(h) * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
    torch.testing.assert_close(film(norm(h), temb), expected)
    # h is the block's own tensor, which an injection may overwrite: hand the call its own copy
    torch.testing.assert_close(norm(additive(h.clone(), temb)), norm(h + additive.proj(temb)[:, :, None, None]))
    # In a whole U-Net, FiLM adds one more (temb_ch -> C) projection, weights and bias, per ResnetBlock.
    spec = SMALL_SPECS["8x8x1"]
    extra = n_params(build(spec.replace(time_injection="film"))) - n_params(build(spec))
    block_channels = sum(m.conv2.out_channels for m in build(spec).modules() if isinstance(m, ResnetBlock))
    assert extra == block_channels * (spec.ch * spec.embed_ch_mult + 1)


def test_one_head_matches_smalldiffusions_single_head_attention_block():
    ours, theirs = SDPAAttention(32, 1, baseline_parts(32)), AttnBlock(32)
    for mine, ref in zip(ours.parameters(), theirs.parameters(), strict=True):
        mine.data.copy_(ref.data)
    x = torch.randn(2, 32, 6, 6)
    torch.testing.assert_close(ours(x), theirs(x, None))


@pytest.mark.parametrize("heads", [1, 2, 4, 8])
def test_multi_head_attention_matches_a_per_head_reference(heads):
    block = SDPAAttention(32, heads, baseline_parts(8))
    x = torch.randn(2, 32, 4, 4)
    tokens = rearrange(block.norm(x), "b c h w -> b (h w) c")
    q, k, v = block.qkv(tokens).chunk(3, dim=-1)
    outs = []
    for qh, kh, vh in zip(q.chunk(heads, -1), k.chunk(heads, -1), v.chunk(heads, -1)):
        weights = F.softmax(qh @ kh.transpose(1, 2) / qh.shape[-1] ** 0.5, dim=-1)
        outs.append(weights @ vh)
    out = rearrange(block.proj(torch.cat(outs, dim=-1)), "b (h w) c -> b c h w", h=4)
    torch.testing.assert_close(block(x), x + block.proj_out(out), rtol=1e-5, atol=1e-5)


def test_heads_change_neither_parameters_nor_the_function_at_one_head():
    spec = SMALL_SPECS["8x8x1"]
    assert n_params(build(spec)) == n_params(build(spec.replace(attn_heads=4)))


@pytest.mark.parametrize("size", [1, 4, 7])
def test_conv_transpose_upsampling_doubles_height_and_width_exactly(size):
    up = ConvTransposeUpsample(8, baseline_parts())
    assert up(torch.randn(2, 8, size, size + 1)).shape == (2, 8, 2 * size, 2 * size + 2)
    assert UPSAMPLERS.get("nearest_conv")(8, baseline_parts())(torch.randn(1, 8, size, size)).shape == (1, 8, 2 * size, 2 * size)


def test_a_new_upsampler_is_one_class_and_one_registration():
    @UPSAMPLERS.register("bilinear_conv")
    class BilinearConvUpsample(Upsampler):
        def __init__(self, channels: int, parts: Parts) -> None:
            super().__init__()
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

        def forward(self, x):
            return self.conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))

    try:
        spec = SMALL_SPECS["32x32x3"].replace(upsample="bilinear_conv")
        model = build(spec)
        assert sum(isinstance(m, BilinearConvUpsample) for m in model.modules()) == 2
        assert model(torch.randn(1, 3, 32, 32), torch.tensor(1.0)).shape == (1, 3, 32, 32)
        assert spec.name.startswith("bilinear_conv+")
    finally:
        UPSAMPLERS.unregister("bilinear_conv")
    with pytest.raises(ValueError, match="upsample='bilinear_conv' is not a registered variant"):
        build(spec)


def test_registering_a_name_twice_for_another_class_is_refused():
    with pytest.raises(ValueError, match="'nearest_conv' is already registered"):
        UPSAMPLERS.register("nearest_conv")(type("Other", (Upsampler,), {}))
