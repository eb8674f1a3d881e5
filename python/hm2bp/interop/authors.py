"""The authors' file formats (mm-bp-snn): their text checkpoint and their speech weight files.

**Text checkpoint** (Result/checkPoint*.txt; SPEC_CNN 6). One line of "%f " numbers, layer after
layer in the order of the network, pool layers writing nothing: a conv layer its kernels W
(O, C, K, K) in flat order ((o*C + c)*K + i)*K + j, then O biases; a dense layer W (O, N)
row-major, then O biases; the output (last) dense layer W, then its O x O lateral matrix (0 on
the diagonal, -w0 elsewhere), then O biases. The biases are never used by the authors' code
(SPEC_CNN 8.4): zeros on write, ignored on read. The lateral matrix is checked on read.
`shapes` are the trainable layers' weight shapes, as hm2bp.layers.param_shapes gives them;
mnist-cnn's [(15, 1, 5, 5), (40, 15, 5, 5), (300, 640), (10, 300)] take 210840 numbers.

**Speech weight files** (SPEC_SPEECH 4.1). One synapse per line, ``idx pre_name post_name
weight`` separated by whitespace (the authors write tabs); a name is ``<group>_<k>`` and k is the
integer after the last underscore (``hidden_0_5`` -> group hidden_0, neuron 5); W[post, pre] +=
weight (duplicate synapses add up); a pre index equal to the layer's input count is a bias
neuron and is skipped. The four files of the authors' 78-135-64-26 network:

    r_weights_info.txt            input_i     -> reservoir_o   W_in  (135, 78), +-8 per synapse
    r_weights_recurrent_info.txt  reservoir_i -> reservoir_j   W_rec (135, 135), +-1
    h_weights_info.txt            reservoir_p -> hidden_0_q    hidden (64, 135)
    o_weights_info.txt            hidden_0_p  -> output_q      output (26, 64)
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import safe_io
from ..config import RunConfig
from ..config import preset as preset_config
from ..model.layers import Dense, Reservoir
from ..model.network import Network

__all__ = ["WEIGHT_FILES", "SpeechWeights", "WeightFileError", "checkpoint_size", "lateral_matrix",
           "network_from_checkpoint", "read_checkpoint", "read_speech_weights", "read_synapses",
           "read_weight_files", "write_checkpoint", "write_speech_weights", "write_synapses",
           "write_weight_files"]

# "%f" prints 6 decimals: a lateral entry is -w0 to within half of the last one.
_PRINT_TOLERANCE = 5e-7
_MAX_TOKEN = 64  # characters per number and its separator, at most, in a file we read
_MAX_LINE = 4 * _MAX_TOKEN  # characters of a weight file's line (index, two names, weight)


def _layout(shapes: Sequence[Sequence[int]]) -> list[tuple[int, int, int]]:
    """(weights, lateral entries, biases) per layer, in file order."""
    shapes = [tuple(int(n) for n in s) for s in shapes]
    if not shapes:
        raise ValueError("a checkpoint needs at least one layer shape")
    if len(shapes[-1]) != 2:
        raise ValueError(f"the output layer must be dense (O, N), got shape {shapes[-1]}")
    out = []
    for k, shape in enumerate(shapes):
        if len(shape) not in (2, 4) or min(shape) < 1:
            raise ValueError(f"shapes[{k}] must be dense (O, N) or conv (O, C, K, K), got {shape}")
        O = shape[0]
        out.append((math.prod(shape), O * O if k == len(shapes) - 1 else 0, O))
    return out


def checkpoint_size(shapes: Sequence[Sequence[int]]) -> int:
    """How many numbers a checkpoint of these weight shapes holds."""
    return sum(w + lat + b for w, lat, b in _layout(shapes))


def lateral_matrix(n: int, w0: float) -> np.ndarray:
    """L[o, l] = -w0 for l != o, 0 on the diagonal (SPEC 1)."""
    return -w0 * (1.0 - np.eye(n))


def read_checkpoint(path: str | os.PathLike, shapes: Sequence[Sequence[int]],
                    w0: float = 1.0) -> list[np.ndarray]:
    """The weights of a checkpoint, one float64 array per shape. Raises ValueError naming the
    file on a wrong count of numbers, a token that is not a finite number, or a lateral matrix
    that is not -w0 off the diagonal (0 on it)."""
    layout = _layout(shapes)
    expected = checkpoint_size(shapes)
    # "%f " prints a number in at most ~50 characters (weights are small); the file is read
    # whole only when it can be the expected count of numbers.
    text = safe_io.read_bytes(path, expected * _MAX_TOKEN + 4096, what="authors' checkpoint",
                              error=ValueError).decode("ascii", errors="replace")
    tokens = text.split()
    if len(tokens) != expected:
        raise ValueError(f"{path}: {len(tokens)} numbers, expected {expected} for layer shapes "
                         f"{[tuple(s) for s in shapes]}")
    values = np.empty(expected)
    for k, token in enumerate(tokens):
        try:
            values[k] = float(token)
        except ValueError:
            values[k] = math.nan
        if not math.isfinite(values[k]):
            raise ValueError(f"{path}: number {k} (0-based) is {safe_io.short(token, 40)}, not a finite "
                             f"number")
    weights, at = [], 0
    for shape, (n_w, n_lat, n_b) in zip(shapes, layout):
        weights.append(values[at:at + n_w].reshape(tuple(shape)))
        at += n_w
        if n_lat:
            O = int(shape[0])
            found = values[at:at + n_lat].reshape(O, O)
            worst = float(np.abs(found - lateral_matrix(O, w0)).max())
            if worst > _PRINT_TOLERANCE:
                raise ValueError(f"{path}: the output lateral matrix (numbers {at}..{at + n_lat - 1}) "
                                 f"is not 0 on the diagonal and -{w0:g} elsewhere (off by up to {worst:g})")
            at += n_lat
        at += n_b  # biases: unused by the authors' code
    return weights


def write_checkpoint(path: str | os.PathLike, weights: Sequence[np.ndarray],
                     shapes: Sequence[Sequence[int]], w0: float = 1.0) -> None:
    """Write weights (one array per shape) in the authors' format: zero biases, the lateral
    matrix of strength w0 after the output weights."""
    layout = _layout(shapes)
    weights = list(weights)
    if len(weights) != len(layout):
        raise ValueError(f"{path}: {len(weights)} weight arrays for {len(layout)} layer shapes")
    blocks = []
    for k, (W, shape, (_, n_lat, n_b)) in enumerate(zip(weights, shapes, layout)):
        W = np.asarray(W, dtype=np.float64)
        if W.shape != tuple(shape):
            raise ValueError(f"{path}: weights[{k}] has shape {W.shape}, expected {tuple(shape)}")
        if not np.isfinite(W).all():
            raise ValueError(f"{path}: weights[{k}] is not finite")
        blocks.append(W.ravel())
        if n_lat:
            blocks.append(lateral_matrix(int(shape[0]), w0).ravel())
        blocks.append(np.zeros(n_b))
    text = "".join(f"{x:f} " for x in np.concatenate(blocks))  # C's "%f ", no newline
    safe_io.atomic_write(path, lambda fh: fh.write(text.encode("ascii")), what="authors' checkpoint")


def network_from_checkpoint(path: str | os.PathLike, config: Any, backend: str = "cpu",
                            threads: int | None = None) -> Any:
    """An hm2bp.Network built from `config` (a hm2bp.config.RunConfig, e.g. preset("mnist-cnn"))
    carrying the weights of the authors' checkpoint at `path`."""
    net = Network(**{**config.network_kwargs(backend), "threads": threads})
    net.set_weights(read_checkpoint(path, [w.shape for w in net.get_weights()], config.lateral_inhibition))
    return net


# ----------------------------------------------------------------------------------------------
# Speech weight files

# file name, pre group, post group of each weight matrix
WEIGHT_FILES: dict[str, tuple[str, str, str]] = {
    "input": ("r_weights_info.txt", "input", "reservoir"),
    "recurrent": ("r_weights_recurrent_info.txt", "reservoir", "reservoir"),
    "hidden": ("h_weights_info.txt", "reservoir", "hidden_0"),
    "output": ("o_weights_info.txt", "hidden_0", "output"),
}


class WeightFileError(ValueError):
    """A weight file is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class SpeechWeights:
    """The four matrices of the authors' speech network, float64, W[post, pre]."""

    input: np.ndarray      # (N, C): input -> reservoir
    recurrent: np.ndarray  # (N, N): reservoir -> reservoir
    hidden: np.ndarray     # (H, N): reservoir -> hidden_0
    output: np.ndarray     # (K, H): hidden_0 -> output


def _neuron(token: str, group: str, size: int, where: str, bias_ok: bool) -> int | None:
    """The index of `token` = `<group>_<k>` (k in 0..size-1; k == size, a bias, gives None when
    bias_ok)."""
    head, _, k = token.rpartition("_")
    if head != group or not k.isdigit():
        raise WeightFileError(f"{where}: neuron {token[:40]!r} is not {group}_<index>")
    index = int(k)
    if bias_ok and index == size:
        return None
    if index >= size:
        raise WeightFileError(f"{where}: neuron {token!r} is out of range ({group} has {size} "
                              f"neurons, {group}_0 ... {group}_{size - 1})")
    return index


def read_synapses(path: str | os.PathLike[str], pre: str, post: str, n_pre: int,
                  n_post: int) -> np.ndarray:
    """W (n_post, n_pre) float64 from one weight file of synapses pre_i -> post_o (the sum
    of their weights, 0 where none). Raises WeightFileError naming the file and line for a
    line that is not `idx pre_name post_name weight`, a neuron of another group or out of
    range, or a weight that is not a finite number."""
    path = Path(path)
    try:
        # a line per synapse (duplicates of the reservoir's input fan-out included), each far
        # shorter than _MAX_LINE
        raw = safe_io.read_bytes(path, (n_pre + 1) * n_post * _MAX_LINE + safe_io.MiB, what="weight file",
                                 error=WeightFileError)
        text = raw.decode("ascii")
    except FileNotFoundError:
        raise WeightFileError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise WeightFileError(f"{path}: not a weight file (byte {exc.start} is not ASCII)") from None
    except OSError as exc:
        raise WeightFileError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    W = np.zeros((n_post, n_pre))
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}: line {n}"
        if len(fields) != 4 or not fields[0].isdigit():
            raise WeightFileError(f"{where}: expected 'index {pre}_<i> {post}_<j> weight', got "
                                  f"{line.strip()[:60]!r}")
        i = _neuron(fields[1], pre, n_pre, where, bias_ok=True)
        o = _neuron(fields[2], post, n_post, where, bias_ok=False)
        try:
            w = float(fields[3])
        except ValueError:
            w = math.nan
        if not math.isfinite(w):
            raise WeightFileError(f"{where}: weight {fields[3][:40]!r} is not a finite number")
        if i is not None:  # a bias neuron's synapse: unused by the authors' network
            W[o, i] += w
    return W


def _format(w: float, precision: int | None) -> str:
    if precision is not None:
        return f"{w:.{precision}g}"  # C++'s ostream << double at that precision
    text = repr(float(w))  # the shortest text that reads back as the same double
    return text[:-2] if text.endswith(".0") else text


def write_synapses(path: str | os.PathLike[str], W: np.ndarray, pre: str, post: str, *,
                   dense: bool, precision: int | None = None) -> int:
    """Write W (n_post, n_pre) as one line per synapse, pre-major and post ascending (the
    authors' order for the trained layers). dense: a line for every entry (the trained layers);
    otherwise only for the non-zero ones (the reservoir's sparse wiring; a summed duplicate
    becomes one synapse of the sum). precision None writes each weight exactly (it reads back
    bit for bit); 6 prints as the authors' code does. Returns the number of lines."""
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"{path}: expected a (post, pre) matrix, got shape {W.shape}")
    if not np.isfinite(W).all():
        raise ValueError(f"{path}: the {pre} -> {post} weights are not all finite")
    lines = []
    for i in range(W.shape[1]):
        for o in (range(W.shape[0]) if dense else np.flatnonzero(W[:, i])):
            lines.append(f"{len(lines)}\t{pre}_{i}\t{post}_{o}\t{_format(W[o, i], precision)}\n")
    safe_io.atomic_write(path, lambda fh: fh.write("".join(lines).encode("ascii")), what="weight file")
    return len(lines)


def read_speech_weights(folder: str | os.PathLike[str], sizes: Sequence[int] = (78, 135, 64, 26)
                        ) -> SpeechWeights:
    """The four weight files in `folder` (names in WEIGHT_FILES) for a network of `sizes`
    (inputs C, reservoir N, hidden H, classes K)."""
    C, N, H, K = (int(s) for s in sizes)
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightFileError(f"{folder}: no such folder (expected the authors' four weight files "
                              f"{', '.join(f for f, _, _ in WEIGHT_FILES.values())})")
    shape = {"input": (C, N), "recurrent": (N, N), "hidden": (N, H), "output": (H, K)}
    return SpeechWeights(**{key: read_synapses(folder / name, pre, post, *shape[key])
                            for key, (name, pre, post) in WEIGHT_FILES.items()})


def write_speech_weights(folder: str | os.PathLike[str], weights: SpeechWeights,
                         precision: int | None = None) -> None:
    """The four weight files of `weights` in `folder` (created if needed): the reservoir's
    sparse (non-zero synapses), the trained layers' dense; see write_synapses."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for key, (name, pre, post) in WEIGHT_FILES.items():
        write_synapses(folder / name, getattr(weights, key), pre, post,
                       dense=key in ("hidden", "output"), precision=precision)


def _speech_layers(net: Network) -> None:
    """Refuse a network that is not input -> Reservoir -> Dense -> Dense (the files' shape)."""
    kinds = [type(layer) for layer in net.layer_specs]
    if kinds != [Reservoir, Dense, Dense]:
        names = ", ".join(k.__name__ for k in kinds)
        raise WeightFileError(f"the authors' weight files hold a Reservoir, a hidden and an output "
                              f"Dense layer; this network has {names}")


def read_weight_files(folder: str | os.PathLike[str], preset: str | RunConfig = "ti46-alpha",
                      backend: str = "cpu", threads: int | None = None) -> Network:
    """A hm2bp.Network of the preset `preset` (a name, e.g. "ti46-alpha", or a
    hm2bp.config.RunConfig of an input, a Reservoir and two Dense layers) carrying the weights of
    the authors' four files in `folder`: their reservoir wiring and their hidden and output
    weights."""
    config = preset_config(preset) if isinstance(preset, str) else preset
    net = Network(**{**config.network_kwargs(backend), "threads": threads})
    _speech_layers(net)
    w = read_speech_weights(folder, net.layers)
    net.set_reservoir_weights([(w.input, w.recurrent)])
    net.set_weights([w.hidden, w.output])
    return net


def write_weight_files(folder: str | os.PathLike[str], net: Network, precision: int | None = None) -> None:
    """The four weight files of a Network of the authors' speech shape (see read_weight_files)."""
    _speech_layers(net)
    (w_in, w_rec), = net.reservoir_weights()
    hidden, output = net.get_weights()
    write_speech_weights(folder, SpeechWeights(np.asarray(w_in, np.float64), np.asarray(w_rec, np.float64),
                                               np.asarray(hidden, np.float64), np.asarray(output, np.float64)),
                         precision)
