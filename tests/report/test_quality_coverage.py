"""The quality effects' 95% intervals cover the truth on the code that prints them: bench/calibration/quality.py
reads simulated runs shaped like the quick preset (known effects and a known null, along training, on two
networks and at a tuned recipe; seed, run and reference-set noise) with the report's own code. A smaller
replicate set than docs/statistics.md's table, on seeds drawn afresh each run (the first is in the message): a
change that lets any kind of interval cover less than 92% fails here.

The case is the one the issue's probe measured: a reference x variant interaction too small to tell from the run
noise (0.1 of it). Every run is scored against one reference set, so the intervals are for the effect on that set;
with an interaction as large as the run noise they cover about 70% of the effect over reference sets
(docs/statistics.md, a known shortfall), which this test does not check."""
import numpy as np
from scipy import stats

from bench.calibration.quality import KINDS, Case, covered, replicates_of

REPLICATES = 8      # 72 intervals each: 576, and 48 of the rarest kinds
CONFIDENCE = 0.98   # two-sided Clopper-Pearson: its upper end is a one-sided 99% bound


def test_every_kind_of_quality_interval_covers_at_least_92_percent():
    first = int(np.random.SeedSequence().entropy % 2**32)
    scored = replicates_of(Case(seeds=4, reference_interaction=0.1), range(first, first + REPLICATES))
    hit = covered(scored)
    assert set(scored["kind"]) == set(KINDS)
    for kind, group in [("every kind", hit), *hit.groupby(scored["kind"])]:
        upper = stats.binomtest(int(group.sum()), len(group)).proportion_ci(CONFIDENCE).high
        assert upper >= 0.92, f"{kind}: {group.mean():.1%} of {len(group)} covered (replicates from seed {first})"
