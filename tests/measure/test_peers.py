"""Peers: built at the closest configuration, wrapped to our protocol, counted and planned like variants."""
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from bench.measure.cost_cell import measure_cost
from bench.measure.flops import count_flops, total_flop_rows
from bench.models.peers import PEERS, PeerUnavailable, build_peer, get_peer, sigma_to_timestep
from bench.plan.cells import Cell
from bench.plan.options import SweepOptions
from bench.plan.planner import make_plan
from variants import UNetSpec, build

from helpers import n_params

# Tiny, with attention at one of two levels (so the level and the middle differ in width).
SPEC = UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=32, ch_mult=(1, 2), attn_resolutions=(8,), norm_groups=32,
                num_res_blocks=1, dropout=0.0)


def inputs(batch: int = 3):
    return torch.randn(batch, 1, 8, 8), torch.tensor([0.05, 1.0, 8.0])[:batch].view(-1, 1, 1, 1)


@pytest.mark.parametrize("name", list(PEERS))
def test_every_peer_follows_our_protocol(name):
    model = build_peer(name, SPEC)
    x, sigma = inputs()
    assert model(x, sigma).shape == x.shape
    assert model(x, sigma[1].reshape(())).shape == x.shape  # one sigma for the batch, as samplers pass it
    loss = model.get_loss(x, sigma, torch.randn_like(x))    # smalldiffusion's training loss
    loss.backward()
    assert loss.ndim == 0 and all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert model.input_dims == (1, 8, 8) and not model.spec.checkpoint


def test_smalldiffusion_peer_is_our_baseline_parameter_for_parameter_and_output_for_output():
    ours, peer = build(SPEC).eval(), build_peer("smalldiffusion", SPEC).eval()
    with torch.no_grad():
        for mine, theirs in zip(ours.parameters(), peer.parameters(), strict=True):
            mine.copy_(theirs)
    x, sigma = inputs()
    torch.testing.assert_close(peer(x, sigma), ours(x, sigma), rtol=0, atol=0)


def test_diffusers_maps_time_injection_heads_and_norm_groups():
    from diffusers.models.attention_processor import Attention

    additive, film = build_peer("diffusers", SPEC), build_peer("diffusers", SPEC.replace(time_injection="film"))
    assert additive.net.config.resnet_time_scale_shift == "default"
    assert film.net.config.resnet_time_scale_shift == "scale_shift"
    # FiLM doubles every resnet's time projection, as it does in ours: the same parameter difference.
    ours_extra = n_params(build(SPEC.replace(time_injection="film"))) - n_params(build(SPEC))
    assert n_params(film) - n_params(additive) == ours_extra
    one_head = [m.heads for m in additive.modules() if isinstance(m, Attention)]
    assert one_head and set(one_head) == {1}
    two = build_peer("diffusers", SPEC.replace(attn_heads=2))
    heads = [(m.heads, m.inner_dim) for m in two.modules() if isinstance(m, Attention)]
    assert heads[0] == (2, 32)  # the first attention block (32 channels) gets the spec's head count
    # the GroupNorm before attention stays with scale-shift (diffusers drops it unless told otherwise)
    assert all(m.group_norm is not None for m in film.modules() if isinstance(m, Attention))


def test_lucidrains_puts_full_attention_at_the_spec_resolutions():
    from denoising_diffusion_pytorch.denoising_diffusion_pytorch import Attention, LinearAttention

    model = build_peer("lucidrains", SPEC)
    down_attn = [type(level[2]) for level in model.net.downs]
    assert down_attn == [Attention, LinearAttention]  # 8x8 is in attn_resolutions, 4x4 is not
    assert isinstance(model.net.mid_attn, Attention)


def test_sigma_to_timestep_is_250_ln_sigma_per_sample():
    sigma = torch.tensor([math.e, 1.0, math.exp(-2)]).view(-1, 1, 1, 1)
    torch.testing.assert_close(sigma_to_timestep(sigma), torch.tensor([250.0, 0.0, -500.0]))


def test_smalldiffusion_cannot_follow_other_norm_groups_and_says_so():
    with pytest.raises(ValueError, match="peer smalldiffusion normalises with 32 groups"):
        build_peer("smalldiffusion", SPEC.replace(ch=16, norm_groups=8))


def test_unknown_peer_and_missing_package_say_what_is_valid_and_what_to_install(monkeypatch):
    with pytest.raises(ValueError, match="--peers 'edm' is not a peer; valid: smalldiffusion, diffusers, lucidrains"):
        get_peer("edm")
    monkeypatch.setitem(sys.modules, "diffusers", None)  # as on a machine without the package
    with pytest.raises(PeerUnavailable, match="needs the diffusers package: `pip install diffusers`"):
        build_peer("diffusers", SPEC)


def test_peer_flops_are_totals_cross_checked_against_ours():
    x, sigma = inputs(2)
    ours = {(r.phase, r.metric, r.unit): r.value for r in count_flops(build(SPEC), x, sigma) if r.block == "total"}
    theirs = {(r.phase, r.metric, r.unit): r.value for r in total_flop_rows(build_peer("smalldiffusion", SPEC), x, sigma)}
    assert theirs == ours  # the same architecture counts the same, FLOPs and fvcore MACs alike
    rows = total_flop_rows(build_peer("diffusers", SPEC), x, sigma)
    totals = {(r.metric, r.unit): r.value for r in rows if r.phase == "forward"}
    assert totals[("flops", "FLOP")] == 2 * totals[("flops", "MAC")] > 0
    assert all(r.block == "total" for r in rows)


@pytest.mark.parametrize("name", ["smalldiffusion", "diffusers", "lucidrains"])
def test_every_peer_runs_and_counts_a_batch_of_one(name):
    model = build_peer(name, SPEC)
    x, sigma = inputs(1)
    assert model(x, sigma).shape == x.shape
    rows = total_flop_rows(model, x, sigma)
    assert all(r.status == "ok" and r.value > 0 for r in rows if r.unit == "FLOP")
    [fvcore] = [r for r in rows if r.method == "fvcore"]
    assert fvcore.status == "ok" and fvcore.value > 0


def test_lucidrains_rmsnorm_is_a_reduction_by_torch_s_tags_and_its_einsums_agree_within_fvcore_rounding():
    rows = total_flop_rows(build_peer("lucidrains", SPEC), *inputs(2))
    totals = {(r.metric, r.unit): r.value for r in rows if r.phase == "forward"}
    # fvcore rounds an einsum's count (its linear attention) to a few significant digits
    assert totals[("flops", "FLOP")] == pytest.approx(2 * totals[("flops", "MAC")], rel=1e-3)


class PairwiseDistance(nn.Module):
    """A peer-like model whose only heavy op neither counter knows: fvcore must not count it as zero."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        h = self.conv(x).flatten(2)
        return torch.cdist(h, h)


def test_an_op_fvcore_cannot_count_leaves_a_skipped_row_never_a_zero():
    rows = total_flop_rows(PairwiseDistance(), *inputs(2))
    fvcore = [r for r in rows if r.method == "fvcore"]
    assert len(fvcore) == 1 and fvcore[0].status == "skipped" and math.isnan(fvcore[0].value)
    assert "aten::cdist" in fvcore[0].message and "count_op('aten::cdist'" in fvcore[0].message


def test_plan_adds_one_peer_cell_per_peer_device_and_execution_option(tmp_path):
    options = SweepOptions(preset="smoke", out=tmp_path, parts=("cost",), peers=("smalldiffusion", "diffusers"),
                           axes={"checkpoint": (False,)}, dtypes=("float32", "bfloat16"))
    cells = make_plan(options).cells
    peers = [c for c in cells if c.peer]
    timing = [c for c in cells if c.kind == "timing"]
    assert len(peers) == 2 * 2 and len(cells) == 2 * (2 + 2 + 1)  # (2 upsamplers + 2 peers + timing) x 2 dtypes
    # each dtype's timing cell times both upsamplers, the baseline's A/A copy and both peers in the same rounds
    assert [len(c.members) for c in timing] == [5, 5] and {c.dtype for c in timing} == {"float32", "bfloat16"}
    assert all({m.peer for m in c.members} == {"", "smalldiffusion", "diffusers"} for c in timing)
    identity = peers[0].identity_columns()
    assert identity["variant"] == "peer:smalldiffusion" and identity["peer"] == "smalldiffusion"
    assert {c.dtype for c in peers} == {"float32", "bfloat16"}
    with pytest.raises(ValueError, match="--peers 'unet' is not a peer"):
        make_plan(SweepOptions(preset="smoke", out=tmp_path, parts=("cost",), peers=("unet",)))


def test_a_missing_peer_package_makes_a_skipped_row_not_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "denoising_diffusion_pytorch", None)
    rows = []
    measure_cost(Cell("cost", SPEC, "cpu", batch_size=2, peer="lucidrains"), rows, Path("."))
    assert [(r.phase, r.status) for r in rows][-1] == ("cell", "skipped")
    assert "pip install denoising-diffusion-pytorch" in rows[-1].message
