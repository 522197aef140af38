"""Named base configurations: the U-Nets a sweep varies (``--base NAME``, ``variants.BASES["NAME"]``)."""
from __future__ import annotations

from .spec import UNetSpec

BASES: dict[str, UNetSpec] = {
    # an 8x8 U-Net for quick cost sweeps
    "digits8": UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=32, ch_mult=(1, 2), attn_resolutions=(4,), norm_groups=8),
    # the network the quick quality preset trains on the embedded 8x8 digits: 16 channels, one block per level
    "digits8_ch16": UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=16, ch_mult=(1, 2), num_res_blocks=1,
                             attn_resolutions=(4,), dropout=0.0, norm_groups=8),
    # the network the smoke quality preset trains (CI): half the channels, no attention but the middle's
    "digits8_ch8": UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=8, ch_mult=(1, 2), num_res_blocks=1,
                            attn_resolutions=(), dropout=0.0, norm_groups=8),
    # smalldiffusion's FashionMNIST U-Net, 4,424,833 parameters: the default base of the cost sweep
    "fmnist28": UNetSpec(in_dim=28, in_ch=1, out_ch=1, ch=64, ch_mult=(1, 1, 2), attn_resolutions=(14,)),
    # smalldiffusion's U-Net at the CIFAR-10 shape
    "cifar32": UNetSpec(in_dim=32, in_ch=3, out_ch=3, ch=128, ch_mult=(1, 2, 2, 2), attn_resolutions=(16,)),
    # Ho et al.'s DDPM CIFAR-10 model, as diffusers' UNet2DModel builds it for google/ddpm-cifar10-32:
    # 35,746,307 parameters
    "ddpm_cifar10": UNetSpec(in_dim=32, in_ch=3, out_ch=3, ch=128, ch_mult=(1, 2, 2, 2), attn_resolutions=(16,),
                             attention="ddpm", noise_embedding="ddpm"),
}
