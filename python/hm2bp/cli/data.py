"""``hm2bp-data``: make datasets. ``hm2bp-data spoken-letters OUT`` writes the open TI46
stand-in (hm2bp.data.spoken_letters) in the authors' layout, ready for ``--data-dir OUT``.

Exit codes: 0 done, 2 bad arguments or a missing tool (one line, no traceback), 130 when
interrupted (the files written so far are complete; the same command resumes).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from ..data import spoken_letters
from .progress import format_duration

__all__ = ["main"]

PROG = "hm2bp-data"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Make datasets for hm2bp.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sl = sub.add_parser(
        "spoken-letters", help="synthesize the spoken-letter stand-in for TI46 (needs espeak-ng)",
        description="Synthesize the letters A-Z with espeak-ng over many voices, speeds and "
                    "pitches, pass them through Lyon's passive ear (78 channels) and write .dat "
                    "files as OUT/{train,test}/<label>/*.dat; test voices are never in train/. "
                    "Deterministic; rerunning resumes an interrupted run.")
    sl.add_argument("out", metavar="OUT", help="output folder (use it as --data-dir)")
    sl.add_argument("--accents", default=",".join(spoken_letters.ACCENTS),
                    help="espeak-ng English accents, comma-separated (default: %(default)s)")
    sl.add_argument("--variants", default=",".join(spoken_letters.VARIANTS),
                    help="espeak-ng voice variants, comma-separated; a voice is accent+variant "
                         "(default: %(default)s)")
    sl.add_argument("--test-variants", type=int, default=4,
                    help="how many variants (drawn with --seed) make the test voices (default: 4)")
    sl.add_argument("--renditions", type=int, default=2,
                    help="samples per voice and letter, each at a speed and pitch drawn with "
                         "--seed (default: 2)")
    sl.add_argument("--seed", type=int, default=0, help="seeds the split and the speeds/pitches")
    sl.add_argument("--limit", type=int, default=None,
                    help="make only the first N samples of each split (a quick smoke set)")
    sl.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def _split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    start = last = time.monotonic()

    def progress(done: int, total: int, u: spoken_letters.Utterance) -> None:
        nonlocal last
        now = time.monotonic()
        if args.quiet or (now - last < 10 and done < total):
            return
        last = now
        rate = done / max(now - start, 1e-9)
        print(f"{PROG}: {done}/{total} samples ({u.relpath})  {rate:.1f}/s  "
              f"eta {format_duration((total - done) / rate)}", file=sys.stderr, flush=True)

    try:
        made = spoken_letters.generate(
            args.out, _split_list(args.accents), _split_list(args.variants), args.renditions,
            args.test_variants, args.seed, args.limit, progress)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the files written are complete, run the same command to "
              f"resume", file=sys.stderr)
        return 130
    except (spoken_letters.SpeechToolError, ValueError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    n_test = sum(u.split == "test" for u in made.utterances)
    print(f"{PROG}: {args.out}: {len(made.utterances) - n_test} training and {n_test} test samples "
          f"({made.written} written, {made.skipped} already there) in "
          f"{format_duration(time.monotonic() - start)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
