"""Command-line tools: ``hm2bp-train`` (train_main) and ``hm2bp-eval`` (eval_main).

Both return an exit code: 0 success, 2 bad usage/config/data/checkpoint, a diverged run or
too little memory (one line ``<prog>: error: ...``, no traceback; ``--debug`` adds it), 1 an
internal error (one line too), 128 + the signal number when SIGINT (130), SIGHUP (129) or
SIGTERM (143) stopped the run after saving a checkpoint, 141 when stdout was closed (``| head``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from .. import safe_io
from .._suggest import did_you_mean
from ..config import BACKENDS, DTYPES, PRESETS, ConfigError, RunConfig, build_config
from ..config.doc import to_toml
from ..data import DatasetError
from ..interop import authors, nir
from ..model.network import resolve_backend
from ..train import runstate
from ..train.build import build_network, check_memory
from ..train.checkpoint import load_checkpoint, restore_network
from ..train.metrics_log import LOGGERS, TensorBoardError
from ..train.runstate import CheckpointError, RunDirError
from ..train.sources import evaluate, make_source
from ..train.trainer import DivergenceError, Trainer, format_epoch
from . import distributed, sweep
from .evaluation import eval_samples, format_confusion
from .plot import PLOT_FORMATS, PlotError, require_matplotlib, write_plots
from .progress import DEFAULT_INTERVAL, Progress, ProgressLines

__all__ = ["Progress", "eval_main", "train_main"]


# Longest message line; a value a user handed us (a 100 MB string) is cut in the middle.
_MAX_MESSAGE = 600


def _one_line(message: Any) -> str:
    text = " ".join(str(message).split("\n"))
    if len(text) > _MAX_MESSAGE:
        half = _MAX_MESSAGE // 2
        text = f"{text[:half]} ... {text[-half:]}"
    return text


def _error(prog: str, message: Any) -> int:
    print(f"{prog}: error: {_one_line(message)}", file=sys.stderr)
    return 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (or too little memory) rather than a bug."""
    return (ConfigError, CheckpointError, RunDirError, DivergenceError, DatasetError,
            TensorBoardError, OSError, MemoryError, safe_io.FileRefusedError)


class _Parser(argparse.ArgumentParser):
    """argparse with hm2bp's one-line errors (exit 2), the usage left to --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def integer(text: str) -> int:
    """argparse type of every integer option: an int of at most 64 bits (no option takes more,
    and a longer one would overflow the first float it meets)."""
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{safe_io.short(text, 40)} is out of range (at most 64-bit "
                                         f"integers)")
    return value


# What each path argument is (by dest): read as a file, written (replaced atomically), or a
# directory. _check_paths refuses special files for all of them before any work starts.
_PATH_KINDS = {"config": "input", "authors_checkpoint": "input", "authors_weights": "directory", "checkpoint": "run",
               "export_authors_checkpoint": "output", "export_authors_weights": "directory", "nir": "output",
               "data_dir": "directory", "out": "directory", "resume": "directory"}


def _check_paths(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every path argument, checked before anything is read or computed: an input is a regular
    file (a FIFO, device, directory or socket is refused at once, never opened for reading),
    an output is absent or a regular file, a directory argument is not something else."""
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        kind = _PATH_KINDS.get(action.dest)
        if value is None or kind is None or not os.path.lexists(value):
            continue
        if kind == "output":
            safe_io.check_output(value, what=f"--{action.dest.replace('_', '-')} file")
        elif kind == "directory":
            if not os.path.isdir(value):
                raise safe_io.FileRefusedError(f"{value}: not a directory ({action.metavar} of "
                                               f"{'/'.join(action.option_strings)})")
        elif not (kind == "run" and os.path.isdir(value)):
            safe_io.open_regular(value, 1 << 62, what="input").close()


def _integers(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    # every integer option, whoever declares it (sweep, distributed), parses as `integer`
    for action in parser._actions:
        if action.type is int:
            action.type = integer
    return parser


@contextlib.contextmanager
def _one_line_warnings(prog: str) -> Iterator[None]:
    def show(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        print(f"{prog}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        yield


def _main(prog: str, parser: argparse.ArgumentParser, argv: Sequence[str] | None,
          body: Callable[[argparse.Namespace], int]) -> int:
    """Run a tool: every exception becomes one line and an exit code (see the module doc)."""
    args = _integers(parser).parse_args(argv)
    try:
        with _one_line_warnings(prog), runstate.SignalGuard():
            _check_paths(parser, args)
            return body(args)
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except KeyboardInterrupt as exc:  # before or after training: nothing to save
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"{prog}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        if isinstance(exc, _user_errors()):
            return _error(prog, str(exc) or type(exc).__name__)
        if isinstance(exc, RecursionError):  # only input nested thousands deep gets here
            return _error(prog, "an input is nested too deeply (thousands of levels)")
        print(f"{prog}: internal error: {type(exc).__name__}: {_one_line(exc)} (rerun with --debug "
              f"for the traceback and report it)", file=sys.stderr)
        return 1


_PRESET_CHOICES = "{" + ",".join(sorted(PRESETS)) + "}"


def _preset(name: str) -> str:
    """--preset's value: a preset's name (argparse reports the error, with the closest name)."""
    if name not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {name!r}{did_you_mean(name, PRESETS)}")
    return name


def _train_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="hm2bp-train",
        description="Train an HM2-BP spiking network. Without arguments: the mnist-mini "
                    "preset on the bundled digits.",
    )
    p.add_argument("--preset", type=_preset, metavar=_PRESET_CHOICES,
                   help="start from this preset (default: mnist-mini, or the config's preset)")
    p.add_argument("--config", metavar="FILE", help="TOML config file (flat or "
                   "[network]/[training]/[data] tables; optional preset = \"...\")")
    p.add_argument("--data-dir", metavar="DIR", help="dataset directory")
    p.add_argument("--epochs", type=int, metavar="N")
    p.add_argument("--batch-size", type=int, metavar="N")
    p.add_argument("--lr", type=float, metavar="LR0", help="initial learning rate")
    p.add_argument("--backend", choices=BACKENDS, help="engine backend (default auto)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads of the engine")
    p.add_argument("--seed", type=int, metavar="N")
    p.add_argument("--dtype", choices=DTYPES)
    p.add_argument("--reencode", action="store_true", default=None,
                   help="draw new Poisson spikes every epoch (default: encode once)")
    p.add_argument("--train-size", type=int, metavar="N",
                   help="train on N samples: a class-stratified sample drawn with --seed")
    p.add_argument("--test-size", type=int, metavar="N",
                   help="test on N samples: a class-stratified sample drawn with --seed")
    p.add_argument("--val-split", type=float, metavar="SHARE",
                   help="hold out this share of the training set (e.g. 0.1) to pick the best "
                        "epoch (best.npz); test accuracy is still reported")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<preset>-<time>)")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the run in DIR (only --epochs, --backend, --threads, "
                        "--data-dir and the output flags (--quiet, --plot, --log, "
                        "--print-config, ...) may be combined with it)")
    p.add_argument("--quiet", action="store_true", help="only the final accuracy line")
    p.add_argument("--progress-interval", type=float, metavar="SECONDS", default=DEFAULT_INTERVAL,
                   help="when stderr is not a terminal, a progress line every SECONDS "
                        f"(default {DEFAULT_INTERVAL:g})")
    p.add_argument("--log", action="append", choices=LOGGERS, default=[],
                   help="also log the metrics as TensorBoard scalars in RUN_DIR/tensorboard "
                        "(needs tensorboard; metrics.jsonl and metrics.csv are always written)")
    p.add_argument("--plot", action="store_true",
                   help="write training curves and a spike raster (needs matplotlib)")
    p.add_argument("--plot-format", choices=PLOT_FORMATS, default="png",
                   help="file format of --plot (png at 300 dpi, or pdf, svg; default png)")
    p.add_argument("--print-config", action="store_true",
                   help="print the effective config as TOML (a file for --config) and exit")
    p.add_argument("--distributed", choices=distributed.MODES, default="auto",
                   help="split every batch across MPI ranks (auto: when started by mpirun/srun "
                        "with more than one rank)")
    sweep.add_arguments(p)
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


class _Report:
    """Progress bar (terminals only) and per-epoch lines of hm2bp-train."""

    def __init__(self, quiet: bool, interval: float = DEFAULT_INTERVAL):
        self.quiet = quiet
        self.epochs = 0
        self.progress: Progress | ProgressLines | None = None
        if not quiet:
            self.progress = Progress(sys.stderr) if sys.stderr.isatty() else ProgressLines(sys.stderr, interval)

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def on_batch(self, epoch: int, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(epoch, done, total, self.epochs)

    def on_epoch(self, metrics: dict[str, Any]) -> None:
        self.clear()
        self.say(format_epoch(metrics, self.epochs))

    def clear(self) -> None:
        if isinstance(self.progress, Progress):
            self.progress.clear()


_NOT_WITH_RESUME = ("preset", "config", "batch_size", "lr", "seed", "dtype", "reencode",
                    "train_size", "test_size", "val_split", "out")


def _default_out(config: RunConfig, config_file: str | None) -> Path:
    """A new, unique runs/<preset>-<time>[-k] directory."""
    name = config.preset or (Path(config_file).stem if config_file else "run")
    return runstate.make_run_dir(Path("runs"), name)


def _discard_unused(out: Path) -> None:
    # A default directory whose run could not start is empty (the lock deleted itself).
    with contextlib.suppress(OSError):
        out.rmdir()
        out.parent.rmdir()  # runs/ too, when nothing else is in it


def train_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of hm2bp-train."""
    return distributed.abort_on_error(_main("hm2bp-train", _train_parser(), argv, _train))


def _train(args: argparse.Namespace) -> int:
    prog = "hm2bp-train"
    if not args.progress_interval > 0:
        return _error(prog, f"--progress-interval must be > 0 seconds, got {args.progress_interval}")
    if args.plot:
        try:
            require_matplotlib()
        except PlotError as exc:
            return _error(prog, exc)
    report = _Report(quiet=args.quiet, interval=args.progress_interval)
    log = tuple(dict.fromkeys(args.log))
    comm = distributed.communicator(args.distributed)
    if sweep.requested(args) and not args.print_config:
        return sweep.run(args, comm)
    dp = distributed.DataParallel(comm) if comm is not None else None
    if dp is not None and not dp.is_root:
        return distributed.follow(dp)
    if args.resume:
        given = [f"--{k.replace('_', '-')}" for k in _NOT_WITH_RESUME
                 if getattr(args, k) is not None]
        if given:
            return _error(prog, f"{', '.join(given)} cannot be combined with --resume "
                                "(the run continues with its stored config)")
        out = Path(args.resume)
        if args.epochs is not None and args.epochs < (done := load_checkpoint(out)[1]["epoch"]):
            return _error(prog, f"{out} has already completed {done} epochs, more than --epochs {args.epochs}; "
                                f"to train on, give the new total (--epochs N with N > {done}); "
                                f"to evaluate it: hm2bp-eval {out}")
        if args.print_config:
            config = load_checkpoint(out)[0].replace(epochs=args.epochs, backend=args.backend,
                                                     threads=args.threads, data_dir=args.data_dir)
            sys.stdout.write(to_toml(config))
            return 0
        trainer = Trainer.resume(out, epochs=args.epochs, backend=args.backend,
                                 threads=args.threads, data_dir=args.data_dir,
                                 on_batch=report.on_batch, on_epoch=report.on_epoch,
                                 distributed=dp, log=log)
    else:
        config = build_config(
            args.preset, args.config, data_dir=args.data_dir, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, backend=args.backend,
            threads=args.threads, seed=args.seed, dtype=args.dtype,
            reencode=args.reencode, train_size=args.train_size, test_size=args.test_size,
            val_split=args.val_split,
        )
        if args.print_config:
            sys.stdout.write(to_toml(config))
            return 0
        out = Path(args.out) if args.out else _default_out(config, args.config)
        try:
            trainer = Trainer(config, out, on_batch=report.on_batch, on_epoch=report.on_epoch,
                              distributed=dp, log=log)
        except BaseException:
            if not args.out:
                _discard_unused(out)
            raise

    if dp is not None:
        dp.send_config(trainer.config)
    cfg = trainer.config
    report.epochs = cfg.epochs
    say = report.say
    chosen = f"{trainer.backend} (auto)" if cfg.backend == "auto" else trainer.backend
    say(f"{cfg.preset or 'custom'}: layers {'-'.join(map(str, cfg.layers))}, T {cfg.T}, "
        f"{len(trainer.train_set)} train / {len(trainer.test_set)} test samples of "
        f"{cfg.dataset}, batch {cfg.batch_size}, backend {chosen}, {cfg.dtype}")
    if dp is not None:
        say(f"data-parallel: every batch of {cfg.batch_size} split over {dp.comm.size} MPI ranks")
    if args.resume:
        say(f"resuming {out} after epoch {trainer.epoch} of {cfg.epochs}")
    else:
        say(f"run directory {out}")

    if trainer.epoch >= cfg.epochs:
        say(f"nothing to train: the run already completed {trainer.epoch} epochs "
            f"(extend it with --resume {out} --epochs N)")
    try:
        result = trainer.fit()
    finally:
        report.clear()
    if result.interrupted:
        name = signal.Signals(result.signal).name
        print(f"interrupted ({name}): checkpoint of epoch {result.epochs_completed} saved in "
              f"{out}; continue with: hm2bp-train --resume {out}", file=sys.stderr)
        return 128 + result.signal
    print(f"test accuracy {100 * result.final_test_accuracy:.2f}% "
          f"(best {100 * result.best_test_accuracy:.2f}%)", flush=True)
    if args.plot:
        for path in write_plots(trainer, out, args.plot_format):
            say(f"wrote {path}")
    return 0


def _eval_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hm2bp-eval",
                                description="Evaluate a hm2bp-train checkpoint.")
    p.add_argument("checkpoint", metavar="CHECKPOINT_DIR_OR_NPZ", nargs="?",
                   help="run directory or checkpoint.npz")
    p.add_argument("--authors-checkpoint", metavar="FILE",
                   help="evaluate a network trained by the authors' code (their text checkpoint, "
                        "e.g. checkPoint_cnn_best.txt) instead of a run; with --preset or --config")
    p.add_argument("--authors-weights", metavar="DIR",
                   help="evaluate the authors' speech network from their weight files in DIR ({r,h,o}_weights_info"
                        ".txt, r_weights_recurrent_info.txt) instead of a run; with --preset (ti46-alpha) or --config")
    p.add_argument("--preset", type=_preset, metavar=_PRESET_CHOICES,
                   help="the network of --authors-checkpoint/-weights")
    p.add_argument("--config", metavar="TOML", help="the network of --authors-checkpoint/-weights")
    p.add_argument("--export-authors-checkpoint", metavar="FILE",
                   help="also write the network's weights in the authors' text format")
    p.add_argument("--export-authors-weights", metavar="DIR",
                   help="also write a speech network's weights as the authors' four weight files")
    p.add_argument("--data-dir", metavar="DIR", help="dataset directory")
    p.add_argument("--split", choices=("test", "train", "val"), default="test",
                   help="which samples: the test set, or the training set's trained or held-out "
                        "(--val-split) part")
    p.add_argument("--limit", type=int, metavar="N",
                   help="N samples, class-stratified with the run's seed (default: the "
                        "samples the run used)")
    p.add_argument("--backend", choices=BACKENDS)
    p.add_argument("--threads", type=int, metavar="N")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


def eval_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of hm2bp-eval."""
    return _main("hm2bp-eval", _eval_parser(), argv, _eval)


def _eval(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        return _error("hm2bp-eval", f"--limit must be >= 1, got {args.limit}")
    sources = [a for a in (args.checkpoint, args.authors_checkpoint, args.authors_weights) if a is not None]
    if len(sources) != 1:
        return _error("hm2bp-eval", "give one of a run (CHECKPOINT_DIR_OR_NPZ), --authors-checkpoint FILE "
                                    "or --authors-weights DIR")
    if args.checkpoint is None:
        flag = "--authors-checkpoint" if args.authors_checkpoint is not None else "--authors-weights"
        if args.preset is None and args.config is None:
            return _error("hm2bp-eval", f"{flag} needs the network: --preset NAME or --config TOML")
        config = build_config(args.preset, args.config, data_dir=args.data_dir, backend=args.backend,
                              threads=args.threads)
        backend = resolve_backend(config.backend)
        check_memory(config)  # as hm2bp-train does, before the network is allocated
        try:
            read = authors.network_from_checkpoint if args.authors_checkpoint is not None else authors.read_weight_files
            net = read(sources[0], config, backend, config.threads)
        except (OSError, ValueError) as exc:
            raise CheckpointError(str(exc)) from None
        what = f"authors' {'checkpoint' if args.authors_checkpoint is not None else 'weight files'} {sources[0]}"
    else:
        if args.preset is not None or args.config is not None:
            return _error("hm2bp-eval", "--preset/--config go with --authors-checkpoint/-weights, not with a run")
        config, meta, arrays = load_checkpoint(args.checkpoint)
        config = config.replace(data_dir=args.data_dir, backend=args.backend, threads=args.threads)
        backend = resolve_backend(config.backend)
        net = build_network(config, backend, None)
        restore_network(net, arrays, args.checkpoint)
        what = f"checkpoint {args.checkpoint}: epoch {meta['epoch']}"
    dataset, seed = eval_samples(config, args.split, args.limit)
    source = make_source(dataset, net, config.T, seed)
    t0 = time.perf_counter()
    result = evaluate(net, source, config.layers[-1], config.eval_batch_size)
    seconds = time.perf_counter() - t0
    n = len(result["predictions"])
    correct = int(np.trace(result["confusion"]))
    print(f"{what}, {config.preset or 'custom'} ({'-'.join(map(str, config.layers))}), "
          f"{args.split} split of {config.dataset}, backend {backend}")
    print(f"accuracy {100 * result['accuracy']:.2f}% ({correct}/{n}) in {seconds:.1f} s")
    print("confusion matrix (rows: label, columns: prediction)")
    print(format_confusion(result["confusion"]))
    if args.export_authors_checkpoint is not None:
        weights = net.get_weights()
        authors.write_checkpoint(args.export_authors_checkpoint, weights, [w.shape for w in weights],
                                 config.lateral_inhibition)
        print(f"wrote the weights in the authors' format to {args.export_authors_checkpoint}")
    if args.export_authors_weights is not None:
        try:
            authors.write_weight_files(args.export_authors_weights, net)
        except ValueError as exc:
            return _error("hm2bp-eval", f"--export-authors-weights: {exc}")
        print(f"wrote the weights as the authors' four weight files to {args.export_authors_weights}")
    return 0


def _export_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hm2bp-export",
                                description="Export a hm2bp-train run's network (NIR: docs/interop.md).")
    p.add_argument("checkpoint", metavar="CHECKPOINT_DIR_OR_NPZ", help="run directory or checkpoint.npz")
    p.add_argument("--nir", metavar="FILE", required=True, help="write the network as a NIR graph (.nir, HDF5)")
    p.add_argument("--dt", type=float, default=1.0, metavar="STEP",
                   help="one time step in the graph's time unit (default 1; snnTorch's importer wants 1e-4)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    return p


def export_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of hm2bp-export."""
    return _main("hm2bp-export", _export_parser(), argv, _export)


def _export(args: argparse.Namespace) -> int:
    config, meta, arrays = load_checkpoint(args.checkpoint)
    net = build_network(config, "cpu", None)
    restore_network(net, arrays, args.checkpoint)
    try:
        nir.write(args.nir, net, args.dt, {"T": config.T, "dataset": config.dataset, "epoch": meta["epoch"],
                                           "preset": config.preset or "custom"})
    except ImportError as exc:
        return _error("hm2bp-export", exc)
    except ValueError as exc:
        return _error("hm2bp-export", f"cannot export {args.checkpoint}: {exc}")
    print(f"wrote {args.nir}: {config.preset or 'custom'} network at epoch {meta['epoch']} as a NIR graph "
          f"(dt = {args.dt:g}; refractory period and encoding in its metadata)")
    return 0


