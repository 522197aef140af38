"""An ablation axis added from outside the package, the way a user's plugin would add one
(``python -m bench run --import extra_axis --axis activation=silu,gelu``): one registry, its classes and one
``add_axis`` declaration whose ``configure`` changes the parts every block is built with."""
from torch import nn

from variants import Axis, Parts, Registry, add_axis

ACTIVATIONS: Registry[nn.Module] = Registry("activation")
ACTIVATIONS.register("silu")(nn.SiLU)
ACTIVATIONS.register("gelu")(nn.GELU)


def use_activation(parts: Parts, name: str) -> None:
    """Every block's nonlinearity; at the reference level the baseline's own (in place where that is safe)."""
    if name != "silu":
        parts.act = lambda fresh_input: ACTIVATIONS.get(name)()


add_axis(Axis(name="activation", type=str, default="silu", values=("silu", "gelu"), registry=ACTIVATIONS,
              configure=use_activation, doc="the block's nonlinearity"))
