from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from export import devcorpus
from export.synthetic import speech_like

# An allowlist: the sources the project may train and test with (docs/votes.md#the-dev-corpus), nothing else.
ALLOWED_PACKAGES = {
    *(
        "espeak-ng",
        "flite",
        "lame",
        "sox",
        "ffmpeg",
        "alsa-utils",
        "fillets-ng-data",
        "pocketsphinx-testdata",
        "hedgewars-data",
    ),
    # Festival's English voices only: every other language's voice is reserved
    *("festival", "festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts"),
    *("asterisk-core-sounds-en", "asterisk-core-sounds-en-wav", "asterisk-core-sounds-en-g722"),
}
ALLOWED_ROOTS = (
    "/usr/share/asterisk/sounds/en",
    "/usr/share/doc/asterisk-core-sounds-en/",
    "/usr/share/sounds/alsa",
    "/usr/share/games/fillets-ng/sound",
    "/usr/share/pocketsphinx/test/data",
    "/usr/share/games/hedgewars/Data/Sounds/voices",
)


def test_package_list_is_one_package_per_line_and_only_the_allowed_ones() -> None:
    packages = devcorpus.packages()
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", p) for p in packages)
    assert set(packages) == ALLOWED_PACKAGES


def test_builder_reads_only_the_allowed_sources() -> None:
    code = Path(devcorpus.__file__).read_text()
    paths = re.findall(r"/usr/share/[^\"'\s)]*", code)
    assert paths
    assert all(path.startswith(ALLOWED_ROOTS) for path in paths), paths
    assert all(p.split("/")[1] == "en" for p in devcorpus.FILLETS_GROUPS.values())
    assert set(devcorpus.TOOLS) == {"espeak-ng", "flite", "text2wave", "lame", "sox", "ffmpeg"}
    assert set(devcorpus.FESTIVAL_VOICES.values()) == {
        "voice_kal_diphone",
        "voice_ked_diphone",
        "voice_cmu_us_slt_arctic_hts",
    }
    other_languages = {"Russian", "Russian_pl", "Default_es", "Default_pl", "Default_ru", "Default_uk"}
    assert not {"Robot", *other_languages} & set(devcorpus.HEDGEWARS_PACKS)


@pytest.mark.parametrize("name", sorted(devcorpus.RESYNTHESISERS))
def test_resynthesis_keeps_length_and_changes_the_signal(name: str) -> None:
    pytest.importorskip("pyworld")
    pytest.importorskip("scipy")
    if name == "pitchshift" and shutil.which("sox") is None:
        pytest.skip("needs sox")
    clip = speech_like(1.5, seed=3, natural=True).astype(np.float64)
    out = devcorpus.RESYNTHESISERS[name](clip, random.Random(0))
    slack = (
        0.12 * len(clip) if name == "pitchshift" else 320
    )  # pitchshift also changes the tempo by up to 10 %
    assert abs(len(out) - len(clip)) <= slack
    assert np.all(np.isfinite(out))
    assert np.std(out) > 1e-3
    n = min(len(out), len(clip))
    assert np.corrcoef(out[:n], clip[:n])[0, 1] < 0.99


def test_noise_channel_has_the_drawn_snr(tmp_path: Path) -> None:
    clip = speech_like(2.0, seed=4, natural=True).astype(np.float64)
    noisy = devcorpus.channel(clip, "noise", tmp_path, random.Random(1))
    snr = 10 * np.log10(np.mean(clip**2) / np.mean((noisy - clip) ** 2))
    assert 10 <= snr <= 30


@pytest.mark.skipif(
    shutil.which("sox") is None or shutil.which("ffmpeg") is None, reason="needs sox and ffmpeg"
)
@pytest.mark.parametrize("name", ["band8k", "gsm", "ulaw"])
def test_telephone_channels_remove_the_upper_band(name: str, tmp_path: Path) -> None:
    clip = np.random.default_rng(0).standard_normal(16_000) * 0.1
    out = devcorpus.channel(clip, name, tmp_path, random.Random(0))
    power = np.abs(np.fft.rfft(out)) ** 2
    hz = np.fft.rfftfreq(len(out), 1 / 16_000)
    assert power[hz > 4_200].sum() < 0.01 * power[hz < 3_400].sum()


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_skipped_clips_are_counted_with_their_reason(tmp_path: Path) -> None:
    import soundfile as sf

    sources = {"short": np.full(4_000, 0.1), "silent": np.zeros(32_000), "long": speech_like(13.0, 1, True)}
    reasons = {}
    for name, audio in sources.items():
        sf.write(tmp_path / f"{name}.wav", audio, 16_000)
        item = devcorpus.Item("g", "HUMAN", "human", name, "English", ("file", str(tmp_path / f"{name}.wav")))
        reasons[name] = devcorpus.render(item, tmp_path, tmp_path)
    broken = devcorpus.Item("g", "HUMAN", "human", "x", "", ("file", str(tmp_path / "missing.wav")))
    assert reasons == {"short": "shorter than 0.8 s", "silent": "silent", "long": "longer than 12.0 s"}
    assert str(devcorpus.render(broken, tmp_path, tmp_path)).startswith("file failed: ffmpeg")
    assert not list(tmp_path.glob("g/*.flac"))
