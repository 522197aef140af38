"""Recipe axes: training settings swept or tuned like architecture axes, on quality cells only.

An architecture axis (variants.AXES) changes the network, so it changes what cost cells count and time. A recipe
axis changes how a quality cell trains (its learning rate, schedule, weight decay and EMA): a cost cell ignores it,
so one network's costs are measured once however many recipes train it. Each recipe axis is a field of
``QualityConfig``; a cell's ``recipe`` holds only the values that differ from its quality preset, so a cell that
sets none keeps the id it has always had.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable

from bench.plan.quality_presets import LR_SCHEDULES, QualityConfig
from bench.schema import RECIPE_TYPES
from variants import value_text


@dataclass(frozen=True)
class RecipeAxis:
    name: str
    type: type
    doc: str

    def parse(self, text: str) -> Any:
        """One ``--axis`` value, checked by ``QualityConfig.validate`` (which names what is valid)."""
        text = text.strip()
        try:
            value = self.type(text)
        except ValueError:
            raise ValueError(f"{self.name}={text!r} is invalid; valid: {self.doc}") from None
        return self.check(value)

    def check(self, value: Any) -> Any:
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # TOML's 0 is an int
        if not isinstance(value, self.type) or isinstance(value, bool):
            raise ValueError(f"{self.name}={value!r} is invalid; valid: {self.doc}")
        QualityConfig().replace(**{self.name: value})  # validate() names the field, the value and what is valid
        return value


# What a valid value is, per recipe axis; the axes, their order and their types are the table's columns
# (bench.schema.RECIPE_TYPES).
_VALID = {
    "lr": "a positive float (AdamW's peak learning rate)",
    "lr_schedule": ", ".join(LR_SCHEDULES),
    "weight_decay": "a float >= 0 (AdamW's decoupled weight decay; 0 disables it)",
    "ema_decay": "a float in [0, 1) (0 samples the raw weights)",
}
RECIPE_AXES: dict[str, RecipeAxis] = {name: RecipeAxis(name, kind, _VALID[name]) for name, kind in RECIPE_TYPES.items()}


def recipe_text(pairs: Iterable[tuple[str, Any]]) -> str:
    """``lr=0.01, lr_schedule=inv_sqrt``: a recipe's (name, value) pairs as labels and reports show them."""
    return ", ".join(f"{name}={value_text(value)}" for name, value in pairs)


def recipe_of(config: QualityConfig) -> dict[str, Any]:
    """The recipe a quality preset trains with, axis by axis."""
    return {name: getattr(config, name) for name in RECIPE_AXES}


def with_recipe(config: QualityConfig, recipe: tuple[tuple[str, Any], ...]) -> QualityConfig:
    """``config`` with a cell's recipe values applied."""
    return dataclasses.replace(config, **dict(recipe)) if recipe else config


def recipe_changes(config: QualityConfig, values: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A cell's ``recipe``: the values that differ from ``config``'s, in RECIPE_AXES order."""
    return tuple((name, values[name]) for name in RECIPE_AXES
                 if name in values and values[name] != getattr(config, name))


def parse_recipe_option(text: str, option: str) -> tuple[str, tuple[Any, ...]]:
    """``NAME=V1,V2`` of a recipe axis -> (name, values); ValueError naming ``option`` and what is valid."""
    name, _, values = text.partition("=")
    name = name.strip()
    if name not in RECIPE_AXES or not values.strip():
        raise ValueError(f"{option} {text!r} is invalid; valid: NAME=V1,V2 with NAME one of {', '.join(RECIPE_AXES)}")
    try:
        return name, tuple(RECIPE_AXES[name].parse(v) for v in values.split(","))
    except ValueError as err:
        raise ValueError(f"{option} {err}") from err
