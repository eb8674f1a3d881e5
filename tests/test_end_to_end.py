"""Whole trainings through the CLI, checked against the accuracy each run is expected to reach.

The default run (bundled digits) is part of CI; the paper presets on the shared real data take
minutes and are marked slow (run them with `python -m pytest -m slow`).
"""
from __future__ import annotations

import re

import pytest

from hm2bp.cli import train_main

FINAL_LINE = re.compile(r"^test accuracy (\d+\.\d\d)% \(best (\d+\.\d\d)%\)$")


def final_accuracy(capsys, argv: list[str]) -> tuple[float, float]:
    assert train_main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    match = FINAL_LINE.match(last)
    assert match, last
    return float(match[1]), float(match[2])


def test_default_run_on_bundled_digits(tmp_path, capsys):
    final, best = final_accuracy(capsys, ["--out", str(tmp_path / "run"), "--quiet"])
    assert final >= 85.0 and best >= final


@pytest.mark.slow
def test_mnist_fc800_on_mnist_10k(shared_data, tmp_path, capsys):
    final, _ = final_accuracy(capsys, ["--preset", "mnist-fc800", "--data-dir", str(shared_data / "mnist-10k"),
                                       "--epochs", "4", "--out", str(tmp_path / "run"), "--quiet"])
    assert final >= 94.0


@pytest.mark.slow
def test_nmnist_fc800_on_nmnist_small(shared_data, tmp_path, capsys):
    final, _ = final_accuracy(capsys, ["--preset", "nmnist-fc800", "--data-dir", str(shared_data / "nmnist-small"),
                                       "--epochs", "10", "--out", str(tmp_path / "run"), "--quiet"])
    assert final >= 80.0
