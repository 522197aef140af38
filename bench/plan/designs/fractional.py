"""Two-level fractional factorial designs (pydoe): the generator, its runs, its resolution and its aliasing.

A generator is pydoe's string, one word per factor in the order the axes are given: ``"a b c d abcd"`` runs
the full 2^4 factorial of the first four factors and sets the fifth to the product of their levels (16 runs
instead of 32). Level -1 is an axis's first value (its reference), +1 its second.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

DEFAULT_RESOLUTION = 4       # main effects free of two-factor interactions
# Beyond this many factors pydoe's minimum-aberration search takes seconds; its resolution search does not.
MAX_SEARCHED_FACTORS = 8


def _pydoe():
    # Imported on first use: pydoe imports scipy.stats, which a command that plans no fractional design never needs.
    import pydoe

    return pydoe


def resolve_generator(factors: int, generator: str | None = None) -> str:
    """``generator`` checked against the number of factors, or by default the minimum-aberration design in the
    fewest runs that reach resolution IV (pydoe's ``fracfact_by_res`` sizes it, ``fracfact_opt`` picks it), in the
    half that holds the baseline run."""
    if generator is not None:
        words = generator.split()
        if len(words) != factors:
            raise ValueError(f"generator {generator!r} has {len(words)} word(s) for {factors} two-level axes; valid: "
                             f"one word per axis, in the order the axes are given (e.g. {_example(factors)!r})")
        try:
            _pydoe().fracfact(" ".join(words))
        except (ValueError, IndexError) as err:
            raise ValueError(f"generator {generator!r} is invalid ({err}); valid: pydoe's fracfact syntax, "
                             f"base factors as single letters, the others their products, e.g. "
                             f"{_example(factors)!r}") from err
        return " ".join(words)
    if factors < 2:
        raise ValueError(f"a fractional design needs at least 2 two-level axes; {factors} given")
    smallest = _pydoe().fracfact_by_res(factors, DEFAULT_RESOLUTION)
    base = int(math.log2(len(smallest)))
    chosen = _generator_of(smallest, base) if factors > MAX_SEARCHED_FACTORS else \
        _pydoe().fracfact_opt(factors, factors - base)[0]
    return _with_reference_run(chosen)


def _with_reference_run(generator: str) -> str:
    """The same fraction's sibling that runs every axis at its reference level together (the baseline itself):
    each generated word signed so that it is -1 where every base factor is -1. Signs change no alias."""
    words = [w.lstrip("+-") for w in generator.split()]
    return " ".join(w if len(w) == 1 or len(w) % 2 else f"-{w}" for w in words)


def _example(factors: int) -> str:
    return resolve_generator(factors) if 2 <= factors <= MAX_SEARCHED_FACTORS else "a b ab"


def _generator_of(design: np.ndarray, base: int) -> str:
    """The generator string whose ``fracfact`` is ``design``: each column as a signed product of the full
    factorial's columns (the rows of a pydoe design follow ``ff2n(base)``)."""
    full = _pydoe().fracfact(" ".join("abcdefghijklmnopqrstuvwxyz"[:base]))
    words = []
    for column in design.T:
        for size in range(1, base + 1):
            match = next((s for s in itertools.combinations(range(base), size)
                          if abs(full[:, list(s)].prod(1) @ column) == len(column)), None)
            if match is not None:
                sign = "-" if full[:, list(match)].prod(1) @ column < 0 else ""
                words.append(sign + "".join("abcdefghijklmnopqrstuvwxyz"[i] for i in match))
                break
    return " ".join(words)


def runs(generator: str) -> np.ndarray:
    """The design's runs, one row per run and one column per factor, levels -1 and +1."""
    return _pydoe().fracfact(generator)


def resolution(design: np.ndarray) -> int | None:
    """The length of the shortest word of the defining relation (None: a full factorial, no word at all)."""
    factors = design.shape[1]
    for size in range(1, factors + 1):
        for subset in itertools.combinations(range(factors), size):
            product = design[:, list(subset)].prod(1)
            if np.all(product == product[0]):
                return size
    return None


def aliasing(design: np.ndarray, names: list[str], max_order: int = 3) -> list[str]:
    """The alias chains of a two-level design among terms of at most ``max_order`` factors: terms whose contrast
    columns are equal or opposite over the runs (so a generator's sign does not matter, and the runs may come in
    any order), factors by ``names`` and interactions joined by ``×``; only chains of two or more terms (a full
    factorial has none). The same chains as pydoe's ``fracfact_aliasing`` cut to that order."""
    design = np.asarray(design, dtype=float)
    chains: dict[bytes, list[tuple[int, ...]]] = {}
    for size in range(1, min(max_order, design.shape[1]) + 1):
        for term in itertools.combinations(range(design.shape[1]), size):
            contrast = design[:, list(term)].prod(1)
            key = (contrast * contrast[0]).tobytes()  # up to sign
            chains.setdefault(key, []).append(term)
    return [" = ".join("×".join(names[i] for i in term) for term in terms)
            for terms in chains.values() if len(terms) > 1]
