"""smalldiffusion's ``ModelMixin`` and ``SigmaEmbedderSinCos``, re-implemented line for line.

They mirror ``smalldiffusion.model`` exactly (same methods, arguments, parameter names, module order and
arithmetic, so the same outputs bit for bit; ``tests/variants/test_smalldiffusion_mirror.py`` checks them against the
installed package) and exist so that building a U-Net never imports smalldiffusion: its package imports its
data module, which imports torchvision (and with it torch._dynamo), a second or more in every process that
only plans, builds or times a model. Only the quality cells, which train and sample with smalldiffusion's
schedule and sampler, import it.
"""
from __future__ import annotations

import torch
from torch import nn


class ModelMixin:
    """smalldiffusion's model protocol: ``input_dims``, ``rand_input``, ``get_loss``, ``predict_eps`` (and CFG)."""

    def rand_input(self, batchsize):
        assert hasattr(self, "input_dims"), 'Model must have "input_dims" attribute!'
        return torch.randn((batchsize,) + self.input_dims)

    # Predicts eps; a subclass overrides these to predict, say, x0
    def get_loss(self, x0, sigma, eps, cond=None, loss=nn.MSELoss):
        return loss()(eps, self(x0 + sigma * eps, sigma, cond=cond))

    def predict_eps(self, x, sigma, cond=None):
        return self(x, sigma, cond=cond)

    def predict_eps_cfg(self, x, sigma, cond, cfg_scale):
        if cond is None or cfg_scale == 0:
            return self.predict_eps(x, sigma, cond=cond)
        assert sigma.shape == tuple(), "CFG sampling only supports singleton sigma!"
        uncond = torch.full_like(cond, self.cond_embed.null_cond)  # (B,)
        eps_cond, eps_uncond = self.predict_eps(                     # (B,), (B,)
            torch.cat([x, x]), sigma, torch.cat([cond, uncond])      # (2B,)
        ).chunk(2)
        return eps_cond + cfg_scale * (eps_cond - eps_uncond)


def get_sigma_embeds(batches, sigma, scaling_factor=0.5, log_scale=True):
    """(B, 2): sin and cos of ``scaling_factor * ln(sigma)``; a scalar sigma is repeated ``batches`` times."""
    if sigma.shape == torch.Size([]):
        sigma = sigma.unsqueeze(0).repeat(batches)
    else:
        assert sigma.shape == (batches,), "sigma.shape == [] or [batches]!"
    if log_scale:
        sigma = torch.log(sigma)
    s = sigma.unsqueeze(1) * scaling_factor
    return torch.cat([torch.sin(s), torch.cos(s)], dim=1)


class SigmaEmbedderSinCos(nn.Module):
    """``forward(batches, sigma)``: ``get_sigma_embeds`` then Linear(2, D) -> SiLU -> Linear(D, D), as ``mlp``."""

    def __init__(self, hidden_size, scaling_factor=0.5, log_scale=True):
        super().__init__()
        self.scaling_factor = scaling_factor
        self.log_scale = log_scale
        self.mlp = nn.Sequential(
            nn.Linear(2, hidden_size, bias=True),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size, bias=True),
        )

    def forward(self, batches, sigma):
        sig_embed = get_sigma_embeds(batches, sigma, self.scaling_factor, self.log_scale)  # (B, 2)
        return self.mlp(sig_embed)                                                         # (B, D)
