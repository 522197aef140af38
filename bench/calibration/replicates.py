"""What the calibration harnesses share: simulated replicates spread over worker processes, and their command line."""
from __future__ import annotations

import argparse
import gc
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

import pandas as pd

from bench.report.render.markup import markdown_table

Case = TypeVar("Case")


def scored_cases(replicates_of: Callable[[Case, range, object], pd.DataFrame], cases: Sequence[Case],
                 replicates: int, noise: object, workers: int, chunk: int) -> Iterator[tuple[Case, pd.DataFrame]]:
    """Per case, as each is done, its scored intervals over ``replicates`` seeds, ``chunk`` seeds per task on
    ``workers`` spawned processes (``replicates_of(case, seeds, noise)`` must be importable by name)."""
    chunks = [range(start, min(start + chunk, replicates)) for start in range(0, replicates, chunk)]
    # statsmodels' Holm (effect_table) runs gc.collect on every call: frozen, a worker's imports are not walked again
    # in every replicate (a quarter of the quality harness's time)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=gc.freeze) as pool:
        futures = {case: [pool.submit(replicates_of, case, seeds, noise) for seeds in chunks] for case in cases}
        for case in cases:
            yield case, pd.concat([f.result() for f in futures[case]], ignore_index=True)


def command_line(description: str, replicate_help: str, coverage: Callable[..., Iterator[dict]],
                 cases: Sequence, table_for_docs: Callable[[pd.DataFrame], pd.DataFrame],
                 argv: list[str] | None = None) -> None:
    """Run ``cases``, print each case's summary as it is done, then the table the docs commit."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--replicates", type=int, default=200, help=replicate_help)
    parser.add_argument("--workers", type=int, default=2, help="processes sharing the replicates (default 2)")
    parser.add_argument("--out", type=Path, help="also write the summary here as CSV, each case as it is done")
    args = parser.parse_args(argv)
    start, rows = time.perf_counter(), []
    for row in coverage(cases, args.replicates, workers=args.workers):
        rows.append(row)
        print(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        if args.out:  # every finished case kept, should the rest be interrupted
            pd.DataFrame(rows).to_csv(args.out, index=False)
    print(f"{args.replicates} replicates per case in {time.perf_counter() - start:.0f} s\n")
    print("\n".join(markdown_table(table_for_docs(pd.DataFrame(rows)))))
