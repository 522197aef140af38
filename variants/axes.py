"""Ablation axes, each declared once.

An axis is a ``UNetSpec`` field whose ``metadata["axis"]`` is an ``Axis`` (see ``axis()``), or one added from
outside the package with ``add_axis``. Everything else derives from that declaration: validation, the sweep
grid, parsing of ``--axis NAME=...``, the results table's columns and dtypes, a variant's name, the report's
list of axes, and how the builder's parts are configured (``Axis.configure_parts``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from .checks import check_int, check_int_tuple, int_words
from .parts import Parts
from .registry import Registry

TYPES = {"str": str, "int": int, "bool": bool, "tuple[int, ...]": tuple}
BOOL_WORDS = {"true": True, "on": True, "1": True, "false": False, "off": False, "0": False}


@dataclass(frozen=True)
class Axis:
    """One ablation axis.

    default:  the reference level (the smalldiffusion baseline); effects are measured against it
    values:   the levels the default grid sweeps (when ``in_default_grid``); for an axis without a registry also
              the levels `bench list` offers (for a string axis, the only valid ones). A registry axis may list
              only some of its variants here (``attention`` leaves out ``cosine``): `bench list` offers, and
              validation accepts, every registered variant. ``()``: they depend on the base
    in_default_grid: swept by the default grid (``default_grid()``); other axes stay at the base's value
    registry: for a string axis, the variants it names
    minimum:  for an integer axis, the smallest valid value
    label:    ``label(value, spec)``: how a value appears in a variant's name (None: not at all); by default
              left out at the default level
    configure: ``configure(parts, value)`` changes the builder's parts (variants/assembly.py) before the U-Net is
              built, for a level that sets several parts or makes one; by default an axis puts its level into
              the part of its name (a registry axis: the class registered under it). An axis with neither is
              layout (heads, attention placement, checkpointing), read from the spec by the builder
    added:    set by ``add_axis``: the axis comes from outside the package (its values live in ``extra_axes``)
    """

    name: str
    type: type
    default: Any
    values: tuple[Any, ...] = ()
    in_default_grid: bool = False
    registry: Registry | None = None
    minimum: int = 1
    label: Callable[[Any, Any], str | None] | None = None
    doc: str = ""
    configure: Callable[[Any, Any], None] | None = None
    added: bool = False

    # --- values ---------------------------------------------------------------------------------
    def check(self, value: Any) -> None:
        """Raise ValueError naming the axis, the value and what is valid."""
        if self.type is int:
            return check_int(self.name, value, self.minimum)
        if self.type is tuple:
            return check_int_tuple(self.name, value)
        if self.registry is not None:
            if not (isinstance(value, str) and value in self.registry):
                raise ValueError(f"{self.name}={value!r} is not a registered variant; valid: "
                                 f"{', '.join(self.registry.names())}")
            return None
        if self.type is str and self.values and value not in self.values:  # a closed list of levels
            raise ValueError(f"{self.name}={value!r} is invalid; valid: {', '.join(self.values)}")
        ok, valid = (isinstance(value, bool), "True or False") if self.type is bool else (isinstance(value, str),
                                                                                           "a string")
        if not ok:
            raise ValueError(f"{self.name}={value!r} is invalid; valid: {valid}")

    def parse(self, text: str) -> Any:
        """One value as written on the command line: ``true``/``false``, ``4``, ``16+8`` (a tuple; ``none`` for
        the empty one) or a variant name."""
        text = text.strip()
        if self.type is bool:
            if text.lower() not in BOOL_WORDS:
                raise ValueError(f"{self.name} value {text!r} is invalid; valid: true, false")
            return BOOL_WORDS[text.lower()]
        if self.type is int:
            if not text.isdecimal():
                raise ValueError(f"{self.name} value {text!r} is invalid; valid: {int_words(self.minimum)}")
            value = int(text)
        elif self.type is tuple:
            parts = [] if text.lower() == "none" else text.split("+")
            if not all(p.strip().isdecimal() for p in parts):
                raise ValueError(f"{self.name} value {text!r} is invalid; valid: resolutions joined by '+' "
                                 "(e.g. 16+8), or none")
            value = tuple(int(p) for p in parts)
        else:
            value = text
        self.check(value)
        return value

    def parse_json(self, value: Any) -> Any:
        """A value read back from JSON, which has lists where the spec has tuples."""
        return tuple(value) if self.type is tuple and isinstance(value, list) else value

    def cell(self, value: Any) -> Any:
        """The value as the results table holds it (tuples as ``16+8`` text, so every column stays scalar)."""
        if self.type is tuple:
            return "+".join(map(str, value)) if value else "none"
        return value

    @property
    def empty(self) -> Any:
        """The table's value for a row with no model (the real-data floor)."""
        return {bool: False, int: None}.get(self.type, "")

    @property
    def dtype(self) -> str:
        return {bool: "bool", int: "Int64"}.get(self.type, "str")

    def configure_parts(self, parts: Any, value: Any) -> None:
        """Put this axis's level into the builder's parts (see ``configure``)."""
        if self.configure is not None:
            self.configure(parts, value)
        elif hasattr(parts, self.name):
            setattr(parts, self.name, self.registry.get(value) if self.registry is not None else value)

    def name_part(self, value: Any, spec: Any) -> str | None:
        """This axis's part of a variant's name, or None to leave it out."""
        if self.label is not None:
            return self.label(value, spec)
        if value == self.default:
            return None
        if self.type is bool:
            return self.name if value else f"no_{self.name}"
        return str(value) if self.type is str else f"{self.name}={self.cell(value)}"

    def levels(self) -> list[str]:
        """The levels ``bench list`` offers, as written on the command line: the registered variants (reference
        first), the declared values, or none when they depend on the base."""
        values = self.registry.names() if self.registry is not None else self.values
        shown = [self.text(v) for v in values]
        reference = self.text(self.default)
        return sorted(shown, key=lambda v: v != reference) if reference in shown else shown

    def text(self, value: Any) -> str:
        """A value, from a spec or as the results table holds it, as ``--axis`` takes it: ``true``, ``4``, ``16+8``,
        ``nearest_conv``."""
        return value_text(bool(value) if self.type is bool else value)

    def describe(self) -> str:
        """One line for ``python -m bench list``."""
        grid = ", in the default grid" if self.in_default_grid else ""
        reference = f"reference {self.text(self.default)}" if self.values or self.registry else "reference: the base's"
        return f"{', '.join(self.levels()) or 'any'} ({reference}{grid}){': ' + self.doc if self.doc else ''}"


def value_text(value: Any) -> str:
    """A value as the command line writes it (``--axis``, a base's name, a recipe): ``true``, ``0.01``, ``16+8``,
    ``none`` for an empty tuple. The one formatter, so that a level reads the same wherever it is printed."""
    if isinstance(value, (tuple, list)):
        return "+".join(map(str, value)) or "none"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def axis(default: Any, **declaration: Any) -> Any:
    """A ``UNetSpec`` field that is an ablation axis; name and type come from the field itself."""
    return dataclasses.field(default=default, metadata={"axis": declaration})


# Every axis by name, in declaration order: the spec's own fields, then any added with add_axis.
AXES: dict[str, Axis] = {}


def collect(spec_class: type) -> None:
    """Register the axes declared as fields of ``spec_class`` (called once, by spec.py)."""
    for field in dataclasses.fields(spec_class):
        if "axis" in field.metadata:
            AXES[field.name] = Axis(name=field.name, type=TYPES[str(field.type)], default=field.default,
                                    **field.metadata["axis"])


def add_axis(new: Axis) -> Axis:
    """Add an axis from outside the package (a plugin): its values live in the spec's ``extra_axes`` and
    ``new.configure(parts, value)`` changes how the builder makes the U-Net's blocks (variants/assembly.py).
    Re-adding the same declaration is a no-op."""
    new = dataclasses.replace(new, added=True)
    if new.configure is None and not (new.registry is not None and new.name in Parts.__dataclass_fields__):
        raise ValueError(f"axis {new.name!r}: an axis added from outside the package needs configure(parts, value), "
                         f"or a registry named after a part ({', '.join(Parts.__dataclass_fields__)})")
    if new.name in AXES and AXES[new.name] != new:
        raise ValueError(f"axis {new.name!r} already exists; valid: a new name, not one of {', '.join(AXES)}")
    new.check(new.default)
    AXES[new.name] = new
    return new


def get_axis(name: str) -> Axis:
    if name not in AXES:
        raise ValueError(f"unknown axis {name!r}; valid axes: {', '.join(AXES)}")
    return AXES[name]


def default_grid() -> dict[str, tuple[Any, ...]]:
    """The default sweep's values of each axis in it."""
    return {a.name: a.values for a in AXES.values() if a.in_default_grid}


def markdown_table() -> str:
    """Every axis as a Markdown table (README's): name, levels with the reference level first, what it is."""
    rows = ["| axis | levels (reference first) | what it is |", "|---|---|---|"]
    for declared in AXES.values():
        levels = " · ".join(f"`{v}`" for v in declared.levels()) or "the base's own (e.g. `16`, `16+8`)"
        rows.append(f"| `{declared.name}` | {levels} | {declared.doc} |")
    return "\n".join(rows)


def parse_axis(text: str) -> tuple[str, tuple[Any, ...]]:
    """``NAME=V1,V2`` -> (name, values), each typed and checked by its axis."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or name not in AXES or not values.strip():
        raise ValueError(f"--axis {text!r} is invalid; valid: NAME=V1,V2 with NAME one of {', '.join(AXES)}")
    try:
        return name, tuple(AXES[name].parse(v) for v in values.split(","))
    except ValueError as err:
        raise ValueError(f"--axis {err}") from err
