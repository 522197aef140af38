"""variants' mirror of smalldiffusion's ``ModelMixin`` and ``SigmaEmbedderSinCos`` is smalldiffusion's, bit for bit;
and neither building a model nor starting the CLI imports smalldiffusion, torchvision or the report's libraries."""
import subprocess
import sys

import pytest
import smalldiffusion
import torch
from torch import nn

from variants import smalldiffusion_mirror as mirror

from helpers import ROOT

SIGMAS = [torch.tensor([0.01, 0.3, 1.0, 7.5, 80.0]), torch.tensor(2.5)]  # a batch of sigmas, and one for the batch


@pytest.mark.parametrize("kwargs", [{}, {"scaling_factor": 0.25}, {"log_scale": False}, {"scaling_factor": 3.0,
                                                                                           "log_scale": False}])
@pytest.mark.parametrize("sigma", SIGMAS, ids=["batch", "scalar"])
def test_sigma_embedder_initialises_and_embeds_as_smalldiffusions(kwargs, sigma):
    torch.manual_seed(7)
    theirs = smalldiffusion.SigmaEmbedderSinCos(24, **kwargs)
    torch.manual_seed(7)
    ours = mirror.SigmaEmbedderSinCos(24, **kwargs)
    assert str(ours) == str(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight",
                                                                      "mlp.2.bias"]
    for name, value in theirs.state_dict().items():  # the same draws, in the same order
        torch.testing.assert_close(ours.state_dict()[name], value, rtol=0, atol=0)
    torch.testing.assert_close(ours(5, sigma), theirs(5, sigma), rtol=0, atol=0)
    torch.testing.assert_close(mirror.get_sigma_embeds(5, sigma, **kwargs),
                               smalldiffusion.get_sigma_embeds(5, sigma, **kwargs), rtol=0, atol=0)


def test_sigma_embedder_rejects_a_wrong_batch_as_smalldiffusions():
    for module in (mirror, smalldiffusion):
        with pytest.raises(AssertionError, match=r"sigma.shape == \[\] or \[batches\]"):
            module.SigmaEmbedderSinCos(8)(3, torch.ones(4))


def denoiser(mixin: type) -> nn.Module:
    """A small conditional model on ``mixin``; the same weights whichever mixin (seeded)."""

    class Denoiser(nn.Module, mixin):
        def __init__(self) -> None:
            super().__init__()
            self.input_dims = (2, 4, 4)
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.cond_embed = nn.Embedding(4, 2)
            self.cond_embed.null_cond = 3

        def forward(self, x, sigma, cond=None):
            h = self.conv(x) * torch.as_tensor(sigma).reshape(-1, 1, 1, 1).log1p()
            return h if cond is None else h + self.cond_embed(cond)[:, :, None, None]

    torch.manual_seed(11)
    return Denoiser()


def test_model_mixin_gives_smalldiffusions_inputs_losses_and_predictions():
    ours, theirs = denoiser(mirror.ModelMixin), denoiser(smalldiffusion.ModelMixin)
    torch.manual_seed(3)
    x0, eps, sigma = torch.randn(5, 2, 4, 4), torch.randn(5, 2, 4, 4), torch.rand(5, 1, 1, 1) + 0.1
    cond = torch.tensor([0, 1, 2, 0, 1])

    def same(call):
        torch.manual_seed(5)
        mine = call(ours)
        torch.manual_seed(5)
        torch.testing.assert_close(mine, call(theirs), rtol=0, atol=0)

    same(lambda m: m.rand_input(6))
    same(lambda m: m.get_loss(x0, sigma, eps))
    same(lambda m: m.get_loss(x0, sigma, eps, cond=cond, loss=nn.L1Loss))
    same(lambda m: m.predict_eps(x0, sigma.flatten()))
    same(lambda m: m.predict_eps(x0, sigma.flatten(), cond=cond))
    same(lambda m: m.predict_eps_cfg(x0, torch.tensor(0.7), cond, 0))
    same(lambda m: m.predict_eps_cfg(x0, torch.tensor(0.7), None, 2.0))
    same(lambda m: m.predict_eps_cfg(x0, torch.tensor(0.7), cond, 2.0))
    public = {name for name in vars(smalldiffusion.ModelMixin) if not name.startswith("_")}
    assert public == {name for name in vars(mirror.ModelMixin) if not name.startswith("_")}


# Modules `import bench.cli` must not import: smalldiffusion (whose package imports torchvision and, through it,
# torch._dynamo: a second and more in every worker, timing process and test process), and the libraries of the
# report, the statistics and the tables, imported by the commands that use them.
HEAVY = ("smalldiffusion", "torchvision", "torch._dynamo", "matplotlib", "seaborn", "statsmodels", "scipy", "pandas",
         "pyarrow")


@pytest.mark.parametrize("module", ["bench.cli", "variants"])
def test_starting_the_cli_or_building_a_model_imports_no_heavy_module(module):
    code = (f"import sys, {module}; "
            f"print(','.join(name for name in {HEAVY!r} if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"import {module} imported {done.stdout.strip()}"


def test_a_timing_cell_s_worker_loads_no_plotting_library():
    # its stopping rule imports the report's rounds model, not the report's sections and plots
    code = "import sys, bench.measure.timing_cell; print(','.join(m for m in ('matplotlib', 'seaborn') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr
