"""The faster ways our blocks run (in-place activations without autograd, the CPU dropout mask) compute
exactly the function of the plain ones and keep what autograd and checkpointing rely on."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from variants import build
from variants.parts import SiLU
from variants.resnet import Dropout

from helpers import SMALL_SPECS


def test_silu_works_in_place_only_without_autograd():
    x = torch.randn(4, 8, requires_grad=True)
    y = SiLU()(x)
    assert y.data_ptr() != x.data_ptr()
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.autograd.grad(F.silu(x).sum(), x)[0])
    with torch.no_grad():
        z = x.detach().clone()
        expected = F.silu(z)
        out = SiLU()(z)
    assert out.data_ptr() == z.data_ptr() and torch.equal(out, expected)


@pytest.mark.parametrize("injection", ["additive", "film"])
def test_a_unet_gives_bitwise_the_same_output_with_and_without_autograd(injection):
    model = build(SMALL_SPECS["32x32x3"].replace(time_injection=injection)).eval()
    x, sigma = torch.randn(3, 3, 32, 32), torch.tensor([0.1, 1.0, 5.0])
    with torch.no_grad():
        fast = model(x, sigma)
    assert torch.equal(model(x, sigma).detach(), fast)


def test_dropout_keeps_each_element_with_probability_one_minus_p_and_rescales():
    torch.manual_seed(0)
    p, x = 0.3, torch.ones(200_000)
    out = Dropout(p).train()(x)
    kept = out != 0
    # Binomial(n, 1 - p): the kept count lies within 5 standard deviations of its mean
    n = x.numel()
    assert abs(kept.sum().item() - n * (1 - p)) < 5 * (n * p * (1 - p)) ** 0.5
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - p)))
    assert torch.equal(Dropout(p).eval()(x), x) and torch.equal(Dropout(0.0).train()(x), x)


def test_dropout_masks_follow_torchs_generator():
    x = torch.randn(3, 4, 5, 5)
    torch.manual_seed(11)
    a = Dropout(0.5).train()(x)
    torch.manual_seed(11)
    b = Dropout(0.5).train()(x)
    c = Dropout(0.5).train()(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def _saved_bytes(module: nn.Module, x: torch.Tensor) -> int:
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return sum(saved.values())


def test_dropout_saves_a_one_byte_mask_as_fused_cuda_dropout_does():
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    assert _saved_bytes(Dropout(0.1).train(), x) == x.numel()
    # torch's CPU dropout keeps a float32 noise tensor instead: 4 bytes per element
    assert _saved_bytes(nn.Dropout(0.1).train(), x) == 4 * x.numel()


def test_dropout_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(3)
    x = torch.randn(1000, requires_grad=True)
    out = Dropout(0.2).train()(x)
    out.sum().backward()
    torch.testing.assert_close(x.grad, (out != 0).float() / 0.8)
