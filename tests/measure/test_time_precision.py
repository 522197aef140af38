"""The time effects' 95% intervals cover the truth on the code that prints them: bench/calibration/timing.py runs
time_in_rounds (its processes, their shares of the cap, its stopping rule) and the report's rounds model on
simulated processes that carry every source of variance the real rounds have, with known effects and known nulls.
A smaller replicate set than docs/statistics.md's table, fixed seeds: a change that lets any case's intervals
cover less than 92% fails here."""
import pytest

from bench.calibration.timing import Case, Noise, replicates_of
from bench.measure.timing_cell import stop_reason
from bench.plan.sweep import RoundsBudget

REPLICATES = 25  # 10 intervals each: 250 a case, so a true 95% reads below 92% about 2% of the time


# the case the real quick preset is closest to, at the largest process level: the rule and six processes
@pytest.mark.parametrize("case", [Case(6, 0.04, "precision")], ids=str)
def test_every_case_s_intervals_cover_at_least_92_percent(case):
    scored = replicates_of(case, range(REPLICATES), Noise())
    covered = (scored["low"] <= scored["true"]) & (scored["true"] <= scored["high"])
    assert len(scored) == 10 * REPLICATES and (scored["unit"] == "process").all()
    assert covered.mean() >= 0.92, covered.groupby(scored["true"] == 0).mean()


def test_the_rule_stops_early_in_a_process_before_the_last_when_the_target_is_reached():
    # 10 processes with no process level: the target (3%) is within reach after a few of them
    scored = replicates_of(Case(10, 0.0, "precision"), range(5), Noise())
    rounds = scored.groupby("replicate")["rounds"].first()
    # the cap buys at least 34 rounds (270 s of 8 s rounds); each of these stopped in an earlier process
    assert (rounds < 34).all() and rounds.median() < 30, rounds


def test_the_rule_reads_the_guarded_width_and_never_stops_before_the_minimum_rounds():
    budget = RoundsBudget(min_rounds=10, max_seconds=60, precision=1.0)
    assert stop_reason(budget, 9, 100.0, 0.5) is None
    assert stop_reason(budget, 10, 5.0, 0.99) == "precision"
    assert stop_reason(budget, 10, 5.0, 1.01) is None
    assert stop_reason(budget, 10, 60.0, float("nan")) == "cap"
    assert stop_reason(budget, 10, 5.0, float("nan")) is None
