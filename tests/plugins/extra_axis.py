"""An ablation axis added from outside the package, the way a user's plugin would add one
(``python -m bench run --import extra_axis --axis activation=silu,gelu``): one registry, its classes and one
``add_axis`` declaration."""
from torch import nn

from variants import Axis, Registry, add_axis

ACTIVATIONS: Registry[nn.Module] = Registry("activation")
ACTIVATIONS.register("silu")(nn.SiLU)
ACTIVATIONS.register("gelu")(nn.GELU)


def use_activation(model: nn.Module, name: str) -> None:
    """Swap every SiLU of the built model for the named activation."""
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.SiLU):
                setattr(parent, child_name, ACTIVATIONS.get(name)())


add_axis(Axis(name="activation", type=str, default="silu", values=("silu", "gelu"), registry=ACTIVATIONS,
              apply=use_activation, doc="the block's nonlinearity"))
