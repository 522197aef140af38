"""UNetSpec: identity, serialisation, and early, clear errors."""
import json
import subprocess
import sys

import pytest

from bench.plan.designs import grid
from variants import BASES, UNetSpec


def test_json_round_trip_and_hash_equality():
    for spec in grid():
        again = UNetSpec.from_json(spec.to_json())
        assert again == spec and hash(again) == hash(spec) and again.hash == spec.hash
    assert len({s.hash for s in grid()}) == 16


def test_hash_is_stable_across_processes():
    code = "from variants import BASES; b = BASES['fmnist28']; print(b.hash, b.name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [BASES["fmnist28"].hash, BASES["fmnist28"].name]


def test_canonical_names():
    base = BASES["fmnist28"]
    assert base.name == "nearest_conv+additive+1h"
    assert base.replace(upsample="conv_transpose", time_injection="film", attn_heads=4, checkpoint=True).name == (
        "conv_transpose+film+4h+ckpt"
    )


def test_from_dict_rejects_unknown_fields():
    data = json.loads(BASES["fmnist28"].to_json()) | {"chanels": 3}
    with pytest.raises(ValueError, match=r"unknown UNetSpec field\(s\) \['chanels'\]"):
        UNetSpec.from_dict(data)


BASE = dict(in_dim=28, in_ch=1, out_ch=1, ch=64, ch_mult=(1, 1, 2), attn_resolutions=(14,))

BAD_SPECS = [
    (dict(upsample="bilinear"), r"upsample='bilinear' is not a registered variant; valid: nearest_conv, conv_transpose"),
    (dict(time_injection="concat"), r"time_injection='concat' is not a registered variant; valid: additive, film"),
    (dict(attention="flash"), r"attention='flash' is not a registered variant; valid: sdpa"),
    (dict(attn_heads=3), r"attn_heads=3 does not divide the 64 channels .*valid: a common divisor of \[64, 128\]"),
    (dict(attn_heads=0), r"attn_heads=0 is invalid; valid: a positive integer"),
    (dict(ch=48), r"norm_groups=32 does not divide 48 channels"),
    (dict(norm_groups=24), r"norm_groups=24 does not divide 64 channels"),
    (dict(in_dim=30), r"in_dim=30 is invalid for 3 levels .* a multiple of 2\^2 = 4"),
    (dict(attn_resolutions=(16,)), r"attn_resolutions contains 16, a resolution this U-Net never has; valid: any of \(28, 14, 7\)"),
    (dict(ch=0), r"ch=0 is invalid; valid: a positive integer"),
    (dict(in_ch=-1), r"in_ch=-1 is invalid"),
    (dict(num_res_blocks=0), r"num_res_blocks=0 is invalid"),
    (dict(ch_mult=()), r"ch_mult=\(\) is invalid; valid: a non-empty tuple of positive integers"),
    (dict(ch_mult=(1, 0)), r"ch_mult=\(1, 0\) is invalid"),
    (dict(dropout=1.0), r"dropout=1.0 is invalid; valid: a float in \[0, 1\)"),
    (dict(dropout=-0.1), r"dropout=-0.1 is invalid"),
    (dict(checkpoint="yes"), r"checkpoint='yes' is invalid; valid: True or False"),
    (dict(ch=64.0), r"ch=64.0 is invalid; valid: a positive integer"),
]


@pytest.mark.parametrize("change,message", BAD_SPECS, ids=[next(iter(c)) + "=" + repr(next(iter(c.values()))) for c, _ in BAD_SPECS])
def test_bad_specs_fail_at_construction_with_field_value_and_valid_range(change, message):
    with pytest.raises(ValueError, match=message):
        UNetSpec(**(BASE | change))


def test_bad_spec_fails_before_any_module_is_built(monkeypatch):
    import torch.nn as nn

    built = []
    monkeypatch.setattr(nn.Module, "__init__", lambda self, *a, **k: built.append(self))
    with pytest.raises(ValueError):
        UNetSpec(**(BASE | dict(attn_heads=3)))
    assert built == []


def test_grid_rejects_unknown_axes_and_values_before_yielding():
    with pytest.raises(ValueError, match=r"unknown axis 'heads'; valid axes: upsample, time_injection, attn_heads, "):
        grid(heads=(1, 2))
    with pytest.raises(ValueError, match="upsample='pixel_shuffle' is not a registered variant"):
        grid(upsample=("nearest_conv", "pixel_shuffle"))
    with pytest.raises(ValueError, match="attn_heads: no values given"):
        grid(attn_heads=())


@pytest.mark.parametrize("text,message", [
    ('{"in_dim": 30}', r"UNetSpec field\(s\) \['in_ch', 'out_ch'\] missing; valid: every one of \['in_dim', 'in_ch', 'out_ch'\] given"),
    ('{"in_dim": 30', r"UNetSpec JSON '\{\"in_dim\": 30' does not parse \(Expecting .*\); valid: a JSON object of fields"),
    ("[8, 1, 1]", r"a UNetSpec must be an object of fields, not list \[8, 1, 1\]; valid: \{\"in_dim\": 28"),
    ('{"in_dim": "8", "in_ch": 1, "out_ch": 1}', r"in_dim='8' is invalid; valid: a positive integer"),
    ('{"in_dim": 8, "in_ch": 1, "out_ch": 1, "dropout": 1}', r"dropout=1 is invalid; valid: a float in \[0, 1\)"),
])
def test_json_that_is_no_spec_is_refused_naming_the_fields(text, message):
    with pytest.raises(ValueError, match=message):
        UNetSpec.from_json(text)


def test_a_group_of_one_value_at_a_1x1_level_is_refused():
    # Found by tests/plan/test_bad_input_properties.py: GroupNorm cannot normalise one value (batch 1, 8 channels
    # in 8 groups at 1x1, the downsampled input of the last level).
    with pytest.raises(ValueError, match=r"norm_groups=8 leaves one value per group and sample at the coarsest "
                                         r"level \(8 channels at 1x1; .*valid: norm_groups at most 4, or in_dim a "
                                         r"multiple of 8"):
        UNetSpec(in_dim=4, in_ch=1, out_ch=1, ch=8, ch_mult=(1, 1, 2), attn_resolutions=(), norm_groups=8)
