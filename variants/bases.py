"""Named base configurations: the U-Nets a sweep varies (``--base NAME``, ``variants.BASES["NAME"]``)."""
from __future__ import annotations

from .spec import UNetSpec

# Every EDM2 axis at its EDM2 level (Karras et al. 2024, config G; NVlabs/edm2 training/networks_edm2.py).
EDM2_AXES = dict(time_injection="scale_gain", num_head_channels=64, attention="cosine", noise_embedding="mp_fourier",
                 resblock_updown=True, residual_join="mp_sum", normalization="pixel", layers="mp_forced",
                 act="mp_silu", skip_join="mp_cat", block_form="edm2", ones_channel=True, out_gain=True,
                 clip_act=True)


def edm2_unet(ch: int) -> UNetSpec:
    """EDM2's unconditional U-Net at ImageNet-512's latent shape 64x64x4 (NVlabs' ``UNet(img_resolution=64,
    img_channels=4, label_dim=0, model_channels=ch)``): widths ch x (1, 2, 3, 4), 3 blocks per level, attention
    at 16 and 8 with 64 channels per head, a 4*ch embedding, no dropout (the XS and S presets')."""
    return UNetSpec(in_dim=64, in_ch=4, out_ch=4, ch=ch, ch_mult=(1, 2, 3, 4), embed_ch_mult=4, num_res_blocks=3,
                    dropout=0.0, attn_resolutions=(16, 8), **EDM2_AXES)


BASES: dict[str, UNetSpec] = {
    # an 8x8 U-Net for quick cost sweeps
    "digits8": UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=32, ch_mult=(1, 2), attn_resolutions=(4,), norm_groups=8),
    # the network the quick quality preset trains on the embedded 8x8 digits: 16 channels, one block per level
    "digits8_ch16": UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=16, ch_mult=(1, 2), num_res_blocks=1,
                             attn_resolutions=(4,), dropout=0.0, norm_groups=8),
    # the second scale of quality (the quick_ch32 preset): twice digits8_ch16's width and a 5x-wide noise embedding,
    # 736,033 parameters, 4.09x digits8_ch16's 179,793
    "digits8_ch32": UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=32, ch_mult=(1, 2), embed_ch_mult=5, num_res_blocks=1,
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
    # EDM2-XS and EDM2-S (Karras et al. 2024, Table 2) without the class embedding: NVlabs' 124,201,125 and
    # 279,444,709 parameters
    "edm2_img512_xs": edm2_unet(128),
    "edm2_img512_s": edm2_unet(192),
}
