"""The authors' weight files of the speech network (SPEC_SPEECH 4.1), read and written.

One synapse per line, ``idx pre_name post_name weight`` separated by whitespace (the authors
write tabs); a name is ``<group>_<k>`` and k is the integer after the last underscore
(``hidden_0_5`` -> group hidden_0, neuron 5); W[post, pre] += weight (duplicate synapses add
up); a pre index equal to the layer's input count is a bias neuron and is skipped. The four
files of the authors' 78-135-64-26 network:

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

import numpy as np

from .runstate import atomic_write

__all__ = ["WEIGHT_FILES", "SpeechWeights", "WeightFileError", "read_synapses",
           "read_speech_weights", "write_synapses", "write_speech_weights"]

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
        text = path.read_text(encoding="ascii")
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
    atomic_write(Path(path), lambda fh: fh.write("".join(lines).encode("ascii")))
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
