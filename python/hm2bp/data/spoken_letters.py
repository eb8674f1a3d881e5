"""An open stand-in for TI46's spoken letters (SPEC_SPEECH 8): the 26 letters A-Z synthesized by
espeak-ng over many voices, speeds and pitches, passed through Lyon's passive ear (the `lyon`
package: 12.5 kHz, earQ 8, step factor 0.25, decimation 125, i.e. 78 channels at 100 frames/s)
and written as the authors' ``.dat`` cochleagrams in their folder layout::

    OUT/train/0/<voice>_u<r>_c0.dat ... OUT/train/25/...    (label = the folder, 0 = 'A')
    OUT/test/0/...                                           (voices never used in train/)
    OUT/manifest.tsv                                         (one line per file: how it was made)

A voice is an espeak-ng accent with a voice variant (``en-gb-scotland+f3``); the variants are
split into train and test, so every test voice is one not trained on. Each (voice, letter)
is rendered ``renditions`` times at a speed and pitch drawn from `seed`; the output depends on
the arguments only (and on the espeak-ng version). Files are written atomically; a rerun with
the same arguments skips the files already there, so an interrupted run resumes where it
stopped. Synthetic speech varies far less between speakers than people do: the stand-in checks
the pipeline and its speed, not the paper's TI46 accuracy.

Needs the ``espeak-ng`` program (Debian/Ubuntu: ``apt-get install espeak-ng``) and the
``speech`` extra (``pip install hm2bp[speech]``: lyon, scipy).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import safe_io


__all__ = [
    "ACCENTS",
    "CHANNELS",
    "FRAME_RATE",
    "LETTERS",
    "SAMPLE_RATE",
    "VARIANTS",
    "SpeechToolError",
    "StandIn",
    "Utterance",
    "cochleagram",
    "format_dat",
    "generate",
    "plan",
    "synthesize",
    "trim_silence",
]

LETTERS = tuple(chr(ord("A") + k) for k in range(26))
SAMPLE_RATE = 12500  # TI46's rate: Lyon's filter bank then has exactly 78 channels
DECIMATION = 125     # 100 frames/s: one frame per 10 BSA steps of 1 ms (SPEC_SPEECH 8)
FRAME_RATE = SAMPLE_RATE // DECIMATION
EAR_Q = 8.0
STEP_FACTOR = 0.25
CHANNELS = 78
# espeak-ng's English accents and voice variants (all in Debian's espeak-ng-data 1.51).
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
           "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
            "klatt", "klatt2", "klatt3")
SPEEDS = (120, 220)   # words per minute, drawn uniformly (espeak-ng's default is 175)
PITCHES = (25, 75)    # espeak-ng's 0..99 pitch scale, drawn uniformly (default 50)
# Silence trimming: a 10 ms moving mean of |x| above 2% of its maximum, widened by 20 ms.
_TRIM_WINDOW_S, _TRIM_LEVEL, _TRIM_PAD_S = 0.010, 0.02, 0.020
MANIFEST = "manifest.tsv"
_MANIFEST_HEADER = "# hm2bp spoken-letters stand-in"


class SpeechToolError(RuntimeError):
    """espeak-ng or a Python dependency of the speech pipeline is missing or failed."""


@dataclass(frozen=True)
class Utterance:
    """One sample to make: a letter (label 0..25) spoken by a voice at a speed and pitch."""

    split: str       # "train" or "test"
    voice: str       # accent+variant, as espeak-ng's -v takes it
    label: int
    rendition: int
    speed: int       # words per minute (espeak-ng -s)
    pitch: int       # 0..99 (espeak-ng -p)

    @property
    def relpath(self) -> str:
        """Path below OUT: <split>/<label>/<voice>_u<rendition>_c<label>.dat (authors' naming)."""
        stem = self.voice.replace("+", "_")
        return f"{self.split}/{self.label}/{stem}_u{self.rendition}_c{self.label}.dat"


@dataclass(frozen=True)
class StandIn:
    """What generate() made or found: files written now, files already there, the plan."""

    written: int
    skipped: int
    utterances: tuple[Utterance, ...]


def _draw_seed(seed: int, *parts: str | int) -> list[int]:
    """A seed sequence from seed and names: stable across Python runs (no hash())."""
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return [seed, *np.frombuffer(digest[:16], dtype=np.uint32).tolist()]


def plan(accents: Sequence[str] = ACCENTS, variants: Sequence[str] = VARIANTS, renditions: int = 2,
         test_variants: int = 4, seed: int = 0) -> list[Utterance]:
    """The samples of a stand-in, in output order: `test_variants` of the variants (drawn with
    seed) make the test voices with every accent, the others the training voices; each
    (voice, letter) `renditions` times at a speed and pitch drawn from seed."""
    accents, variants = list(dict.fromkeys(accents)), list(dict.fromkeys(variants))
    if not accents or not variants:
        raise ValueError("need at least one accent and one voice variant")
    if renditions < 1:
        raise ValueError(f"renditions must be >= 1, got {renditions}")
    if not 1 <= test_variants < len(variants):
        raise ValueError(f"test_variants must be 1..{len(variants) - 1} (some variants must stay for "
                         f"training), got {test_variants} of {len(variants)} variants")
    rng = np.random.default_rng(_draw_seed(seed, "split", *variants))
    test = set(rng.choice(len(variants), size=test_variants, replace=False).tolist())
    out = []
    for split in ("train", "test"):
        for k, variant in enumerate(variants):
            if (k in test) != (split == "test"):
                continue
            for accent in accents:
                voice = f"{accent}+{variant}"
                for label in range(len(LETTERS)):
                    draws = np.random.default_rng(_draw_seed(seed, voice, label))
                    for r in range(renditions):
                        speed = int(draws.integers(SPEEDS[0], SPEEDS[1] + 1))
                        pitch = int(draws.integers(PITCHES[0], PITCHES[1] + 1))
                        out.append(Utterance(split, voice, label, r, speed, pitch))
    return out


# ----------------------------------------------------------------------------------------------
# The pipeline of one sample


def espeak_program() -> str:
    """The espeak-ng executable, or SpeechToolError saying how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise SpeechToolError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng; "
                              "macOS: brew install espeak-ng); the spoken-letters stand-in is "
                              "synthesized with it")
    return path


def available_variants(program: str | None = None) -> set[str]:
    """The voice variants this espeak-ng has (``espeak-ng --voices=variant``)."""
    listing = _run([program or espeak_program(), "--voices=variant"]).decode(errors="replace")
    names = set()
    for line in listing.splitlines()[1:]:  # columns: Pty Language Age/Gender VoiceName File ...
        fields = line.split()
        if len(fields) >= 5 and fields[4].startswith("!v/"):
            names.add(fields[4][3:])
    return names


def _run(cmd: list[str]) -> bytes:
    try:
        done = subprocess.run(cmd, capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SpeechToolError(f"{' '.join(cmd)}: {exc}") from None
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise SpeechToolError(f"{' '.join(cmd)} failed (exit {done.returncode}): {last}")
    return done.stdout


def _wav_samples(blob: bytes, what: str) -> tuple[np.ndarray, int]:
    """Mono 16-bit PCM of a RIFF/WAVE byte string as float64 in [-1, 1), and its rate.
    espeak-ng --stdout writes 'streaming' sizes (0x7ffff000): the data runs to the end."""
    if blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise SpeechToolError(f"{what}: espeak-ng wrote no WAVE data")
    at, rate = 12, 0
    while at + 8 <= len(blob):
        tag, size = blob[at:at + 4], int.from_bytes(blob[at + 4:at + 8], "little")
        if tag == b"fmt ":
            fmt = blob[at + 8:at + 24]
            channels, rate, bits = (int.from_bytes(fmt[2:4], "little"),
                                    int.from_bytes(fmt[4:8], "little"),
                                    int.from_bytes(fmt[14:16], "little"))
            if channels != 1 or bits != 16:
                raise SpeechToolError(f"{what}: expected mono 16-bit audio, got {channels} "
                                      f"channels of {bits} bits")
        elif tag == b"data":
            data = blob[at + 8:]
            data = data[:len(data) // 2 * 2]
            if not rate:
                raise SpeechToolError(f"{what}: WAVE data before its format chunk")
            return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0, rate
        at += 8 + size + (size & 1)
    raise SpeechToolError(f"{what}: espeak-ng wrote WAVE data without samples")


def synthesize(letter: str, voice: str, speed: int, pitch: int,
               program: str | None = None) -> np.ndarray:
    """One letter spoken by espeak-ng, resampled to SAMPLE_RATE (float64 in [-1, 1))."""
    from scipy.signal import resample_poly

    cmd = [program or espeak_program(), "-v", voice, "-s", str(speed), "-p", str(pitch),
           "--stdout", letter]
    x, rate = _wav_samples(_run(cmd), " ".join(cmd))
    g = np.gcd(SAMPLE_RATE, rate)
    return resample_poly(x, SAMPLE_RATE // g, rate // g)  # 22050 Hz -> 12500 Hz: 250/441


def trim_silence(x: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """x without leading and trailing silence (see _TRIM_*); all of x when nothing is louder."""
    width = max(1, round(_TRIM_WINDOW_S * rate))
    level = np.convolve(np.abs(x), np.ones(width) / width, mode="same")
    loud = np.flatnonzero(level > _TRIM_LEVEL * level.max()) if x.size and level.max() > 0 else []
    if len(loud) == 0:
        return x
    pad = round(_TRIM_PAD_S * rate)
    return x[max(0, loud[0] - pad):loud[-1] + pad + 1]


def _lyon() -> Callable[..., np.ndarray]:
    try:
        from lyon.calc import LyonCalc
    except ImportError as exc:  # also a missing scipy, reported the same way
        raise SpeechToolError(f"the speech pipeline needs the 'speech' extra "
                              f"(pip install 'hm2bp[speech]': lyon, scipy): {exc}") from None
    return LyonCalc().lyon_passive_ear


def cochleagram(x: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Lyon's passive ear of x as the authors' files hold it: (78 channels, frames), channel 0
    the highest band (SPEC_SPEECH 1.1, 8)."""
    if rate != SAMPLE_RATE:
        raise ValueError(f"rate must be {SAMPLE_RATE} Hz (78 channels), got {rate}")
    out = _lyon()(np.ascontiguousarray(x, dtype=np.float64), SAMPLE_RATE, DECIMATION, EAR_Q,
                  STEP_FACTOR)
    if out.ndim != 2 or out.shape[1] != CHANNELS:
        raise SpeechToolError(f"lyon returned shape {out.shape}, expected (frames, {CHANNELS})")
    return np.ascontiguousarray(out.T)


def format_dat(analog: np.ndarray) -> str:
    """A (channels, frames) array as the authors' .dat text: one line per channel, values
    `%.7e` separated by three spaces (their golden file's style)."""
    return "".join("   ".join(f"{v:.7e}" for v in row) + "\n" for row in np.asarray(analog))


def _write_atomic(path: Path, text: str) -> None:
    """Write text to path atomically (an interrupted run leaves the whole file or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    safe_io.atomic_write(path, lambda fh: fh.write(text.encode("ascii")), what="speech .dat file")


def make_sample(u: Utterance, program: str | None = None) -> np.ndarray:
    """The (78, frames) cochleagram of one planned utterance."""
    x = trim_silence(synthesize(LETTERS[u.label], u.voice, u.speed, u.pitch, program))
    analog = cochleagram(x)
    if analog.shape[1] == 0:
        raise SpeechToolError(f"{u.relpath}: espeak-ng produced less than one frame of audio")
    return analog


# ----------------------------------------------------------------------------------------------
# A whole stand-in


def _manifest_text(utterances: Sequence[Utterance], settings: str) -> str:
    rows = [f"{_MANIFEST_HEADER}: {settings}\n", "path\tsplit\tvoice\tletter\tspeed\tpitch\n"]
    rows += [f"{u.relpath}\t{u.split}\t{u.voice}\t{LETTERS[u.label]}\t{u.speed}\t{u.pitch}\n"
             for u in utterances]
    return "".join(rows)


def generate(out: str | os.PathLike[str], accents: Sequence[str] = ACCENTS,
             variants: Sequence[str] = VARIANTS, renditions: int = 2, test_variants: int = 4,
             seed: int = 0, limit: int | None = None,
             progress: Callable[[int, int, Utterance], None] | None = None) -> StandIn:
    """Write the stand-in of plan(...) under `out` (see the module doc); `limit` makes only the
    first samples of each split (a quick smoke set). progress(done, total, utterance) is
    called after each sample. Refuses a folder made with other arguments (its manifest)."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 samples per split, got {limit}")
    program = espeak_program()
    _lyon()
    have = available_variants(program)
    missing = [v for v in dict.fromkeys(variants) if v not in have]
    if missing:
        raise SpeechToolError(f"espeak-ng has no voice variant {missing[0]!r}; available: "
                              f"{', '.join(sorted(have))}")
    utterances = plan(accents, variants, renditions, test_variants, seed)
    if limit is not None:
        utterances = ([u for u in utterances if u.split == "train"][:limit]
                      + [u for u in utterances if u.split == "test"][:limit])
    settings = (f"accents={','.join(accents)} variants={','.join(variants)} "
                f"renditions={renditions} test_variants={test_variants} seed={seed} limit={limit} "
                f"rate={SAMPLE_RATE} ear_q={EAR_Q:g} step_factor={STEP_FACTOR:g} "
                f"decimation={DECIMATION}")
    root = Path(out)
    manifest = root / MANIFEST
    text = _manifest_text(utterances, settings)
    if manifest.exists():
        if manifest.read_text(encoding="ascii", errors="replace") != text:
            raise ValueError(f"{root} holds a stand-in made with other arguments ({manifest}); "
                             f"choose another folder or delete this one")
    else:
        _write_atomic(manifest, text)
    written = skipped = 0
    for k, u in enumerate(utterances):
        path = root / u.relpath
        if path.exists():
            skipped += 1
        else:
            _write_atomic(path, format_dat(make_sample(u, program)))
            written += 1
        if progress is not None:
            progress(k + 1, len(utterances), u)
    return StandIn(written, skipped, tuple(utterances))
