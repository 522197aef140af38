"""A sweep is a list of cells; a cell is the unit of work one worker process runs.

Kinds: ``cost`` (one variant on one device: counts and memory), ``timing`` (the timed phases of every
variant of one setting, in randomized rounds in one process: its ``members`` are those variants' cells),
``quality`` (train, sample and score one functional variant with one seed, or with each of its ``seeds``
trained together in one process), ``floor`` (real-versus-real
scores at the same N), ``check`` (checkpointing on and off give the same losses, so quality is trained
only with it off), ``tune`` (a quality cell at one point of a tuning grid, with tuning seeds, scored on validation
images: bench/plan/tuning.py).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from bench.plan.quality_presets import QUALITY_PRESETS
from bench.plan.recipe import recipe_of, recipe_text, with_recipe
from bench.schema import COST_KINDS, DEFAULT_EXECUTION, RECIPE_EMPTY, TRAINED_KINDS, Kind
from variants import AXES, UNetSpec


@dataclass(frozen=True)
class Cell:
    kind: str
    spec: UNetSpec | None      # None for the real-data floor
    device: str
    dtype: str = DEFAULT_EXECUTION["dtype"]
    batch_size: int = 0        # cost cells; quality cells take theirs from the quality config
    threads: int = 1
    seed: int = 0
    quality: str = ""          # quality preset (plan/quality_presets.py) of quality, floor and check cells
    dataset: str = ""          # the data set that preset trains and scores on
    base_config: str = ""
    peer: str = ""                    # a bench.models.peers name: the peer's closest match to spec, not our U-Net
    memory_format: str = DEFAULT_EXECUTION["memory_format"]  # execution options (bench.plan.execution)
    compile: bool = DEFAULT_EXECUTION["compile"]
    cuda_graphs: bool = DEFAULT_EXECUTION["cuda_graphs"]  # compiled with mode="reduce-overhead"
    replica: int = 0                   # 1: a second instance of the same model, the A/A timing control
    rung: str = ""                     # design "ladder": the rung this variant is, and its position (0: first)
    rung_index: int = 0
    seeds: tuple[int, ...] = ()        # a quality cell's seeds trained together (empty: ``seed`` alone)
    members: tuple[Cell, ...] = ()     # a timing cell's models, each timed once per round
    recipe: tuple[tuple[str, Any], ...] = ()  # trained cells: recipe axes set off the quality preset's values

    def __post_init__(self) -> None:
        # JSON has lists where a cell has tuples: from_json(to_json(c)) == c
        for name in ("members", "seeds"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "recipe", tuple((name, value) for name, value in self.recipe))

    @functools.cached_property  # a timing cell's JSON holds every member: hashed once, not once per row
    def id(self) -> str:
        """Stable across processes and sessions: resume finds finished cells by it."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @property
    def runs_alone(self) -> bool:
        """Whether the cell needs the machine to itself: a timing cell times its members, a compiled cost cell
        times its compiler. Other cost cells count, and take a process's own peak memory, which no neighbour
        changes, so they run ``jobs`` at a time with the untimed kinds."""
        return self.kind == Kind.TIMING or (self.kind == Kind.COST and self.compile)

    @property
    def variant(self) -> str:
        if self.members:
            return "group"  # a timing cell's own rows (memory, calibration); its members' rows name theirs
        if self.peer:
            return f"peer:{self.peer}"
        return self.spec.name if self.spec else "real"

    @property
    def label(self) -> str:
        if self.kind == Kind.TIMING:
            return f"{self.kind:<7} {len(self.members)} models in randomized rounds on {self.device}" + \
                self._options_label()
        what = self.variant if self.spec else "real data"
        if self.recipe:
            what += " at " + recipe_text(self.recipe)
        seed = f" seed {self.seed}" if self.kind not in COST_KINDS else ""
        if self.seeds:
            seed = f" seeds {', '.join(map(str, self.seeds))} at once"
        return f"{self.kind:<7} {what}{seed} on {self.device}" + self._options_label()

    @property
    def config(self):  # -> QualityConfig
        """A trained cell's quality preset with its recipe applied."""
        return with_recipe(QUALITY_PRESETS[self.quality], self.recipe)

    def _options_label(self) -> str:
        options = [o for o in (self.memory_format != DEFAULT_EXECUTION["memory_format"] and self.memory_format,
                               self.dtype != DEFAULT_EXECUTION["dtype"] and self.dtype,
                               self.compile and "compiled", self.cuda_graphs and "CUDA graphs") if o]
        return f" ({', '.join(options)})" if options else ""

    def to_dict(self) -> dict[str, Any]:
        """Every field, as JSON holds it: the cell's id hashes all of them."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["spec"] = self.spec.to_dict() if self.spec else None
        data["members"] = [m.to_dict() for m in self.members]
        data["seeds"] = list(self.seeds)
        data["recipe"] = [list(pair) for pair in self.recipe]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        data = dict(data)
        data["spec"] = UNetSpec.from_dict(data["spec"]) if data["spec"] else None
        data["members"] = tuple(cls.from_dict(m) for m in data["members"])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> Cell:
        return cls.from_dict(json.loads(text))

    def identity_columns(self, member: int | None = None) -> dict[str, Any]:
        """The columns every row of this cell carries (see bench.schema.columns); for a timing cell's
        row of ``member``, that member's model columns under the timing cell's id and kind."""
        if member is not None:
            return self.members[member].identity_columns() | {"cell_id": self.id, "kind": self.kind}
        spec = self.spec
        axes = {name: axis.cell(getattr(spec, name)) if spec else axis.empty for name, axis in AXES.items()}
        recipe = recipe_of(self.config) if self.kind in TRAINED_KINDS else RECIPE_EMPTY
        return {
            "cell_id": self.id, "kind": self.kind, "variant": self.variant, "spec_hash": spec.hash if spec else "",
            **axes, **recipe,
            "base_config": self.base_config, "quality_preset": self.quality, "dataset": self.dataset,
            "device": self.device, "dtype": self.dtype, "threads": self.threads, "batch_size": self.batch_size,
            "peer": self.peer, "memory_format": self.memory_format, "compile": self.compile,
            "cuda_graphs": self.cuda_graphs, "replica": self.replica,
            "rung": self.rung, "rung_index": self.rung_index if self.rung else None,
        }
