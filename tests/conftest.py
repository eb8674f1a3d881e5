from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def good_run(request, tmp_path_factory) -> Path:
    """A finished 1-epoch mnist-mini run of the real engine, with the test module's TINY
    config keys."""
    from hm2bp.config import preset
    from hm2bp.train.trainer import Trainer

    out = tmp_path_factory.mktemp("good") / "run"
    Trainer(preset("mnist-mini", epochs=1, **request.module.TINY), out).fit()
    return out


@pytest.fixture
def run_copy(good_run, tmp_path) -> Path:
    """A copy of good_run that a test may damage."""
    out = tmp_path / "run"
    shutil.copytree(good_run, out)
    return out
