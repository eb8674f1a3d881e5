"""A PyTorch bridge: an hm2bp network as a ``torch.nn.Module`` whose weights are
``torch.nn.Parameter``s, and a loss whose backward writes HM2-BP's gradients into ``.grad``, so
that torch optimizers, schedulers, gradient clipping and DistributedDataParallel drive training.

    model = hm2bp.torch.SpikingNetwork(hm2bp.Network([784, 800, 10], vth=[20.0, 8.0]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for spikes, labels in loader:               # spikes (B, T, n_in), 0/1
        opt.zero_grad()
        loss = hm2bp.torch.hm2bp_loss(model, spikes, labels)
        loss.backward()                         # param.grad = SPEC 4 batch mean (+ SPEC 5 reg.)
        opt.step()
    counts = model(spikes)                      # output spike counts (B, n_out)
    loss = ddp_model(spikes, labels)            # the loss through DistributedDataParallel

The engine computes everything (forward, S-PSPs, gradients) on the current parameter values;
the optimizer step is torch's, or the engine's own with NetworkOptimizer (the network's SPEC-5
Adam or SGD, bit for bit train_step's, at about a native step's cost). On the CPU backend the parameters are the engine's own weight
memory (share_weights, the default): torch's optimizer updates the weights the engine runs,
nothing is copied in, and the engine writes the gradients in that memory's layout. Otherwise
(the CUDA backend, share_weights=False, or a parameter that no longer lies in the engine's memory,
e.g. after ``.double()`` or an assignment to ``.data``) the parameters are copied into the engine
before each call. The gradients are HM2-BP's, not the derivative of the returned cost (spikes have
none). Arguments go through hm2bp.model.arrays: CUDA spike tensors are read in place by the CUDA
backend, the rest is copied to the host. Needs torch (``pip install "hm2bp[torch]"``); ``import
hm2bp`` does not import this module.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import torch
except ImportError:
    raise ImportError("hm2bp.torch needs PyTorch: pip install 'hm2bp[torch]'") from None

try:  # what torch's step wrapper reads (torch 2.x); without them, the wrapper every step
    from torch.autograd import _profiler_enabled
    from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks
except ImportError:
    _global_optimizer_pre_hooks = _global_optimizer_post_hooks = None

from ..model.hyper import check_lr
from ..model.network import Network

__all__ = ["NetworkOptimizer", "SpikingNetwork", "hm2bp_loss"]


class SpikingNetwork(torch.nn.Module):
    """An hm2bp.Network as a torch module: `weights` holds one Parameter per trainable layer
    (Dense (n_out, n_in), Conv2d (out, in, k, k)) in the network's dtype (float32 or float64).
    forward(spikes (B, T, n_in), 0/1) -> output spike counts (B, n_out) on the spikes' device;
    forward(spikes, labels) -> the loss of hm2bp_loss.

    share_weights (default: on the CPU backend): the Parameters are views of the engine's weight
    memory, which the engine stores transposed, so they are not contiguous (a Dense one has
    strides (1, n_out)): use ``.reshape(-1)``, not ``.view(-1)`` (nor
    ``torch.nn.utils.parameters_to_vector``, which calls it). Writing them (torch's optimizer,
    ``load_state_dict``, ``with torch.no_grad(): p[...] = ...``) writes the network's weights, and
    the network's own changes (``set_weights``, ``set_state``, ``train_step``) show in them; the
    engine recomputes its column sums from that memory, and refuses a non-finite weight, before each
    run. A Parameter moved elsewhere (``.double()``, ``.to(...)``, ``p.data = ...``) is copied into
    the engine before each call instead. share_weights=False: contiguous copies, copied in before
    each call (the CUDA backend's way).

    layout="stored" (shared weights): the Parameters are that memory in its own orientation, the
    output axis last, Dense (n_in, n_out) = W.T, Conv2d (in, k, k, out), and contiguous, which
    ``torch.optim.Adam(fused=True)`` needs to run at full speed (for any other layout its CPU kernel
    first copies each gradient contiguous, a strided pass over all weights each step)."""

    def __init__(self, network: Network, share_weights: bool | None = None, layout: str = "canonical") -> None:
        super().__init__()
        if not isinstance(network, Network):
            raise TypeError(f"SpikingNetwork wraps an hm2bp.Network, got {type(network).__name__}")
        if layout not in ("canonical", "stored"):
            raise ValueError(f"layout must be 'canonical' or 'stored', got {layout!r}")
        self._stored = layout == "stored"
        if share_weights is None:
            share_weights = network.backend == "cpu" or self._stored
        if (share_weights or self._stored) and network.backend != "cpu":
            raise ValueError(f"shared weights (share_weights=True, layout='stored') need the CPU backend (this "
                             f"network's is {network.backend!r})")
        if self._stored and not share_weights:
            raise ValueError("layout='stored' is the engine's own weight memory: it needs share_weights")
        self.network = network
        self._torch_dtype = torch.float64 if network.dtype == "float64" else torch.float32
        if share_weights:
            params = [self._view(network._engine.share_weights(k), shape)
                      for k, shape in enumerate(network._param_shapes)]
        else:
            params = [torch.as_tensor(w, dtype=self._torch_dtype) for w in network.get_weights()]
        self.weights = torch.nn.ParameterList([torch.nn.Parameter(p) for p in params])
        # where each shared Parameter lies in the engine's memory, to tell whether it still does
        self._shared = [(p.data_ptr(), p.stride()) for p in self.weights] if share_weights else None
        # Gradient memory reused from step to step (shared weights): one array per parameter in
        # the engine's stored layout, taken again only when nothing holds it any more (the last
        # step's .grad released by zero_grad). A fresh array per step costs its pages anew (page
        # faults, cache misses): ~0.2 ms of a ~4.6 ms 784-800-10 batch-8 step on 2 threads.
        self._grad_memory: list[np.ndarray | None] = [None] * len(self.weights)
        # The .grad tensors the last hm2bp_loss wrote (their data pointers) with their canonical
        # NumPy views, for NetworkOptimizer.step to read without converting them again; cleared
        # by that step and by the next loss, so that they do not keep the memory above busy.
        self._exported: tuple[list[tuple[int, tuple[int, ...]]], list[np.ndarray]] | None = None

    def _view(self, stored: Any, shape: tuple[int, ...]) -> torch.Tensor:
        """The engine's (n_in, n_out) weight memory as a Parameter's tensor, no copy: of the
        canonical `shape` (out, ...), strides (1, out, ...), or with layout="stored" (..., out)."""
        t = torch.from_numpy(stored)
        return t.view(*shape[1:], shape[0]) if self._stored else t.t().view(shape)

    def _gradient_memory(self, params: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[np.ndarray]]:
        """New .grad tensors for shared parameters (their strides, the stored layout) and their
        canonical NumPy views for the engine to write, on this model's reusable memory where
        nothing else still refers to it (a .grad kept from an earlier step, or a view of one, keeps
        its memory; a new array is made instead), so that a gradient a caller kept is never written."""
        self._exported = None
        dtype = np.dtype(self.network.dtype)
        tensors, views = [], []
        for k, p in enumerate(params):
            memory = self._grad_memory[k]
            # references: the list's, this variable's and getrefcount's argument; any other is a
            # live gradient (or a view of one)
            if memory is None or sys.getrefcount(memory) > 3:
                memory = np.empty(p.shape if self._stored else (*p.shape[1:], p.shape[0]), dtype)
                self._grad_memory[k] = memory
            canonical = memory.transpose((memory.ndim - 1, *range(memory.ndim - 1)))
            tensors.append(torch.from_numpy(memory if self._stored else canonical))
            views.append(canonical)
        self._exported = ([(t.data_ptr(), t.stride()) for t in tensors], views)
        return tensors, views

    def _canonical(self, t: torch.Tensor) -> torch.Tensor:
        """A tensor of a Parameter's shape in the canonical (out, ...) shape (a view)."""
        return t.movedim(-1, 0) if self._stored else t

    def sync(self) -> None:
        """Copy the parameters into the engine where they are not its own memory (done before
        every engine call). Host tensors of the network's dtype go in as they are, checked finite
        by the engine as it takes them (the step's hot path); anything else (another dtype, GPU
        memory) through Network.set_weights' conversions."""
        self._sync(self.weights)

    def _shares(self, params: Sequence[torch.Tensor]) -> list[bool]:
        """Per parameter: whether it is (still) the engine's own weight memory."""
        if self._shared is None:
            return [False] * len(params)
        return [p.is_cpu and p.dtype == self._torch_dtype and (p.data_ptr(), p.stride()) == where
                for p, where in zip(params, self._shared)]

    def _engine_view(self, t: torch.Tensor) -> Any:
        """A host tensor of a Parameter's shape as a NumPy array of the canonical shape (a view):
        _canonical(t).numpy(), with NumPy's transpose, which costs less per call than movedim."""
        a = t.numpy()
        return a.transpose((a.ndim - 1, *range(a.ndim - 1))) if self._stored else a

    def _sync(self, params: Sequence[torch.Tensor], shared: Sequence[bool] | None = None) -> None:
        shared = self._shares(params) if shared is None else shared
        if all(shared):
            return  # the engine reads them in place (and checks them before it runs)
        params = [self._canonical(p.detach()) for p in params]
        if any(shared):  # copy the others; set_weights must not read memory it writes
            self.network.set_weights([p.clone() if s else p for p, s in zip(params, shared)])
        elif not all(p.dtype == self._torch_dtype and p.device.type == "cpu" and p.is_contiguous() for p in params):
            self.network.set_weights(params)
        else:
            self.network._set_host_weights([p.numpy() for p in params])

    def forward(self, spikes: Any, labels: Any = None, sample_weights: Any = None) -> torch.Tensor:
        """Output spike counts; with labels, hm2bp_loss(self, spikes, labels, sample_weights)
        instead (the form DistributedDataParallel needs: the loss computed inside its forward)."""
        if labels is not None:
            return hm2bp_loss(self, spikes, labels, sample_weights)
        self.sync()
        counts = self.network.infer(spikes)["counts"]
        device = spikes.device if isinstance(spikes, torch.Tensor) else None
        return torch.as_tensor(counts, dtype=self.weights[0].dtype, device=device)


class _HM2BPLoss(torch.autograd.Function):
    """forward runs the engine's forward and backward pass at once; backward hands out the
    gradients it computed, scaled by the incoming gradient."""

    @staticmethod
    def forward(ctx: Any, model: SpikingNetwork, spikes: Any, labels: Any, sample_weights: Any,
                regularize: bool, *params: torch.Tensor) -> torch.Tensor:
        shared = model._shares(params)
        all_shared = all(shared)
        # The engine writes the gradients, in its own dtype, straight into new tensors (which
        # autograd then adopts as .grad without a copy: same strides as their parameters, so a
        # shared parameter's in the engine's stored layout, written without a transpose), with
        # the SPEC-5 regularization of the weights it just ran added as hm2bp's own step adds it.
        # Every step comes here: the arrays are made to measure, so Network's checks of them are
        # skipped (the engine's stay).
        if all_shared:  # the engine reads the weights in place (and checks them before it runs)
            grads, views = model._gradient_memory(params)
        else:
            model._sync(params, shared)
            model._exported = None
            dtype = model._torch_dtype
            grads = [torch.empty_strided(p.shape, p.stride(), dtype=dtype) if s else torch.empty(p.shape, dtype=dtype)
                     for p, s in zip(params, shared)]
            views = [model._engine_view(g) for g in grads]
        out = model.network._gradients(_host_view(spikes), _host_view(labels), sample_weights, "mean", False,
                                       regularize, views)
        ctx.grads = grads if all_shared else [g.to(device=p.device, dtype=p.dtype) for g, p in zip(grads, params)]
        return torch.scalar_tensor(out["loss"], dtype=params[0].dtype, device=params[0].device)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[Any, ...]:
        grads = ctx.grads
        del ctx.grads
        if not grad_output.is_cpu or float(grad_output) != 1.0:  # loss.backward(): 1, as is
            grads = [grad_output * g for g in grads]
        return (None, None, None, None, None, *grads)


def _host_view(value: Any) -> Any:
    """A host tensor as a NumPy view (the cheapest way in), anything else as it is."""
    if isinstance(value, torch.Tensor) and value.is_cpu:
        return value.detach().numpy() if value.requires_grad else value.numpy()
    return value


def hm2bp_loss(model: SpikingNetwork, spikes: Any, labels: Any, sample_weights: Any = None,
               regularize: bool = True) -> torch.Tensor:
    """The batch's mean SPEC-3 cost as a 0-d tensor. Its backward adds to each parameter's
    .grad what hm2bp's own optimizer would apply: the batch mean of the per-sample SPEC-4
    gradients (labels, revival, lateral factor; `sample_weights` are boosting weights), plus,
    when `regularize` and the network's reg_lambda and reg_beta are both nonzero, the SPEC-5
    regularization of the current weights. These are HM2-BP's gradients, not the derivative of the cost."""
    if not isinstance(model, SpikingNetwork):
        raise TypeError(f"hm2bp_loss needs an hm2bp.torch.SpikingNetwork, got {type(model).__name__}")
    # the ParameterList's own dict: iterating the list itself looks each one up by name (~4x the cost)
    return _HM2BPLoss.apply(model, spikes, labels, sample_weights, bool(regularize),
                            *model.weights._parameters.values())


class NetworkOptimizer(torch.optim.Optimizer):
    """The network's own SPEC-5 step as a torch optimizer: Adam or SGD with momentum, with the
    network's b1, b2, eps or momentum, run by the engine on its own weight memory (a
    SpikingNetwork with shared weights: the CPU backend) from each parameter's .grad, with the
    moments the network keeps (get_state / set_state and checkpoints carry them, and this
    optimizer's state_dict). After ``hm2bp_loss(model, spikes, labels).backward()`` a step()
    changes the weights and moments exactly as ``model.network.train_step(spikes, labels, lr)``
    would (the loss's regularize=True adds SPEC 5's regularization; step() adds nothing).

        opt = hm2bp.torch.NetworkOptimizer(model, lr=1e-3)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: max(e, 1) ** -0.5)

    One parameter group, every trainable layer in one step (one step counter, as train_step);
    its "lr" is read at each step, so torch's schedulers drive it. A gradient may be edited in
    place (clipping, DistributedDataParallel's average) or replaced by another tensor of its
    shape; one in the engine's layout and dtype (what hm2bp_loss writes) is read where it lies,
    any other is copied first. Parameters that no longer are the engine's memory (after
    ``.double()``, ``.to(...)`` or an assignment to ``.data``) cannot be stepped: use a torch
    optimizer for them."""

    def __init__(self, model: SpikingNetwork, lr: float) -> None:
        if not isinstance(model, SpikingNetwork):
            raise TypeError(f"NetworkOptimizer steps an hm2bp.torch.SpikingNetwork, got {type(model).__name__}")
        if model._shared is None:
            raise ValueError("NetworkOptimizer steps the engine's own weight memory: it needs a SpikingNetwork "
                             "with shared weights (the CPU backend's default); use a torch optimizer otherwise")
        self.model = model
        super().__init__(list(model.weights), {"lr": check_lr(lr)})

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self.param_groups:
            raise ValueError("NetworkOptimizer has one parameter group, every layer of its network")
        params = list(param_group["params"])
        if len(params) != len(self.model.weights) or any(p is not q for p, q in zip(params, self.model.weights)):
            raise ValueError("NetworkOptimizer's parameters are its network's, all of them, in order")
        super().add_param_group(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """torch's zero_grad; set_to_none (the default) without its profiler range, which costs
        several times the loop over the parameters (this runs every step)."""
        if not set_to_none:
            super().zero_grad(False)
            return
        for p in self.param_groups[0]["params"]:
            p.grad = None

    def step(self, closure: Any = None) -> Any:
        """One SPEC-5 step of every layer from the parameters' .grad (nothing when none has one),
        with torch's step hooks (global and this optimizer's) and profiler range."""
        if (_global_optimizer_pre_hooks is None or _global_optimizer_pre_hooks or _global_optimizer_post_hooks
                or self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks or _profiler_enabled()):
            return _hooked_step(self, closure)
        return self._step(closure)

    # torch.optim.Optimizer wraps a subclass's step in its hooks and profiler range unless the
    # step is marked hooked: this one runs that wrapper itself when it has work to do. Every step
    # would otherwise open a profiler range, ~0.2 ms of a ~5 ms batch-8 step here (its code and
    # data evicted by the engine's passes over the weights).
    step.hooked = True  # type: ignore[attr-defined]

    def _step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        params = group["params"]
        grads = [p.grad for p in params]
        if all(g is None for g in grads):
            return loss
        if any(g is None for g in grads):
            raise ValueError("NetworkOptimizer steps every layer at once: each parameter needs a .grad "
                             "(hm2bp_loss's backward gives each one)")
        model = self.model
        if not all(model._shares(params)):
            raise RuntimeError("a parameter no longer lies in the engine's memory (after .double(), .to(...) or "
                               "an assignment to .data): NetworkOptimizer cannot step it; use a torch optimizer")
        exported, model._exported = model._exported, None
        if exported is not None and [(g.data_ptr(), g.stride()) for g in grads] == exported[0]:
            arrays = exported[1]  # what hm2bp_loss wrote (perhaps edited in place since), as it lies
        else:
            arrays = [model._engine_view(_host_grad(g, model._torch_dtype, where[1]))
                      for g, where in zip(grads, model._shared)]
        network = model.network
        network._engine.step_gradients(arrays, check_lr(float(group["lr"])))
        network._check_stepped()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """torch's state_dict (the lr) and, under "hm2bp", the network's step counter and moments
        (canonical layout, float64 tensors: torch.load(weights_only=True) takes them)."""
        state = super().state_dict()
        net = self.model.network.get_state()
        state["hm2bp"] = {"step": int(net["step"]),
                          **{kind: [torch.from_numpy(net[f"{kind}_{k}"]) for k in range(len(self.model.weights))]
                             for kind in ("moment1", "moment2")}}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        saved = state_dict.pop("hm2bp", None)
        if not isinstance(saved, dict) or not {"step", "moment1", "moment2"} <= saved.keys():
            raise ValueError("not a NetworkOptimizer state_dict: it has no 'hm2bp' entry with step, moment1 "
                             "and moment2")
        network = self.model.network
        state = network.get_state()  # the weights stay as they are; set_state checks the rest
        for kind in ("moment1", "moment2"):
            if len(saved[kind]) != len(self.model.weights):
                raise ValueError(f"the state_dict's {kind} has {len(saved[kind])} arrays, the network "
                                 f"{len(self.model.weights)} trainable layers")
            state.update({f"{kind}_{k}": torch.as_tensor(a).detach().cpu().numpy() for k, a in enumerate(saved[kind])})
        state["step"] = np.asarray(saved["step"])
        network.set_state(state)
        super().load_state_dict(state_dict)


_hooked_step = torch.optim.Optimizer.profile_hook_step(NetworkOptimizer._step)


def _host_grad(g: torch.Tensor, dtype: torch.dtype, stride: tuple[int, ...]) -> torch.Tensor:
    """A gradient as a host tensor the engine reads (its own dtype; its layout is the engine's
    check: where it is neither the stored layout nor C-contiguous, a contiguous copy). `stride`:
    its parameter's, the engine's stored layout. What hm2bp_loss wrote passes the first test."""
    if g.is_cpu and g.dtype == dtype and g.layout == torch.strided and not g.requires_grad and g.stride() == stride:
        return g
    if g.is_sparse:
        raise ValueError("NetworkOptimizer needs dense gradients")
    g = g.detach().to(device="cpu", dtype=dtype)
    return g if g.is_contiguous() or g.movedim(0, -1).is_contiguous() else g.contiguous()
