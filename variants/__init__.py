"""Interchangeable diffusion U-Net blocks and the builder that composes them from a spec."""
from .attention import ATTENTIONS, AttentionBlock
from .grid import DEFAULT_AXES, FASHION_MNIST_BASE, grid
from .registry import Registry
from .resnet import Downsample, ResnetBlock
from .spec import AXES, REGISTRIES, UNetSpec
from .time_injection import TIME_INJECTIONS, TimeInjection
from .unet import UNet, build
from .upsample import UPSAMPLERS, Upsampler

__all__ = [
    "ATTENTIONS", "AXES", "AttentionBlock", "DEFAULT_AXES", "Downsample", "FASHION_MNIST_BASE", "REGISTRIES",
    "Registry", "ResnetBlock", "TIME_INJECTIONS", "TimeInjection", "UNet", "UNetSpec", "UPSAMPLERS", "Upsampler",
    "build", "grid",
]
