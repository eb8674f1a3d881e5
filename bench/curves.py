"""One metric of several runs, per epoch, in one figure: the recipes tried side by side.

    python -m bench.curves OUT.png [--metric val_accuracy] [--title T] LABEL=FILE[:PROBE] ...

FILE is a run's metrics.jsonl (one record per epoch, as hm2bp-train writes it) or a probe file
(bench/results/*-probe.jsonl: one record per probe with its "metrics" list), of which :PROBE
picks the record whose "probe" is PROBE. Accuracies are drawn in percent. Needs matplotlib.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def read_series(spec: str) -> tuple[str, list[dict[str, Any]]]:
    """LABEL=FILE[:PROBE] -> (label, the run's per-epoch records)."""
    label, sep, where = spec.partition("=")
    if not sep or not label or not where:
        raise ValueError(f"{spec!r}: give each series as LABEL=FILE or LABEL=FILE:PROBE")
    path, _, probe = where.partition(":")
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if not probe:
        return label, records
    for record in records:
        if record.get("probe") == probe:
            return label, record["metrics"]
    raise ValueError(f"{path} has no probe {probe!r} (it has {[r.get('probe') for r in records]})")


def plot(series: list[tuple[str, list[dict[str, Any]]]], metric: str, out: Path, title: str = "") -> Path:
    from hm2bp.cli.plot import require_matplotlib, save_figure

    plt = require_matplotlib()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(9, 5.5))
    percent = "accuracy" in metric
    for k, (label, records) in enumerate(series):
        points = [(r["epoch"], r[metric]) for r in records if metric in r]
        if not points:
            raise ValueError(f"series {label!r} has no {metric!r}")
        ax.plot([e for e, _ in points], [100 * v if percent else v for _, v in points], marker="os^"[k // 10 % 3],
                ls=("-", "--", ":")[k // 10 % 3], label=label)  # the 10 colours repeat: another style then
    ax.set(xlabel="epoch", ylabel=f"{metric} (%)" if percent else metric)
    ax.set_title(title, fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.curves", description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="the figure to write (.png, .pdf or .svg)")
    p.add_argument("series", nargs="+", help="LABEL=FILE or LABEL=FILE:PROBE")
    p.add_argument("--metric", default="val_accuracy", help="a key of the per-epoch records")
    p.add_argument("--title", default="")
    args = p.parse_args(argv)
    try:
        print(plot([read_series(s) for s in args.series], args.metric, args.out, args.title))
    except (OSError, ValueError, KeyError) as e:
        print(f"bench.curves: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
