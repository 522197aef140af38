"""A sweep is a list of cells; a cell is the unit of work one worker process runs.

Kinds: ``cost`` (one variant on one device), ``quality`` (train, sample and score one functional variant
with one seed), ``floor`` (real-versus-real scores at the same N), ``check`` (checkpointing on and off give
the same losses, so quality is trained only with it off).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from variants import UNetSpec

KINDS = ("cost", "quality", "floor", "check")


@dataclass(frozen=True)
class Cell:
    kind: str
    spec: UNetSpec | None      # None for the real-data floor
    device: str
    dtype: str = "float32"
    batch_size: int = 0        # cost cells; quality cells take theirs from the quality config
    threads: int = 1
    seed: int = 0
    dataset: str = ""          # quality preset name for quality/floor/check cells
    base_config: str = ""
    peer: str = ""                    # a bench.peers name: the peer's closest match to spec, not our U-Net
    memory_format: str = "contiguous"  # execution options (bench.measure.execution), with dtype
    compile: bool = False

    @property
    def id(self) -> str:
        """Stable across processes and sessions: resume finds finished cells by it."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]

    @property
    def variant(self) -> str:
        if self.peer:
            return f"peer:{self.peer}"
        return self.spec.name if self.spec else "real"

    @property
    def label(self) -> str:
        what = self.variant if self.spec else "real data"
        seed = f" seed {self.seed}" if self.kind != "cost" else ""
        options = [o for o in (self.memory_format != "contiguous" and self.memory_format,
                               self.dtype != "float32" and self.dtype, self.compile and "compiled") if o]
        return f"{self.kind:<7} {what}{seed} on {self.device}" + (f" ({', '.join(options)})" if options else "")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["spec"] = self.spec.to_dict() if self.spec else None
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Cell:
        data = json.loads(text)
        data["spec"] = UNetSpec.from_dict(data["spec"]) if data["spec"] else None
        return cls(**data)

    def identity_columns(self) -> dict[str, Any]:
        """The columns every row of this cell carries (see bench.schema.CELL_COLUMNS)."""
        spec = self.spec
        return {
            "cell_id": self.id, "kind": self.kind,
            "variant": self.variant, "peer": self.peer,
            "spec_hash": spec.hash if spec else "",
            "upsample": spec.upsample if spec else "",
            "time_injection": spec.time_injection if spec else "",
            "attn_heads": spec.attn_heads if spec else 0,
            "checkpoint": spec.checkpoint if spec else False,
            "attention": spec.attention if spec else "",
            "base_config": self.base_config, "dataset": self.dataset, "device": self.device, "dtype": self.dtype,
            "threads": self.threads, "batch_size": self.batch_size,
            "memory_format": self.memory_format, "compile": self.compile,
        }
