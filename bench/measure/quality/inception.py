"""Optional real FID: torchmetrics' FrechetInceptionDistance with torch-fidelity's Inception-v3 (2048 features).

For users with internet on FashionMNIST or CIFAR-10. It needs the torch-fidelity package and a one-time
weights download; offline or without the package it fails before any training, saying what to do.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import Tensor

from bench.schema import SAMPLE, Measurement

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's Inception-v3, via torch.hub
INCEPTION_METHOD = "torchmetrics.FrechetInceptionDistance(feature=2048, torch-fidelity inception-v3-compat)"


class InceptionUnavailable(RuntimeError):
    pass


def require_inception() -> None:
    """Raise InceptionUnavailable with a fix when Inception FID cannot run here; build it once otherwise
    (which downloads the weights to torch.hub's cache when they are not there yet)."""
    if importlib.util.find_spec("torch_fidelity") is None:
        raise InceptionUnavailable(
            "inception_fid=True needs the torch-fidelity package: `pip install torch-fidelity` "
            "(or `pip install 'torchmetrics[image]'`); or set inception_fid=False."
        )
    _metric()


def inception_fd(images: Tensor, reference: Tensor, device: str | torch.device = "cpu") -> float:
    """FID between two image sets in [-1, 1], (N, 1 or 3, H, W); grey images are repeated to RGB."""
    metric = _metric().to(device)
    for x, real in ((reference, True), (images, False)):
        for batch in x.split(200):
            rgb = ((batch.clamp(-1, 1) + 1) / 2).expand(-1, 3, -1, -1)  # normalize=True takes [0, 1]
            metric.update(rgb.to(device), real=real)
    return metric.compute().item()


def inception_rows(images: Tensor, reference: Tensor, reference_split: str, seed: int,
                   device: str | torch.device) -> list[Measurement]:
    return [Measurement(SAMPLE, "inception_fd", inception_fd(images, reference, device), "squared_feature",
                        INCEPTION_METHOD, seed=seed, n=len(images), message=f"reference: {reference_split}")]


def _metric():
    from torchmetrics.image.fid import FrechetInceptionDistance

    weights = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE
    try:
        return FrechetInceptionDistance(feature=2048, normalize=True)
    except (ModuleNotFoundError, ImportError) as err:
        raise InceptionUnavailable(f"Inception FID: {err}. Install torch-fidelity: `pip install torch-fidelity`.") \
            from err
    except Exception as err:  # a failed download surfaces as URLError, OSError, HTTPError, ...
        raise InceptionUnavailable(
            f"Inception FID could not load its weights ({type(err).__name__}: {err}). It downloads {WEIGHTS_FILE} "
            f"from torch-fidelity's GitHub releases to {weights} on first use: run once with internet, or copy "
            "the file there; or set inception_fid=False."
        ) from err
