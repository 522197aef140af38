"""Interchangeable diffusion U-Net blocks and the builder that composes them from a spec."""
from .assembly import baseline_parts, parts_for_spec
from .attention import ATTENTIONS, AttentionBlock
from .axes import AXES, Axis, add_axis, default_grid, get_axis, parse_axis, value_text
from .bases import BASES
from .noise_embedding import NOISE_EMBEDDINGS, NoiseEmbedding
from .parts import Parts
from .registry import Registry
from .resnet import Downsample, ResnetBlock
from .spec import UNetSpec
from .time_injection import TIME_INJECTIONS, TimeInjection
from .unet import UNet, build
from .upsample import UPSAMPLERS, Upsampler

__all__ = [
    "ATTENTIONS", "AXES", "AttentionBlock", "Axis", "BASES", "Downsample",
    "NOISE_EMBEDDINGS", "NoiseEmbedding", "Parts", "Registry",
    "ResnetBlock", "TIME_INJECTIONS", "TimeInjection", "UNet", "UNetSpec", "UPSAMPLERS", "Upsampler", "add_axis",
    "baseline_parts", "build", "default_grid", "get_axis", "parse_axis", "parts_for_spec", "value_text",
]

