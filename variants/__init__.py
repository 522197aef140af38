"""Interchangeable diffusion U-Net blocks and the builder that composes them from a spec."""
from .assembly import baseline_parts, parts_for_spec
from .attention import ATTENTIONS, AttentionBlock
from .axes import AXES, Axis, add_axis, default_grid, get_axis, parse_axis
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
    "baseline_parts", "build", "default_grid", "get_axis", "parse_axis", "parts_for_spec",
]


def __getattr__(name: str) -> object:
    # Sweep designs live with the planning stage (bench.plan.designs); these two names stay importable from here
    # for code written before they moved, and are imported only when asked for, so importing the blocks and the
    # builder never imports bench.
    if name in ("grid", "DESIGNS"):
        from bench.plan import designs
        return getattr(designs, name)
    raise AttributeError(f"module 'variants' has no attribute {name!r}")
