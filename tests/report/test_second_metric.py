"""KID beside FD in the verdict: the agreement rule on constructed cases, and KID's interval at FD's level."""
import pandas as pd
import pytest
from scipy import stats

from bench.report.compute.second_metric import (AGREES, DISAGREES, NOT_RESOLVED, ONLY_KID, agreement,
                                                at_level)


@pytest.mark.parametrize("fd, fd_resolved, kid, kid_resolved, word", [
    (-1.6, True, -0.07, True, AGREES),          # both resolved, the same direction
    (-0.09, False, 0.004, False, AGREES),       # neither resolved: opposite estimates are both consistent with zero
    (-1.6, True, 0.07, True, DISAGREES),        # both resolved, opposite directions
    (-1.6, True, 0.01, False, DISAGREES),       # FD resolved, KID's estimate the other way
    (0.2, False, -0.07, True, DISAGREES),       # KID resolved, FD's estimate the other way
    (-1.6, True, -0.01, False, NOT_RESOLVED),   # FD resolved, KID the same way but not resolved
    (-0.2, False, -0.07, True, ONLY_KID),       # KID resolved, FD the same way but not resolved
])
def test_the_agreement_word_reads_direction_and_resolution(fd, fd_resolved, kid, kid_resolved, word):
    assert agreement(fd, fd_resolved, kid, kid_resolved) == word


EFFECT = pd.Series({"axis": "upsample", "from_level": "nearest_conv", "to_level": "conv_transpose",
                    "base_config": "digits8_ch16", "setting": "digits8_ch16 · cpu", "recipe": "shared",
                    "phase": "sample", "step": 1500.0, "metric": "kid", "estimate": -0.03, "ci_low": -0.05,
                    "ci_high": -0.01, "resolved": True})


def fits(se: float = 0.01, df: float = 20.0) -> pd.DataFrame:
    """The quality model's fit behind ``EFFECT``, and another switch's with the same numbers."""
    fit = {"factor": "upsample", "reference": "nearest_conv", "level": "conv_transpose", "base_config": "digits8_ch16",
           "setting": "digits8_ch16 · cpu", "recipe": "shared", "phase": "sample", "step": 1500.0, "metric": "kid",
           "estimate": -0.03, "se": se, "df": df}
    return pd.DataFrame([fit, fit | {"factor": "attn_heads", "reference": 1, "level": 4, "se": 1.0}])


def test_kid_s_interval_is_taken_at_the_level_asked_from_its_own_fit():
    for confidence in (0.95, 1 - 0.05 / 7):
        row = at_level(EFFECT, fits(), confidence)
        half = stats.t.ppf(1 - (1 - confidence) / 2, 20.0) * 0.01
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((-0.03 - half, -0.03 + half))
    # resolved at 95% (t = 3), not at the Bonferroni level of a family of 100
    assert at_level(EFFECT, fits(), 0.95)["resolved"]
    assert not at_level(EFFECT, fits(), 1 - 0.05 / 100)["resolved"]


def test_kid_without_an_interval_is_unresolved():
    row = at_level(EFFECT, fits(se=float("nan")), 0.95)
    assert pd.isna(row["ci_low"]) and not row["resolved"]
