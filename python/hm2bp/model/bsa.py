"""BSA spike encoding of analog channels (Ben's Spiker Algorithm, the speech front end of the
HM2-BP paper; SPEC_SPEECH 2), computed by the compiled engine."""
from __future__ import annotations

import numpy as np

from .. import _core
from . import limits
from .arrays import as_host_array, check_analog
from .hyper import check_whole
from .network import default_threads

__all__ = ["encode_bsa"]


def encode_bsa(analog: np.ndarray, T: int, threads: int | None = None) -> np.ndarray:  # noqa: N803 (paper's T)
    """BSA spike trains of analog samples: (C, frames) -> bool (T, C), (B, C, frames) -> bool (B, T, C).

    Each channel's values (a cochleagram's, e.g. `hm2bp.data.read_speech`) are held 10 steps each
    and scaled by 2e3; a channel spikes at steps 1 .. 10 * frames, and spikes at t >= T are
    dropped. Deterministic: the same samples give the same spikes on every backend.
    """
    values = as_host_array(analog, "analog")
    if values.ndim not in (2, 3):
        raise ValueError(f"analog must have shape (channels, frames) or (batch, channels, frames), got {values.shape}")
    batch = check_analog(values if values.ndim == 3 else values[None])
    T = check_whole("T", T, 1)
    threads = default_threads() if threads is None else check_whole("threads", threads, 1, limits.MAX_THREADS)
    limits.check_sizes([batch.shape[1]], batch.shape[0], T)
    out = _core.encode_bsa(batch, T, threads)
    return out if values.ndim == 3 else out[0]
