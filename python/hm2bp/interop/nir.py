"""NIR (Neuromorphic Intermediate Representation) export and import of hm2bp networks.

``to_nir(net)`` describes a network as a ``nir.NIRGraph``: Dense -> ``Linear``, Conv2d ->
``Conv2d``, Pool2d -> ``SumPool2d``, each followed by a ``CubaLIF`` whose forward-Euler
discretisation with step dt is SPEC 1's neuron (docs/interop.md derives it), the output layer's
lateral inhibition as a recurrent ``Linear`` edge; a Reservoir as a ``Linear`` of its input
weights into a CubaLIF with its recurrent weights as the same kind of recurrent subgraph (export
only: `from_nir` reads feed-forward stacks with lateral inhibition on the output). What NIR cannot say (refractory period, no
update at t = 0, the one-step delay of each connection, the 1e-6 threshold margin, the input
encoding) goes into the graph's and the neurons' metadata. ``from_nir(graph)`` is the inverse
for graphs of Affine/Linear, Conv2d, SumPool2d, Flatten and CubaLIF nodes whose parameters
hm2bp can represent; a node that does not fit is named in a one-line ValueError.

Needs the ``nir`` package (``pip install "hm2bp[nir]"``), imported when first used.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import _core
from ..model.hyper import HYPERPARAMETERS
from ..model.layers import Conv2d, Dense, Layer, Pool2d, Reservoir
from ..model.network import Network
from .nir_file import read_graph, write_graph

__all__ = ["from_nir", "read", "to_nir", "write"]

# What the engine does that a CubaLIF cannot express (SPEC 1, SPEC_CNN 1-2); each neuron node
# repeats the numbers that concern it.
_SEMANTICS = {
    "delay_steps": 1,  # r[t] = W s_in[t - 1]: every connection delays spikes by one step
    "first_step": "no integration at t = 0 (only the leak runs; no spike at t = 0)",
    "refractory": "after a spike v is held at 0 for t_ref steps",
    "fire_rule": "fire when v > v_threshold - fire_margin; reset v to 0 (the current keeps going)",
    "input_encoding": "images: Poisson, P(spike) = pixel / (5.5 * 255) per step for t >= 1, none "
                      "at t = 0 (hm2bp.encode_poisson); events: one spike per (step, input)",
}
_DENSE_MARGIN = 1e-6  # the 1e-6 of SPEC 1; convolutions fire at v > vth (SPEC_CNN 1)


def _nir() -> Any:
    try:
        import nir
    except ImportError:
        raise ImportError("hm2bp.nir needs the nir package: pip install 'hm2bp[nir]'") from None
    return nir


def _normal(x: float) -> bool:
    """A finite float > 0 that is not subnormal (a time constant keeps its digits)."""
    return math.isfinite(x) and x >= sys.float_info.min


def _check_dt(dt: Any) -> float:
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not _normal(float(dt)):
        raise ValueError(f"dt must be a finite number > 0 (and not subnormal), got {dt!r}")
    return float(dt)


def _pool_fits(size: int, stride: int, height: int, width: int) -> bool:
    """hm2bp pools ceil(H / stride) windows, cut at the border; NIR's SumPool2d has
    floor((H - size) / stride) + 1 whole windows. They agree when no window is cut."""
    return all(math.ceil(n / stride) == (n - size) // stride + 1 for n in (height, width))


def _lif(nir: Any, shape: tuple[int, ...], vth: float, net: Network, dt: float, margin: float,
         kind: str) -> Any:
    """The CubaLIF of one hm2bp population: forward Euler with step dt gives SPEC 1 when
    tau_syn = tau_s * dt, tau_mem = tau_m * dt, r = tau_m, w_in = 1, v_leak = v_reset = 0."""
    full = lambda x: np.full(shape, x, dtype=np.float64)  # noqa: E731
    return nir.CubaLIF(tau_syn=full(net.tau_s * dt), tau_mem=full(net.tau_m * dt), r=full(net.tau_m),
                       v_leak=full(0.0), v_threshold=full(vth), v_reset=full(0.0), w_in=full(1.0),
                       metadata={"hm2bp_layer": kind, "t_ref": int(net.t_ref), "fire_margin": margin,
                                 "delay_steps": 1, "tau_m_steps": net.tau_m, "tau_s_steps": net.tau_s})


def to_nir(net: Network, dt: float = 1.0, metadata: Mapping[str, Any] | None = None) -> Any:
    """A nir.NIRGraph of `net` (weights copied, float64), one time step = dt (NIR's time unit).

    snnTorch's importer assumes steps of 1e-4 (s): export with dt=1e-4 for it; Norse's
    ``from_nir(graph, dt=...)`` takes the step. `metadata` adds entries to the graph's (flat:
    numbers, strings, arrays).
    """
    nir = _nir()
    _check_dt(dt)
    for name, steps in (("tau_s", net.tau_s), ("tau_m", net.tau_m)):
        if not _normal(steps * dt):  # e.g. dt = 1e308: an infinite time constant
            raise ValueError(f"dt = {dt!r} makes {name} * dt = {steps * dt!r}, not a finite normal "
                             f"number; choose a dt nearer 1")
    weights = iter(net.get_weights())
    fixed = iter(net.reservoir_weights())
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": _input_type(net)})}
    edges: list[tuple[str, str]] = []
    last = "input"
    flat = False
    digits = len(str(net.n_layers - 1))
    for k, (layer, (c, h, w), (co, ho, wo)) in enumerate(zip(net.layer_specs, net.shapes, net.shapes[1:])):
        # Node names sort in the order of the chain (input < input_flatten < layer0 < layer0_lif
        # < layer0_lif_flatten < layer1 ... < output): nir.read returns the nodes of a file sorted
        # by name, and nirtorch 2.6 (snnTorch's importer) fails on a recurrent subgraph that comes
        # before its input in that order. A Reservoir is named like any layer.
        name = f"layer{k:0{digits}d}"
        recurrent = None
        if isinstance(layer, (Dense, Reservoir)):
            if not flat and (k > 0 or (h, w) != (1, 1)):  # spatial maps before it
                flatten = f"{last}_flatten"
                nodes[flatten] = nir.Flatten(input_type={"input": np.array([c, h, w])}, start_dim=0)
                edges.append((last, flatten))
                last = flatten
            flat = True
            if isinstance(layer, Dense):
                kind, shape, margin = "dense", (co,), _DENSE_MARGIN
                nodes[name] = nir.Linear(weight=next(weights))
            else:
                w_in, recurrent = next(fixed)
                kind, shape, margin = "reservoir", (co,), _DENSE_MARGIN
                nodes[name] = nir.Linear(weight=w_in, metadata={"hm2bp_role": "reservoir input (fixed)"})
        elif isinstance(layer, Conv2d):
            kind, shape, margin = "conv2d", (co, ho, wo), 0.0
            weight = next(weights)
            nodes[name] = nir.Conv2d(input_shape=(h, w), weight=weight, stride=1, padding=layer.padding,
                                     dilation=1, groups=1, bias=np.zeros(weight.shape[0]))
        else:
            stride = layer.stride or layer.size
            if not _pool_fits(layer.size, stride, h, w):
                raise ValueError(f"layers[{k}] (Pool2d {layer.size}, stride {stride}) cuts its last window "
                                 f"on the {h}x{w} map, which NIR's SumPool2d cannot express")
            kind, shape, margin = "pool2d", (co, ho, wo), _DENSE_MARGIN
            pool = nir.SumPool2d(kernel_size=np.array([layer.size] * 2), stride=np.array([stride] * 2),
                                 padding=np.array([0, 0]))
            pool.input_type = {"input": np.array([c, h, w])}
            pool.output_type = {"output": np.array(shape)}
            nodes[name] = pool
        lif = f"{name}_lif"
        nodes[lif] = _lif(nir, shape, layer.vth, net, dt, margin, kind)
        if recurrent is not None:
            nodes[lif] = _with_recurrent(nir, nodes[lif], recurrent, "recurrent", "reservoir recurrent weights (fixed)")
        if k == net.n_layers - 1 and net.lateral_inhibition != 0:
            nodes[lif] = _with_recurrent(nir, nodes[lif], -net.lateral_inhibition * (1.0 - np.eye(co)), "lateral",
                                         "lateral inhibition")
        edges += [(last, name), (name, lif)]
        last = lif
    nodes["output"] = nir.Output(output_type={"output": np.array([net.layers[-1]])})
    edges.append((last, "output"))
    meta = {"generator": f"hm2bp {_core.build_info()['version']}", "dt": float(dt), "t_ref": int(net.t_ref),
            "fire_margin": _DENSE_MARGIN, "conv_fire_margin": 0.0, **_SEMANTICS,
            # every hyperparameter of hm2bp.hyper, also those NIR has no node field for (desired,
            # optimizer, ...), so that from_nir rebuilds the same network
            "hyperparameters": dict(net.description.hyperparameters), **(metadata or {})}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def _with_recurrent(nir: Any, lif: Any, weight: np.ndarray, node: str, role: str) -> Any:
    """Neurons with a recurrent connection (the output layer's lateral inhibition, a reservoir's
    fixed W_rec; both delay one step), as the subgraph Input -> CubaLIF <-> Linear (recurrent),
    CubaLIF -> Output: the layout snnTorch's own export gives a recurrent layer. (A two-node cycle
    at the top level is rewired by snnTorch 1.0's importer so that the layer's input also passes
    through the recurrent weights.) `node` names the recurrent Linear."""
    n = np.array([weight.shape[0]])
    return nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": n}), "lif": lif,
                               node: nir.Linear(weight=weight, metadata={"hm2bp_role": role}),
                               "output": nir.Output(output_type={"output": n})},
                        edges=[("input", "lif"), ("lif", node), (node, "lif"), ("lif", "output")],
                        metadata={"hm2bp_role": f"neurons with {role}"})


def _input_type(net: Network) -> np.ndarray:
    c, h, w = net.input_shape
    return np.array([c * h * w] if (h, w) == (1, 1) else [c, h, w])


def write(path: str | Path, net: Network, dt: float = 1.0, metadata: Mapping[str, Any] | None = None) -> None:
    """Write to_nir(net, dt, metadata) to a .nir (HDF5) file, atomically (nir_file.write_graph:
    a failed write leaves the previous file as it was)."""
    graph = to_nir(net, dt, metadata)
    write_graph(path, graph)


def read(path: str | Path, dt: float | None = None, **network_kwargs: Any) -> Network:
    """from_nir of the graph in a .nir file, read by nir_file.read_graph: a regular file whose
    HDF5 objects are all in it (no links, no external storage), plain numbers and text of sizes
    within the limits, checked before any data is read. A problem is one ValueError naming the
    file."""
    _nir()
    graph = read_graph(path)
    try:
        return from_nir(graph, dt, **network_kwargs)
    except (ValueError, TypeError, OverflowError, KeyError) as exc:
        raise ValueError(f"{path}: {exc}") from None


# -- import ------------------------------------------------------------------------------------


def _stored_hyperparameters(graph: Any) -> dict[str, Any]:
    """The hyperparameters an hm2bp export stored in the graph's metadata, as Python values (a
    NIR file gives numpy scalars and bytes back; hm2bp.Network checks them); names this hm2bp
    does not declare are left out."""
    stored = _meta(graph, "hyperparameters", None) or {}
    out = {}
    for name, value in stored.items():
        if name in HYPERPARAMETERS:
            value = value.decode() if isinstance(value, bytes) else value
            out[name] = value.item() if isinstance(value, np.generic) else value
    return out


def _meta(node: Any, key: str, default: Any) -> Any:
    value = (getattr(node, "metadata", None) or {}).get(key, default)
    return value.decode() if isinstance(value, bytes) else value


def _uniform(name: str, node: Any, field: str) -> float:
    values = np.asarray(getattr(node, field), dtype=np.float64)
    if values.size == 0 or not np.all(values == values.flat[0]):
        raise ValueError(f"node {name!r}: hm2bp needs one {field} per layer, got several values")
    if not math.isfinite(values.flat[0]):
        raise ValueError(f"node {name!r}: {field} = {values.flat[0]}, hm2bp needs finite values")
    return float(values.flat[0])


def _pair(name: str, what: str, value: Any, want: int | None = None) -> int:
    values = np.atleast_1d(np.asarray(value)).astype(np.int64).ravel()
    if values.size not in (1, 2) or values.min() != values.max() or (want is not None and values[0] != want):
        must = f"must be {want}" if want is not None else "must be the same in both dimensions"
        raise ValueError(f"node {name!r}: {what} {value!r} {must} for hm2bp")
    return int(values[0])


def _chain(graph: Any) -> tuple[list[str], tuple[str, Any] | None, str | None]:
    """The node names from the Input to the Output (one path; the only cycle allowed is a
    CubaLIF's recurrent Linear), that recurrent node (name, node) or None, and its CubaLIF."""
    nir = _nir()
    succ: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        for end in (src, dst):
            if end not in graph.nodes:
                raise ValueError(f"edge ({src!r}, {dst!r}) names the unknown node {end!r}")
        succ[src].append(dst)
    inputs = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"hm2bp needs a graph with exactly one Input node, this one has {len(inputs)}")
    chain, seen = [inputs[0]], {inputs[0]}
    lateral = lateral_at = None
    while not isinstance(graph.nodes[chain[-1]], nir.Output):
        here = chain[-1]
        nexts = [n for n in succ[here] if n not in seen]
        back = [n for n in succ[here] if succ[n] == [here]]  # a recurrent node feeding only `here`
        if len(back) == 1 and isinstance(graph.nodes[here], nir.CubaLIF) and lateral is None:
            lateral, lateral_at = back[0], here
            nexts = [n for n in nexts if n != lateral]
        if len(nexts) != 1:
            what = "no successor" if not nexts else f"several successors {nexts}"
            raise ValueError(f"node {here!r} has {what}; hm2bp imports one chain Input -> ... -> Output")
        seen.add(nexts[0])
        chain.append(nexts[0])
    if len(seen) + (lateral is not None) != len(graph.nodes):
        extra = sorted(set(graph.nodes) - seen - {lateral})
        raise ValueError(f"node {extra[0]!r} is not on the chain Input -> ... -> Output; hm2bp imports one chain")
    return chain, None if lateral is None else (lateral, graph.nodes[lateral]), lateral_at


def from_nir(graph: Any, dt: float | None = None, **network_kwargs: Any) -> Network:
    """An hm2bp.Network with the weights and neuron parameters of a NIR graph.

    The graph must be one chain Input -> (Linear|Affine with zero bias|Conv2d|SumPool2d ->
    CubaLIF)+ -> Output, Flatten nodes allowed, the last CubaLIF optionally with a recurrent
    Linear of -w0 off the diagonal and 0 on it (lateral inhibition). All CubaLIFs share
    tau_syn and tau_mem, with r = tau_mem / dt, w_in = 1, v_leak = v_reset = 0, one v_threshold
    per node. dt (the time step in the graph's unit) defaults to the graph's metadata "dt"; the
    refractory period to its "t_ref" (0 when absent: a NIR CubaLIF has none). The other
    hyperparameters come from the graph's metadata "hyperparameters" (an hm2bp export writes
    them all), else their defaults. `network_kwargs` go to hm2bp.Network (backend, dtype,
    desired, ...) and win over the metadata.
    """
    nir = _nir()
    if dt is None:
        dt = _meta(graph, "dt", None)
        if dt is None:
            raise ValueError("the graph does not say its time step (no metadata 'dt'): pass dt=, e.g. 1e-4")
    try:
        dt = _check_dt(float(dt))
    except (TypeError, ValueError):
        raise ValueError(f"dt must be a finite number > 0 (and not subnormal), got {dt!r}") from None
    chain, lateral, lateral_at = _chain(graph)
    input_type = np.asarray(graph.nodes[chain[0]].input_type["input"]).astype(int).ravel()
    if input_type.size == 1:
        input_shape = (int(input_type[0]), 1, 1)
    elif input_type.size == 3:
        input_shape = tuple(int(n) for n in input_type)
    else:
        raise ValueError(f"node {chain[0]!r}: input shape {tuple(input_type)} must be (n,) or (channels, height, width)")

    layers: list[Layer] = []
    weights: list[np.ndarray] = []
    taus: set[tuple[float, float]] = set()
    t_refs: set[int] = set()
    pending: tuple[str, Any] | None = None  # the connection waiting for its neurons
    for name in chain[1:-1]:
        node = graph.nodes[name]
        if isinstance(node, nir.Flatten):
            continue
        if isinstance(node, nir.NIRGraph):  # CubaLIF neurons with a recurrent connection
            node, recurrent = _recurrent_subgraph(name, node)
            if lateral is not None:
                raise ValueError(f"node {recurrent[0]!r}: only the output neurons may have a recurrent connection")
            lateral, lateral_at = recurrent, name
        if isinstance(node, nir.CubaLIF):
            if pending is None:
                raise ValueError(f"node {name!r}: a CubaLIF must follow a Linear, Affine, Conv2d or SumPool2d")
            layer, weight = _connection(*pending, vth=_check_lif(name, node, dt, taus, t_refs))
            layers.append(layer)
            if weight is not None:
                weights.append(weight)
            pending = None
        elif isinstance(node, (nir.Linear, nir.Affine, nir.Conv2d, nir.SumPool2d)):
            if pending is not None:
                raise ValueError(f"node {name!r} follows {pending[0]!r} directly; hm2bp needs a CubaLIF between")
            pending = (name, node)
        else:
            raise ValueError(f"node {name!r} is a {type(node).__name__}; hm2bp imports Linear, Affine, Conv2d, "
                             f"SumPool2d, Flatten and CubaLIF nodes")
    if pending is not None or not layers:
        raise ValueError(f"node {chain[-1]!r}: the graph must end with CubaLIF neurons before its Output")
    if len(taus) > 1 or len(t_refs) > 1:
        what = "tau_syn or tau_mem" if len(taus) > 1 else "t_ref metadata"
        raise ValueError(f"the CubaLIF nodes have different {what}; hm2bp uses one value for all layers")
    (tau_s, tau_m), t_ref = taus.pop(), t_refs.pop()
    if not isinstance(layers[-1], Dense):
        raise ValueError(f"node {chain[-2]!r}: the output neurons must follow a Linear or Affine (hm2bp's "
                         f"output layer is Dense)")
    if lateral is not None and lateral_at != chain[-2]:
        raise ValueError(f"node {lateral[0]!r}: only the output neurons may have a recurrent connection in hm2bp")
    w0 = 0.0 if lateral is None else _lateral(*lateral, layers[-1].n)
    hyper = {**_stored_hyperparameters(graph), "tau_m": tau_m, "tau_s": tau_s, "t_ref": t_ref,
             "lateral_inhibition": w0}
    net = Network(layers, input_shape=input_shape, **{**hyper, **network_kwargs})
    net.set_weights(weights)
    return net


def _check_lif(name: str, node: Any, dt: float, taus: set[tuple[float, float]], t_refs: set[int]) -> float:
    """vth of a CubaLIF that fits hm2bp's neuron; its taus (in steps) and t_ref go into the sets."""
    tau_s = _steps(_uniform(name, node, "tau_syn"), dt, _meta(node, "tau_s_steps", None))
    tau_m = _steps(_uniform(name, node, "tau_mem"), dt, _meta(node, "tau_m_steps", None))
    for field, steps in (("tau_syn", tau_s), ("tau_mem", tau_m)):
        if not _normal(steps):
            raise ValueError(f"node {name!r}: {field} / dt = {steps!r} steps; hm2bp needs finite "
                             f"time constants > 0")
    for field, want in (("r", tau_m), ("w_in", 1.0), ("v_leak", 0.0), ("v_reset", 0.0)):
        got = _uniform(name, node, field)
        if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12):
            raise ValueError(f"node {name!r}: {field} = {got:g}, hm2bp's neuron needs {want:g}"
                             + (" (tau_mem / dt)" if field == "r" else ""))
    taus.add((tau_s, tau_m))
    t_refs.add(int(_meta(node, "t_ref", 0)))
    return _uniform(name, node, "v_threshold")


def _steps(tau: float, dt: float, exact: Any) -> float:
    """tau / dt in steps: `exact` (to_nir's tau_*_steps metadata) when it gives tau back, else the
    quotient rounded to 9 decimals when that does (8e-4 / 1e-4 is 7.999999999999999), else
    the quotient."""
    for steps in (exact, float(np.round(tau / dt, 9))):
        if steps is not None and float(steps) * dt == tau:
            return float(steps)
    return tau / dt


def _connection(name: str, node: Any, vth: float) -> tuple[Layer, np.ndarray | None]:
    nir = _nir()
    if isinstance(node, (nir.Linear, nir.Affine)):
        weight = np.asarray(node.weight, dtype=np.float64)
        if weight.ndim != 2:
            raise ValueError(f"node {name!r}: weight of shape {weight.shape} must be (n_out, n_in)")
        if isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0):
            raise ValueError(f"node {name!r}: hm2bp neurons have no bias, this Affine's is non-zero")
        return Dense(weight.shape[0], vth), weight
    if isinstance(node, nir.Conv2d):
        weight = np.asarray(node.weight, dtype=np.float64)
        if weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
            raise ValueError(f"node {name!r}: weight of shape {weight.shape} must be square kernels (out, in, k, k)")
        for what, value in (("stride", node.stride), ("dilation", node.dilation), ("groups", node.groups)):
            _pair(name, what, value, 1)
        if np.any(np.asarray(node.bias) != 0):
            raise ValueError(f"node {name!r}: hm2bp convolutions have no bias, this one's is non-zero")
        padding = node.padding
        if isinstance(padding, str):
            padding = 0 if padding == "valid" else (weight.shape[2] - 1) // 2
            if node.padding == "same" and weight.shape[2] % 2 == 0:
                raise ValueError(f"node {name!r}: padding 'same' with an even kernel is asymmetric; hm2bp pads evenly")
        return Conv2d(weight.shape[0], weight.shape[2], vth, padding=_pair(name, "padding", padding)), weight
    size = _pair(name, "kernel_size", node.kernel_size)
    stride = _pair(name, "stride", node.stride)
    _pair(name, "padding", node.padding, 0)
    return Pool2d(size, vth, stride=None if stride == size else stride), None


def _recurrent_subgraph(name: str, graph: Any) -> tuple[Any, tuple[str, Any]]:
    """The CubaLIF and its recurrent (name, node) of a subgraph Input -> CubaLIF <-> Linear,
    CubaLIF -> Output (snnTorch's and to_nir's layout of a recurrent layer)."""
    nir = _nir()
    kinds = {key: type(node) for key, node in graph.nodes.items()}
    lifs = [k for k, t in kinds.items() if t is nir.CubaLIF]
    recs = [k for k, t in kinds.items() if t in (nir.Linear, nir.Affine)]
    if len(graph.nodes) != 4 or len(lifs) != 1 or len(recs) != 1:
        raise ValueError(f"node {name!r}: a subgraph must be Input -> CubaLIF <-> Linear -> Output "
                         f"(a recurrent layer), got {sorted(t.__name__ for t in kinds.values())}")
    lif, rec = lifs[0], recs[0]
    io = {k for k, t in kinds.items() if t in (nir.Input, nir.Output)}
    want = {(i, lif) for i in io if kinds[i] is nir.Input} | {(lif, o) for o in io if kinds[o] is nir.Output} \
        | {(lif, rec), (rec, lif)}
    if {tuple(e) for e in graph.edges} != want or len(io) != 2:
        raise ValueError(f"node {name!r}: a subgraph must be Input -> CubaLIF <-> Linear -> Output "
                         f"(a recurrent layer), got edges {graph.edges}")
    return graph.nodes[lif], (f"{name}.{rec}", graph.nodes[rec])


def _lateral(name: str, node: Any, n_out: int) -> float:
    nir = _nir()
    if not isinstance(node, (nir.Linear, nir.Affine)):
        raise ValueError(f"node {name!r}: the recurrent connection must be a Linear (lateral inhibition)")
    weight = np.asarray(node.weight, dtype=np.float64)
    if weight.shape != (n_out, n_out) or np.any(np.diag(weight) != 0) \
            or (isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0)):
        raise ValueError(f"node {name!r}: the recurrent weight must be ({n_out}, {n_out}) with a zero diagonal")
    off = weight[~np.eye(n_out, dtype=bool)]
    if off.size and (np.any(off != off[0]) or off[0] > 0):
        raise ValueError(f"node {name!r}: hm2bp's lateral inhibition is one strength -w0 <= 0 off the diagonal")
    return float(-off[0]) if off.size else 0.0
