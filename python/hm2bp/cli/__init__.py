"""The command-line side: hm2bp-train, hm2bp-eval and hm2bp-export (`main`), their progress
display (`progress`), plots (`plot`), parameter sweeps (`sweep`) and MPI data-parallel training
(`distributed`)."""
from __future__ import annotations

from .main import eval_main, export_main, train_main

__all__ = ["eval_main", "export_main", "train_main"]
