"""Variants that fail on purpose, registered from outside the package the way a user's plugin would be
(``python -m bench run --import faulty_variants``): they let tests inject failures into a sweep."""
import torch
from torch import nn

from variants import UPSAMPLERS, Parts, Upsampler


@UPSAMPLERS.register("exploding")
class ExplodingUpsample(Upsampler):
    def __init__(self, channels: int, parts: Parts) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("injected failure in the exploding upsampler")


@UPSAMPLERS.register("out_of_memory")
class OutOfMemoryUpsample(ExplodingUpsample):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 EiB (injected)")
