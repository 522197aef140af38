"""Bad specs and options, tried at scale: every draw builds a working model or is refused with a ValueError
(the CLI: exit code 2 and one line) before any work. No other exception, and no traceback."""
import contextlib
import io
import math
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import bench.cli
from bench.plan.planner import make_plan
from variants import UNetSpec, build

REQUIRED = ("in_dim", "in_ch", "out_ch")
INT_FIELDS = (*REQUIRED, "ch", "embed_ch_mult", "num_res_blocks", "norm_groups", "attn_heads")
# Wrong types of every kind, zero, negatives, huge values, empty and odd containers.
ANYTHING = st.one_of(st.none(), st.booleans(), st.integers(-(10**40), 10**40), st.floats(allow_nan=True),
                     st.text(max_size=8), st.lists(st.integers(-3, 64), max_size=3),
                     st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
SMALL_INT = st.sampled_from([0, -1, 1, 2, 4, 8, 16])
INT_TUPLE = st.one_of(st.just(()), st.tuples(SMALL_INT), st.tuples(SMALL_INT, SMALL_INT),
                      st.lists(st.integers(-(10**30), 10**30), max_size=4).map(tuple))
NAME = st.sampled_from(["nearest_conv", "conv_transpose", "additive", "film", "sdpa", "", "no_such_variant"])
FIELDS = {
    **{name: st.one_of(SMALL_INT, ANYTHING) for name in INT_FIELDS},
    "ch_mult": st.one_of(INT_TUPLE, ANYTHING),
    "attn_resolutions": st.one_of(INT_TUPLE, ANYTHING),
    "dropout": st.one_of(st.sampled_from([0, 0.0, 0.1, 0.99, 1.0, -0.1, math.nan]), ANYTHING),
    "upsample": st.one_of(NAME, ANYTHING), "time_injection": st.one_of(NAME, ANYTHING),
    "attention": st.one_of(NAME, ANYTHING), "checkpoint": st.one_of(st.booleans(), ANYTHING),
}
# A spec is built and run only below this size: bigger valid specs are skipped, not accepted failures.
MAX_CHANNELS, MAX_IN_DIM, MAX_LEVELS, MAX_IN_CH = 64, 16, 3, 4


# Small valid values of every field: a draw starts from these, then spoils some of them.
PLAUSIBLE = {
    "in_dim": st.sampled_from([4, 8, 16]), "in_ch": st.sampled_from([1, 3]), "out_ch": st.sampled_from([1, 3]),
    "ch": st.sampled_from([8, 16]), "ch_mult": st.sampled_from([(1,), (1, 2), [1, 1, 2]]),
    "embed_ch_mult": st.sampled_from([1, 4]), "num_res_blocks": st.sampled_from([1, 2]),
    "attn_resolutions": st.sampled_from([(), (4,), [8]]), "dropout": st.sampled_from([0, 0.0, 0.1]),
    "norm_groups": st.sampled_from([4, 8]), "attn_heads": st.sampled_from([1, 2, 4]),
    "upsample": st.sampled_from(["nearest_conv", "conv_transpose"]),
    "time_injection": st.sampled_from(["additive", "film"]), "checkpoint": st.booleans(),
    "attention": st.just("sdpa"),
}


@st.composite
def spec_fields(draw) -> dict:
    """Plausible fields, some of them spoiled with a wide value, now and then a required one missing or an
    unknown one added."""
    fields = {name: draw(strategy) for name, strategy in PLAUSIBLE.items()}
    for name in draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=2)):
        fields[name] = draw(FIELDS[name])
    if draw(st.integers(0, 9)) == 0:
        del fields[draw(st.sampled_from(REQUIRED))]
    if draw(st.integers(0, 9)) == 0:
        fields[draw(st.sampled_from(["channels", "heads", "In_dim"]))] = 1
    return fields


def small_enough(spec: UNetSpec) -> bool:
    return (max(spec.level_channels) * spec.embed_ch_mult <= 4 * MAX_CHANNELS and spec.in_dim <= MAX_IN_DIM
            and len(spec.ch_mult) <= MAX_LEVELS and max(spec.in_ch, spec.out_ch) <= MAX_IN_CH
            and spec.num_res_blocks <= 2)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=spec_fields(), batch=st.integers(1, 2), per_sample_sigma=st.booleans())
def test_a_spec_either_builds_a_working_model_or_is_refused(fields, batch, per_sample_sigma):
    try:
        spec = UNetSpec.from_dict(fields)
    except ValueError as err:
        assert "\n" not in str(err)
        event("refused")
        return
    if not small_enough(spec):
        event("valid, too large to build here")
        return
    event("built")
    model = build(spec).eval()
    x = torch.randn(batch, spec.in_ch, spec.in_dim, spec.in_dim)
    sigma = torch.rand(batch) + 0.1 if per_sample_sigma else torch.tensor(0.5)
    with torch.no_grad():
        out = model(x, sigma)
    assert out.shape == (batch, spec.out_ch, spec.in_dim, spec.in_dim)


WIDE_INT = st.one_of(st.sampled_from(["0", "-1", "1", "2", "", "x", "1.5", "1e3", "²", "99999999999999999999"]),
                     st.integers(-(10**25), 10**25).map(str))


def names(*valid: str) -> st.SearchStrategy[str]:
    """Comma-separated lists of valid and invalid names, empty included."""
    name = st.sampled_from([*valid, "", "nope", "CPU", " ", "auto"])
    return st.lists(name, max_size=3).map(",".join)


AXIS = st.one_of(st.sampled_from(["upsample=nearest_conv", "upsample=conv_transpose,bilinear", "attn_heads=1,2",
                                  "attn_heads=0", "attn_heads=x", "checkpoint=true,false", "checkpoint=maybe",
                                  "time_injection=film", "heads=1", "upsample=", "=", ""]),
                 st.text(max_size=12))
BASE = st.one_of(st.sampled_from(["digits8", "fmnist28", "imagenet", "", "{", "[]", "{}", '{"in_dim": 30}',
                                  '{"in_dim": 8, "in_ch": 1, "out_ch": 1, "ch": 32, "ch_mult": [1, 2], '
                                  '"attn_resolutions": [4], "norm_groups": 8}',
                                  '{"in_dim": 8, "in_ch": 1, "out_ch": 1, "ch_mult": "12"}', "null", '"x"']),
                 st.text(max_size=12))
OPTIONS = {  # valid and invalid values of every `bench run` option that chooses what is measured
    "--batch-size": WIDE_INT, "--threads": WIDE_INT, "--jobs": WIDE_INT, "--seeds": WIDE_INT,
    "--axis": AXIS, "--base": BASE, "--device": names("cpu", "cuda"), "--only": names("cost", "quality"),
    "--shard": st.sampled_from(["1/2", "2/2", "0/2", "3/2", "1/0", "a/b", "1", "/", "²/3", ""]),
    "--dtype": names("float32", "bfloat16", "float16"), "--memory-format": names("contiguous", "channels_last"),
    "--compile": names("off", "on"), "--preset": st.sampled_from(["smoke", "quick", "full", "huge", ""]),
    # the Inception FID presets are left out: checking them builds Inception, which downloads its weights
    "--quality": st.sampled_from(["smoke", "quick", "full", "imagenet", ""]),
    "--peers": names("smalldiffusion", "diffusers", "lucidrains"),
    "--design": st.sampled_from(["factorial", "one_at_a_time", "ofat", ""]),
}


class WouldStartASweep(Exception):
    """Raised instead of running a sweep whose options all passed validation."""


def validate_only(options, argv):
    make_plan(options)
    raise WouldStartASweep


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chosen=st.dictionaries(st.sampled_from(sorted(OPTIONS)), st.none(), min_size=1, max_size=5).flatmap(
    lambda keys: st.fixed_dictionaries({k: OPTIONS[k] for k in keys})))
@example(chosen={"--preset": "quick", "--batch-size": "1381"})  # found by CI: the memory refusal named no option
def test_run_options_are_refused_in_one_line_with_exit_2_or_fully_validated(chosen):
    argv = [f"{option}={value}" for option, value in chosen.items()]
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        out = Path(tmp) / "run"
        patch.setattr(bench.cli, "run_sweep", validate_only)
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                code = bench.cli.main(["run", "--out", str(out), *argv])
            except SystemExit as exit:  # argparse's own refusal of a value of the wrong type
                code = exit.code
            except WouldStartASweep:
                event("valid: would start a sweep")
                code = None
        assert not out.exists()
    if code is None:
        return
    event("refused")
    message = stderr.getvalue()
    assert code == 2, message
    if "usage:" not in message:  # ours, not argparse's
        assert message.startswith("error: --") and message.count("\n") == 1, message  # names the option
