"""Axes as data: one declaration per axis drives validation, the grid, parsing, the table and the report."""
import importlib
import json
import sys

import pandas as pd
import pytest
import torch

from bench.plan.cells import Cell
from bench.plan.designs import grid
from bench.plan.execution import Execution
from bench.plan.sweep import PRESETS, load_sweep
from bench.schema import columns
from variants import AXES, BASES, UNetSpec, build, default_grid, parse_axis

from helpers import ROOT, SMALL, bench, n_params

TINY = UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=32, ch_mult=(1, 2), attn_resolutions=(4,), norm_groups=8)


@pytest.fixture
def norm_axis(monkeypatch):
    """The norm plugin (tests/plugins/norm_axis.py), imported here and removed afterwards."""
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "plugins"))
    module = importlib.import_module("norm_axis")
    yield module
    AXES.pop("norm")
    sys.modules.pop("norm_axis")


@pytest.fixture
def activation_axis(monkeypatch):
    """The plugin's axis, imported here and removed afterwards so no other test sees it."""
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "plugins"))
    module = importlib.import_module("extra_axis")
    yield AXES["activation"]
    AXES.pop("activation")
    sys.modules.pop("extra_axis")
    del module


def test_every_axis_is_a_column_and_the_default_grid_is_its_16_variants():
    assert list(AXES)[:4] == ["upsample", "time_injection", "attn_heads", "num_head_channels"]
    # written out, not derived: a column renamed, dropped or reordered fails here
    assert columns() == (
        "run_id", "cell_id", "kind", "variant", "spec_hash", "upsample", "time_injection", "attn_heads",
        "num_head_channels", "attn_resolutions", "checkpoint", "attention", "noise_embedding", "resblock_updown",
        "residual_join", "normalization", "layers", "act", "skip_join", "block_form", "ones_channel", "out_gain",
        "clip_act", "lr", "lr_schedule", "weight_decay", "ema_decay", "base_config", "quality_preset", "dataset",
        "device", "device_name", "host", "dtype",
        "threads", "batch_size", "peer", "memory_format", "compile", "cuda_graphs", "replica", "rung", "rung_index",
        "phase", "block", "metric", "value", "unit", "method", "repeat", "position", "process", "seed", "step", "n",
        "status", "message")
    assert default_grid() == {"upsample": ("nearest_conv", "conv_transpose"), "time_injection": ("additive", "film"),
                              "attn_heads": (1, 4), "checkpoint": (False, True)}
    assert len(grid()) == 16


def test_every_registry_is_sweepable_including_attention():
    assert parse_axis("attention=sdpa") == ("attention", ("sdpa",))
    assert parse_axis("attn_resolutions=4,8+4,none") == ("attn_resolutions", ((4,), (8, 4), ()))
    assert parse_axis("checkpoint=on,off") == ("checkpoint", (True, False))
    with pytest.raises(ValueError, match=r"--axis attention='flash' is not a registered variant; valid: sdpa"):
        parse_axis("attention=flash")
    with pytest.raises(ValueError, match=r"--axis attn_resolutions value '8;4' is invalid; valid: resolutions joined"):
        parse_axis("attn_resolutions=8;4")


def test_one_at_a_time_changes_one_axis_per_variant_around_the_baseline():
    specs = grid(TINY, "one_at_a_time", attn_heads=(1, 4), attn_resolutions=((4,), (8, 4)), checkpoint=(False, True))
    assert [s.name for s in specs] == ["nearest_conv+additive+1h", "nearest_conv+additive+4h",
                                       "nearest_conv+additive+1h+attn@8_4", "nearest_conv+additive+1h+ckpt"]
    baseline = specs[0]
    for spec in specs[1:]:
        changed = [n for n in AXES if getattr(spec, n) != getattr(baseline, n)]
        assert len(changed) == 1
    with pytest.raises(ValueError,
                       match="design='latin_square' is invalid; valid: factorial, fractional, one_at_a_time, ladder"):
        grid(TINY, "latin_square")


def test_num_head_channels_sets_the_heads_of_every_attention_block():
    spec = TINY.replace(num_head_channels=32, attn_resolutions=(8, 4))
    heads = sorted({(m.norm.num_channels, m.heads) for m in build(spec).modules() if hasattr(m, "heads")})
    assert heads == [(32, 1), (64, 2)]
    with pytest.raises(ValueError, match="num_head_channels=32 and attn_heads=4 both set the heads"):
        TINY.replace(num_head_channels=32, attn_heads=4)
    with pytest.raises(ValueError, match="num_head_channels=48 does not divide the 64 channels"):
        TINY.replace(num_head_channels=48)


def test_an_axis_added_from_outside_is_validated_named_serialised_and_built(activation_axis):
    gelu = TINY.replace(activation="gelu")
    assert gelu.name == "nearest_conv+additive+1h+gelu"
    assert TINY.replace(activation="silu") == TINY  # the default level is the same spec, plugin or not
    assert UNetSpec.from_dict({**TINY.to_dict(), "activation": "silu"}) == TINY
    assert UNetSpec.from_json(gelu.to_json()) == gelu
    assert json.loads(gelu.to_json())["activation"] == "gelu"
    assert any(isinstance(m, torch.nn.GELU) for m in build(gelu).modules())
    assert not any(isinstance(m, torch.nn.GELU) for m in build(TINY).modules())
    assert Cell("cost", gelu, "cpu").identity_columns()["activation"] == "gelu"  # the table's column and value
    with pytest.raises(ValueError, match="activation='relu' is not a registered variant; valid: silu, gelu"):
        TINY.replace(activation="relu")


def test_a_plugin_axis_changes_how_every_block_is_built(norm_axis):
    layer = TINY.replace(norm="layer")
    assert layer.name == "nearest_conv+additive+1h+layer"
    kinds = lambda model: sorted({type(m).__name__ for m in model.modules() if "Norm" in type(m).__name__})
    assert kinds(build(TINY)) == ["GroupNorm"] and kinds(build(layer)) == ["ChannelLayerNorm"]
    # every norm the builder makes is the plugin's: the resnet blocks', attention's and the output's
    count = lambda model, cls: sum(isinstance(m, cls) for m in model.modules())
    # two norms in each resnet block (4 down, 2 middle, 6 up), one in each attention block and the output's
    resnets, attentions = 4 + 2 + 6, 2 + 1 + 3
    assert count(build(layer), norm_axis.ChannelLayerNorm) == count(build(TINY), torch.nn.GroupNorm) == \
        2 * resnets + attentions + 1
    x = torch.randn(2, 1, 8, 8)
    assert build(layer)(x, torch.ones(2)).shape == x.shape


@pytest.mark.slow
def test_a_plugin_axis_from_one_file_is_swept_and_reported(tmp_path):
    out = tmp_path / "run"
    # one upsampler: the two norms are the sweep (2 cost cells and their timing cell)
    run = bench("run", "--out", str(out), *SMALL, "--import", "norm_axis", "--axis", "norm=group,layer",
                "--axis", "upsample=nearest_conv")
    assert run.returncode == 0, run.stderr
    table = pd.read_parquet(out / "metrics.parquet")
    assert set(table.loc[table["kind"] == "cost", "norm"]) == {"group", "layer"}
    report = bench("report", str(out), "--import", "norm_axis")
    assert report.returncode == 0, report.stderr
    effects = pd.read_csv(out / "effects.csv")
    params = effects[(effects["axis"] == "norm") & (effects["metric"] == "params")]
    assert (params["from_level"].tolist(), params["to_level"].tolist()) == (["group"], ["layer"])
    assert params["estimate"].iloc[0] == 0  # both norms have a scale and a shift per channel
    assert "norm: group → layer" in (out / "report.md").read_text()


def test_the_presets_are_shipped_sweep_files_and_the_adm_preset_is_fractional():
    assert {"smoke", "quick", "full", "adm_table1", "peers"} <= set(PRESETS)
    adm = PRESETS["adm_table1"]
    assert adm.design == "fractional" and adm.base == "digits8_ch16"
    assert {"attn_heads", "attn_resolutions", "time_injection", "resblock_updown", "residual_join"} == set(adm.axes)


@pytest.mark.parametrize("text,message", [
    ("design = 'latin'", "bad.toml: design = 'latin' is invalid; valid: factorial, fractional, one_at_a_time"),
    ("batch_size = 0", "bad.toml: batch_size = 0 is invalid; valid: a positive int"),
    ("colour = 'red'", "bad.toml: colour = 'red' is invalid; valid: a key of description, base"),
    ("[axes]\nheads = [1, 2]", "bad.toml: axes.heads = [1, 2] is invalid; valid: an axis (upsample, "),
    ("[axes]\nheads = [1, 2]", "or a recipe axis (lr, lr_schedule, weight_decay, ema_decay)"),
    ("[axes]\nattn_heads = [1, 'x']", "bad.toml: axes.attn_heads: attn_heads='x' is invalid; valid: a positive"),
    ("[axes]\nattn_heads = ['4']", "bad.toml: axes.attn_heads: attn_heads='4' is invalid; valid: a positive integer"),
    ("[axes]\nresblock_updown = ['false', 'true']", "bad.toml: axes.resblock_updown: resblock_updown='false' is "
                                                    "invalid; valid: True or False"),
    ("[axes]\nattn_resolutions = ['8+4']", "bad.toml: axes.attn_resolutions: attn_resolutions='8+4' is invalid"),
    ("[axes]\nupsample = []", "bad.toml: axes.upsample = [] is invalid; valid: a non-empty list of values"),
    ("[execution]\ndtype = ['float64']", "bad.toml: execution.dtype = ['float64'] is invalid; valid: a non-empty list"),
    ("[rounds]\nmin_rounds = 1", "bad.toml: rounds: rounds budget"),
    ("[rounds]\nwarm = 1", "bad.toml: rounds.warm = 1 is invalid; valid: a key of warmup"),
    ("base = 'imagenet'", "bad.toml: base = 'imagenet' is invalid; valid: one of digits8"),
    ("quality = 'imagenet'", "bad.toml: quality = 'imagenet' is invalid; valid: one of smoke"),
    ("devices = 'cpu'", "bad.toml: devices = 'cpu' is invalid; valid: a list of str values"),
    ("rounds = 5", "bad.toml: rounds = 5 is invalid; valid: a table of warmup"),
    ("base = ['digits8']", "bad.toml: base = ['digits8'] is invalid; valid: one of digits8"),
    ("quality = ['quick', 'huge']", "bad.toml: quality = ['quick', 'huge'] is invalid; valid: one of smoke"),
    ("base = ", "bad.toml: not valid TOML"),
    ("[execution]\ncompile = ['fast']", "bad.toml: execution.compile = ['fast'] is invalid; valid: a non-empty list of "
                                        "off, on, cudagraphs"),
    ("[execution]\nbaseline = 1", "bad.toml: execution.baseline = 1 is invalid; valid: an array of tables"),
    ("[[execution.baseline]]\ndtype = 'float64'", "bad.toml: execution.baseline[0].dtype = 'float64' is invalid; "
                                                 "valid: float32, tf32, bfloat16, float16"),
    ("[[execution.baseline]]\nthreads = 2", "bad.toml: execution.baseline[0].threads = 2 is invalid; valid: a key of "
                                           "memory_format, dtype, compile"),
    ('[[rungs]]\nname = "A"\nlayers = "mp"', "bad.toml: design = 'factorial' is invalid; valid: \"ladder\""),
    ('design = "ladder"\n[[rungs]]\nlayers = "mp"', "bad.toml: rungs[0].name = None is invalid"),
    ('design = "ladder"\n[[rungs]]\nname = "A"\ncolour = "red"', "bad.toml: rungs[0].colour = 'red' is invalid"),
    ('design = "ladder"\n[[rungs]]\nname = "A"\nlayers = "wn"', "bad.toml: rungs[0] ('A'): layers='wn' is invalid"),
    ('design = "ladder"\nrungs = 3', "bad.toml: rungs = 3 is invalid; valid: [[rungs]] tables"),
])
def test_a_bad_sweep_file_fails_naming_the_key_the_value_and_what_is_valid(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text + "\n")
    with pytest.raises(ValueError) as err:
        load_sweep(path)
    assert message in str(err.value)


def test_a_sweep_file_round_trips_every_key(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("""
description = "heads at the smoke shape"
base = "digits8"
batch_size = 8
design = "one_at_a_time"
devices = ["cpu"]
quality = "smoke"
seeds = 2
[axes]
attn_heads = [1, 2]
attn_resolutions = [[4], [8, 4]]
[execution]
memory_format = ["contiguous", "channels_last"]
compile = [false, "cudagraphs"]
[[execution.baseline]]
dtype = "tf32"
[[execution.baseline]]
compile = true
[rounds]
min_rounds = 4
""")
    sweep = load_sweep(path)
    assert (sweep.name, sweep.description, sweep.base, sweep.devices, sweep.quality) == (
        "mine", "heads at the smoke shape", "digits8", ("cpu",), ("smoke",))
    assert (sweep.name, sweep.batch_size, sweep.design, sweep.seeds) == ("mine", 8, "one_at_a_time", 2)
    assert sweep.axes == {"attn_heads": (1, 2), "attn_resolutions": ((4,), (8, 4))}
    assert sweep.memory_formats == ("contiguous", "channels_last") and sweep.rounds.min_rounds == 4
    assert sweep.compile == ("off", "cudagraphs")  # a boolean, as older files give it, is off or on
    assert sweep.baseline_executions == (Execution(dtype="tf32"), Execution(compile="on"))


def test_the_ddpm_cifar10_base_is_diffusers_ddpm_model_parameter_for_parameter():
    from diffusers import UNet2DModel  # built from its configuration: offline, no weights

    reference = UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, center_input_sample=False, time_embedding_type="positional",
        freq_shift=1, flip_sin_to_cos=False, block_out_channels=(128, 256, 256, 256), layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), mid_block_scale_factor=1,
        downsample_padding=0, act_fn="silu", attention_head_dim=None, norm_eps=1e-6, norm_num_groups=32)
    ours = build(BASES["ddpm_cifar10"])
    assert n_params(ours) == n_params(reference) == 35_746_307
    # the same layers, not only the same total
    assert sorted(p.numel() for p in ours.parameters()) == sorted(p.numel() for p in reference.parameters())


def test_resampling_residual_blocks_replace_the_upsampler_and_say_so():
    spec = TINY.replace(resblock_updown=True)
    model = build(spec)
    assert type(model.downs[0].downsample).__name__ == "ResampleResnetBlock"
    assert model(torch.randn(2, 1, 8, 8), torch.tensor([0.5, 2.0])).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="resblock_updown=True resamples inside residual blocks, so "
                                         "upsample='conv_transpose' would be ignored"):
        TINY.replace(resblock_updown=True, upsample="conv_transpose")


def test_a_conflict_names_where_the_axes_came_from(tmp_path, capsys):
    from bench.cli import main

    path = tmp_path / "mine.toml"
    path.write_text("base = 'digits8'\n[axes]\nupsample = ['conv_transpose']\nresblock_updown = [true]\n")
    assert main(["run", "--out", str(tmp_path / "run"), "--sweep", str(path), "--plan"]) == 2
    assert capsys.readouterr().err.startswith("error: mine.toml: resblock_updown=True resamples inside residual blocks")
    assert main(["run", "--out", str(tmp_path / "run"), "--preset", "smoke", "--axis", "resblock_updown=true",
                 "--axis", "upsample=conv_transpose", "--plan"]) == 2
    assert capsys.readouterr().err.startswith("error: --axis: resblock_updown=True")


def test_a_factorial_grid_crosses_the_axes_given_and_keeps_the_rest_at_the_base_s_level():
    film = TINY.replace(time_injection="film")
    specs = grid(film, attn_heads=(1, 2, 4))
    assert [s.attn_heads for s in specs] == [1, 2, 4] and {s.time_injection for s in specs} == {"film"}
    assert len(grid(film)) == 16  # no axis given: the default grid


def test_bench_list_says_where_a_level_depends_on_the_base_and_aligns_the_bases(capsys):
    from bench.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "attn_resolutions" in out and "(reference: the base's)" in out and "default 16" not in out
    bases = out.split("Base configs")[1].splitlines()[1:]
    assert bases[0].startswith("  digits8 ") and "8x8x1, ch 32, ch_mult 1+2" in bases[0]
    assert len({line.index(" 8x8x1") for line in bases if "8x8x1" in line}) == 1  # one column
