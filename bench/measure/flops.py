"""Floating-point work of a forward pass and of a training step, total and per block type.

Two independent counters, cross-checked on every call:

- fvcore (``FlopCountAnalysis``, JIT trace): forward multiply-accumulates (unit ``MAC``). It has no
  handle for ``aten::scaled_dot_product_attention``, so we add one. An op without a handle counts zero only
  when something says it does no multiply-adds (``no_macs_reason``): torch's own op metadata (a pointwise or
  reduction tag, a view), our list of memory-bound ops (``MEMORY_BOUND_OPS``: norms, resampling, padding,
  ...), or a plugin's ``count_op``. Any other op raises, naming it and the line that declares it, so a new
  heavy op fails a sweep instead of counting zero.
- ``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs per multiply-add (unit ``FLOP``), for the
  forward and for a training step (forward, MSE loss, backward; the loss and the optimizer update are
  elementwise and count nothing). It runs on a meta-device twin of the model: shapes only, no
  arithmetic and no memory. On CPU tensors this torch has no formula for its fused SDPA kernel
  (``_scaled_dot_product_flash_attention_for_cpu``) and would count attention as 0; ``CPU_SDPA_FORMULAS``
  fills that gap for real-device counts, and on meta SDPA runs as plain matmuls that are counted.

Both count the same ops: convolutions (transposed included), matmul-like ops (linear, addmm, mm,
bmm, matmul, einsum), attention (``QK^T`` and ``AV``) and the ops plugins declare MACs for. Normalisation,
activations, resampling and other elementwise ops are memory-bound and left out by both, so ``2 * MAC ==
FLOP`` exactly for the forward, which ``count_flops`` checks per block type: a heavy op one counter sees and
the other does not fails that check.

With gradient checkpointing the training step's recompute is counted (metric ``flops``);
``model_flops`` is the same step without checkpointing, the work the model itself needs. The
recompute is less than the checkpointed blocks' forward: torch's non-reentrant checkpoint stops
recomputing once the last tensor backward needs is back (``set_checkpoint_early_stop``).

On meta, attention is counted as its unfused math: QK^T and AV forward, four gradient matmuls
backward. Fused kernels (CPU flash, CUDA flash / efficient / cuDNN) also recompute QK^T in backward,
one more B*heads*T^2*d matmul per attention call (2*B*T^2*C FLOPs); ``on_meta=False`` counts that.
"""
from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from math import prod
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from bench.measure.blocks import block_modules, block_types, breakdown_rows, sum_by_block
from bench.schema import COUNTED_PHASES, FLOPS, FORWARD, INFERENCE, MODEL_FLOPS, TRAIN_STEP, Measurement
from variants import build

with warnings.catch_warnings():  # fvcore's import calls the deprecated torch.jit.script
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import (
        addmm_flop_jit,
        bmm_flop_jit,
        conv_flop_jit,
        einsum_flop_jit,
        get_shape,
        linear_flop_jit,
        matmul_flop_jit,
    )

FVCORE = "fvcore"
FLOP_COUNTER = "torch.utils.flop_counter"
UNATTRIBUTED = "unattributed"

# Ops with no multiply-adds that torch's own metadata does not mark (no pointwise or reduction tag, not a view):
# normalisation, resampling, pooling, padding, concatenation, softmax, random numbers and constant fills.
# O(elements) work, memory-bound, and counted by neither fvcore nor FlopCounterMode.
MEMORY_BOUND_OPS = (
    "aten::group_norm", "aten::layer_norm", "aten::batch_norm", "aten::instance_norm", "aten::rms_norm",
    "aten::upsample_nearest2d", "aten::upsample_bilinear2d", "aten::upsample_bicubic2d",
    "aten::avg_pool2d", "aten::max_pool2d", "aten::adaptive_avg_pool2d",
    "aten::pad", "aten::constant_pad_nd", "aten::cat", "aten::stack", "aten::repeat",
    "aten::softmax", "aten::log_softmax", "aten::rand", "aten::randn", "aten::dropout",
    "aten::rsub",  # a - b: pointwise, but its composite op carries no tag
    "aten::new_ones",  # a constant fill: EDM2's channel of ones (the ones_channel axis)
)
# Ops a plugin declared with count_op: name -> multiply-adds from (input shapes, output shapes), or None.
DECLARED_OPS: dict[str, Callable[[list[Any], list[Any]], int] | None] = {}


def count_op(name: str, macs: Callable[[list[Any], list[Any]], int] | None = None) -> None:
    """Tell both FLOP counters how to count an op of a plugin's variant, e.g. ``count_op("aten::pixel_shuffle")``.

    ``macs(input_shapes, output_shapes)`` returns its multiply-adds (a non-tensor input is passed as its value);
    None declares an op with none (memory-bound). ``name`` is the op as the error that asked for it spells it
    (``aten::...`` or a custom op's ``namespace::op``)."""
    namespace, sep, op = name.partition("::")
    if not sep or not namespace or not op:
        raise ValueError(f"count_op: name={name!r} is invalid; valid: 'namespace::op', e.g. 'aten::pixel_shuffle'")
    DECLARED_OPS[name] = macs


def no_macs_reason(name: str) -> str | None:
    """Why ``name`` does no multiply-adds: a plugin's declaration, torch's own op metadata (a pointwise or
    reduction tag, a view), or our list of memory-bound ops; None when nothing says so."""
    if name in DECLARED_OPS and DECLARED_OPS[name] is None:
        return "declared by a plugin"
    if name in MEMORY_BOUND_OPS:
        return "memory-bound"
    namespace, _, op = name.partition("::")
    packet = getattr(torch.ops.aten, op, None) if namespace == "aten" else None
    if packet is None:
        return None
    # Its main overload on tensors (``add.Tensor``, ``log.default``); TorchScript's scalar overloads (``add.default``
    # on two numbers, ``log.float``) carry no tags. Only that one is looked at: making every overload's object can
    # crash a later dispatch (seen with torch 2.14 under FlopCounterMode).
    main = next((o for o in ("Tensor", "Tensor_Tensor", "self", "default") if o in packet.overloads()),
                packet.overloads()[0])
    overload = getattr(packet, main)
    if torch.Tag.pointwise in overload.tags:
        return "pointwise"
    if torch.Tag.reduction in overload.tags:
        return "reduction"
    if overload.is_view:
        return "view"
    return None


def _sdpa_macs(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for aten::scaled_dot_product_attention: QK^T then AV, each (..., Tq, Tk) x d."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch, t_q, d_qk = prod(q[:-2]), q[-2], q[-1]
    t_k, d_v = k[-2], v[-1]
    return batch * t_q * t_k * (d_qk + d_v)


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                            **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


# The same formulas torch registers for its CUDA flash / efficient kernels, for the CPU kernel.
CPU_SDPA_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flop,
}


# The ops fvcore counts (multiply-adds), replacing its defaults, which also count norms and resampling; the
# ops a plugin declares with count_op join them.
COUNTED_OPS = {
    "aten::_convolution": conv_flop_jit,  # transposed too: Cin * Cout * k * k per input pixel
    "aten::linear": linear_flop_jit,
    "aten::addmm": addmm_flop_jit,
    "aten::mm": matmul_flop_jit,
    "aten::matmul": matmul_flop_jit,
    "aten::bmm": bmm_flop_jit,
    "aten::einsum": einsum_flop_jit,
    "aten::scaled_dot_product_attention": _sdpa_macs,
}


def _fvcore_handle(macs: Callable[[list[Any], list[Any]], int]) -> Callable[[list[Any], list[Any]], int]:
    """A plugin's ``macs(input_shapes, output_shapes)`` as an fvcore handle, which is given traced values."""
    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        shape = lambda v: get_shape(v) if v.isCompleteTensor() else v.toIValue()
        return int(macs([shape(v) for v in inputs], [get_shape(v) for v in outputs]))
    return handle


def _flop_counter_formula(macs: Callable[[list[Any], list[Any]], int]) -> Callable[..., int]:
    """A plugin's ``macs`` as a FlopCounterMode formula (given shapes, ``out_shape``): 2 FLOPs per multiply-add."""
    def formula(*inputs: Any, out_shape: Any = None, **kwargs: Any) -> int:
        outputs = list(out_shape) if isinstance(out_shape, (tuple, list)) and out_shape and \
            isinstance(out_shape[0], (tuple, list, torch.Size)) else [out_shape]
        return 2 * int(macs(list(inputs), outputs))
    return formula


def _declared_formulas() -> dict[Any, Callable[..., int]]:
    """FlopCounterMode's custom mapping: the CPU SDPA kernel's formulas and every op a plugin declared MACs for."""
    formulas = dict(CPU_SDPA_FORMULAS)
    for name, macs in DECLARED_OPS.items():
        if macs is not None:
            namespace, _, op = name.partition("::")
            formulas[getattr(getattr(torch.ops, namespace), op)] = _flop_counter_formula(macs)
    return formulas


def fvcore_macs(model: nn.Module, x: Tensor, sigma: Tensor) -> tuple[int, dict[str, int], dict[str, str]]:
    """Forward multiply-adds of ``model(x, sigma)`` by fvcore with our handles (traced without autograd, as
    inference runs it): the total, per qualified module name, and the ops counted as having none, with why
    (``no_macs_reason``), for any model, ours or a peer's. Raises RuntimeError naming any op that nothing says
    how to count, and the one line that declares it."""
    declared = {name: _fvcore_handle(macs) for name, macs in DECLARED_OPS.items() if macs is not None}
    analysis = (
        FlopCountAnalysis(model, (x, sigma))
        .clear_op_handles()
        .set_op_handle(**COUNTED_OPS, **declared)
        .unsupported_ops_warnings(False)  # we classify or raise instead
        .uncalled_modules_warnings(False)
    )
    with torch.no_grad():
        total = analysis.total()
    without_macs = {op: no_macs_reason(op) for op in analysis.unsupported_ops()}
    unknown = sorted(op for op, why in without_macs.items() if why is None)
    if unknown:
        raise RuntimeError(
            f"fvcore cannot count {', '.join(unknown)}: no handle, and nothing says it does no multiply-adds. "
            f"Declare it in the plugin that uses it: `from bench.measure.flops import count_op; "
            f"count_op({unknown[0]!r})` if it does none, or count_op({unknown[0]!r}, macs=lambda inputs, "
            "outputs: ...) with its multiply-adds")
    return total, dict(analysis.by_module()), without_macs


def fvcore_forward_macs(model: nn.Module, x: Tensor, sigma: Tensor) -> tuple[int, dict[str, int]]:
    """``fvcore_macs`` of our U-Net: the total and per block type."""
    total, by_module, _ = fvcore_macs(model, x, sigma)
    return total, sum_by_block(by_module, block_modules(model))


def meta_twin(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose parameters and buffers live on the meta device (shapes, no storage).

    The real tensors are never copied: deepcopy finds their meta stand-ins in its memo.
    """
    memo: dict[int, Any] = {}
    for t in (*model.parameters(), *model.buffers()):
        twin = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(twin, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else twin
    return copy.deepcopy(model, memo)


class _BlockAttribution(TorchDispatchMode):
    """Credits each op's FLOPs (as the FlopCounterMode beneath it counts them) to a block type.

    Forward ops (and checkpointing's recompute) belong to the block whose forward is running. Backward
    ops belong to the block that created the autograd node being executed: each block's forward tags
    the graph nodes between its output and its inputs. FlopCounterMode's own module tracker cannot
    do this: it brackets a module's backward by the first gradient reaching its output and the last
    leaving its input, which around a residual branch takes in the whole branch.
    """

    def __init__(self, counter: FlopCounterMode, blocks: list[tuple[str, nn.Module]]) -> None:
        super().__init__()
        self.counter = counter
        self.flops: dict[str, int] = defaultdict(int)
        self.unattributed_ops: dict[str, int] = defaultdict(int)
        self._running: list[str] = []
        self._node_block: dict[Any, str] = {}
        self._hooks = []
        for kind, module in blocks:
            self._hooks += self._watch(kind, module)

    def _watch(self, kind: str, module: nn.Module) -> list:
        def enter(_module: nn.Module, _args: tuple) -> None:
            self._running.append(kind)

        def leave(_module: nn.Module, args: tuple, output: Any) -> None:
            self._running.pop()
            if output is not None:
                self._tag(kind, args, output)

        # always_call: checkpointing stops its recompute early by raising inside the block's forward.
        return [module.register_forward_pre_hook(enter), module.register_forward_hook(leave, always_call=True)]

    def _tag(self, kind: str, args: tuple, output: Any) -> None:
        inputs = {a.grad_fn for a in args if isinstance(a, Tensor)}
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        stack = [o.grad_fn for o in outputs if isinstance(o, Tensor)]
        while stack:
            node = stack.pop()
            if node is None or node in inputs or node in self._node_block:
                continue
            self._node_block[node] = kind
            stack.extend(fn for fn, _ in node.next_functions)

    def _current_block(self) -> str:
        if self._running:
            return self._running[-1]
        return self._node_block.get(torch._C._current_autograd_node(), UNATTRIBUTED)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        before = self.counter.get_total_flops()
        out = func(*args, **(kwargs or {}))
        added = self.counter.get_total_flops() - before
        if added:
            block = self._current_block()
            self.flops[block] += added
            if block == UNATTRIBUTED:
                self.unattributed_ops[str(func)] += added
        return out

    def __exit__(self, *exc: Any) -> Any:
        for hook in self._hooks:
            hook.remove()
        return super().__exit__(*exc)


def _check_phase(phase: str) -> None:
    if phase not in COUNTED_PHASES:
        raise ValueError(f"phase={phase!r} is invalid; valid: {', '.join(COUNTED_PHASES)}")


def _run_phase(model: nn.Module, x: Tensor, sigma: Tensor, phase: str) -> None:
    """``forward``, or ``train_step``: forward, MSE loss and backward (the loss and the optimizer update are
    elementwise and count nothing), with autograd on as training runs it."""
    with torch.enable_grad():
        out = model(x, sigma)
        if phase == TRAIN_STEP:
            F.mse_loss(out, torch.zeros_like(out)).backward()


def _without_checkpointing(model: nn.Module) -> nn.Module:
    """A checkpointed U-Net's checkpoint-free twin on meta (same shapes, no recompute); any other model,
    peers included (their spec never checkpoints), as it is."""
    if not getattr(getattr(model, "spec", None), "checkpoint", False):
        return model
    with torch.device("meta"):
        return build(model.spec.replace(checkpoint=False))


def flop_counter_flops(model: nn.Module, x: Tensor, sigma: Tensor, phase: str,
                       on_meta: bool = True) -> tuple[int, dict[str, int]]:
    """FlopCounterMode FLOPs of ``forward`` or ``train_step`` (forward, MSE loss, backward): the total
    and per block type. ``on_meta=False`` runs on the model's own device (slower; a cross-check)."""
    _check_phase(phase)
    if on_meta:
        model, x, sigma = meta_twin(model), x.to("meta"), sigma.to("meta")
    modules = dict(model.named_modules())
    blocks = block_modules(model)
    counter = FlopCounterMode(display=False, custom_mapping=_declared_formulas())
    by = _BlockAttribution(counter, [(kind, modules[name]) for name, kind in blocks.items()])
    with counter, by:
        _run_phase(model, x, sigma, phase)
    if by.unattributed_ops:
        raise RuntimeError(f"{phase}: FLOPs outside every block, by op: {dict(by.unattributed_ops)}")
    by_block = {kind: by.flops.get(kind, 0) for kind in block_types(blocks)}
    return counter.get_total_flops(), by_block


def total_flops(model: nn.Module, x: Tensor, sigma: Tensor, phase: str) -> int:
    """FlopCounterMode FLOPs of ``forward`` or ``train_step`` on a meta twin, total only: for any model,
    ours or a peer's, whatever its modules."""
    _check_phase(phase)
    twin, x, sigma = meta_twin(model), x.to("meta"), sigma.to("meta")
    counter = FlopCounterMode(display=False, custom_mapping=_declared_formulas())
    with counter:
        _run_phase(twin, x, sigma, phase)
    return counter.get_total_flops()


def timed_phase_flops(model: nn.Module, x: Tensor, sigma: Tensor) -> dict[str, float]:
    """Model FLOPs per call of each timed phase, for achieved FLOP/s: the forward for ``inference``; the
    training step without checkpointing's recompute for ``train_step`` (recompute is overhead, so it lowers
    utilisation). Both are counted on the checkpoint-free twin, so they do not depend on checkpointing."""
    plain = _without_checkpointing(model)
    return {INFERENCE: float(total_flops(plain, x, sigma, FORWARD)),
            TRAIN_STEP: float(total_flops(plain, x, sigma, TRAIN_STEP))}


def count_flops(model: nn.Module, x: Tensor, sigma: Tensor) -> list[Measurement]:
    """Every FLOP row for one model and batch: forward MACs (fvcore), forward and training-step FLOPs
    (FlopCounterMode; ``flops`` with checkpointing's recompute, ``model_flops`` without), each as a
    total plus one row per block type. Counts are for the whole batch (``n`` = batch size).

    Raises RuntimeError if fvcore meets an op it cannot count, if any work falls outside the block
    types, or if the two counters disagree on the forward pass (FLOP != 2 * MAC).
    """
    n = x.shape[0]
    macs, macs_by_block = fvcore_forward_macs(model, x, sigma)
    forward, forward_by_block = flop_counter_flops(model, x, sigma, FORWARD)
    doubled = {"total": 2 * macs, **{k: 2 * v for k, v in macs_by_block.items()}}
    counted = {"total": forward, **forward_by_block}
    if doubled != counted:
        raise RuntimeError(f"forward: FlopCounterMode FLOPs {counted} != 2 * fvcore MACs {doubled}")
    step, step_by_block = flop_counter_flops(model, x, sigma, TRAIN_STEP)
    plain = _without_checkpointing(model)
    model_step, model_step_by_block = (step, step_by_block) if plain is model else flop_counter_flops(
        plain, x, sigma, TRAIN_STEP)
    return [
        *breakdown_rows(FORWARD, FLOPS, "MAC", FVCORE, macs, macs_by_block, n),
        *breakdown_rows(FORWARD, FLOPS, "FLOP", FLOP_COUNTER, forward, forward_by_block, n),
        *breakdown_rows(TRAIN_STEP, FLOPS, "FLOP", FLOP_COUNTER, step, step_by_block, n),
        *breakdown_rows(TRAIN_STEP, MODEL_FLOPS, "FLOP", FLOP_COUNTER, model_step, model_step_by_block, n),
    ]


def total_flop_rows(model: nn.Module, x: Tensor, sigma: Tensor) -> list[Measurement]:
    """Totals only, for any model (a peer has none of our block types): forward and training-step FLOPs counted by
    FlopCounterMode, and fvcore's forward MACs where fvcore can count every op, else a 'skipped' row."""
    n = x.shape[0]
    # On a meta twin, as for our variants: attention counts as its unfused math there.
    flops = {phase: float(total_flops(model, x, sigma, phase)) for phase in COUNTED_PHASES}
    rows = [Measurement(FORWARD, FLOPS, flops[FORWARD], "FLOP", FLOP_COUNTER, n=n),
            Measurement(TRAIN_STEP, FLOPS, flops[TRAIN_STEP], "FLOP", FLOP_COUNTER, n=n),
            Measurement(TRAIN_STEP, MODEL_FLOPS, flops[TRAIN_STEP], "FLOP", FLOP_COUNTER, n=n)]
    try:
        macs, _, _ = fvcore_macs(model, x, sigma)
    except Exception as err:  # a peer op fvcore cannot count, or a module its JIT trace cannot follow
        rows.append(Measurement(FORWARD, FLOPS, float("nan"), "MAC", FVCORE, n=n, status="skipped",
                                message=f"fvcore: {type(err).__name__}: {' '.join(str(err).split())[:300]}"))
    else:
        rows.append(Measurement(FORWARD, FLOPS, float(macs), "MAC", FVCORE, n=n))
    return rows

