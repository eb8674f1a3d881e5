"""python -m hm2bp.cli ARGS: hm2bp-train ARGS (what mpirun starts on every rank)."""
import sys

from .main import train_main

sys.exit(train_main())
