"""Interchangeable diffusion U-Net blocks and the builder that composes them from a spec."""
from .attention import ATTENTIONS, AttentionBlock
from .axes import AXES, Axis, add_axis, default_grid, get_axis, parse_axis
from .grid import DESIGNS, FASHION_MNIST_BASE, grid
from .registry import Registry
from .resnet import Downsample, ResnetBlock
from .spec import UNetSpec
from .time_injection import TIME_INJECTIONS, TimeInjection
from .unet import UNet, build
from .upsample import UPSAMPLERS, Upsampler

__all__ = [
    "ATTENTIONS", "AXES", "AttentionBlock", "Axis", "DESIGNS", "Downsample", "FASHION_MNIST_BASE", "Registry",
    "ResnetBlock", "TIME_INJECTIONS", "TimeInjection", "UNet", "UNetSpec", "UPSAMPLERS", "Upsampler", "add_axis",
    "build", "default_grid", "get_axis", "grid", "parse_axis",
]
