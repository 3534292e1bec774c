from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from export import devcorpus
from export.synthetic import speech_like

RESERVED = re.compile(
    r"festival|piper|kokoro|sounds-(es|fr|it|ru)|es-co|armelle|menardi|fillets-ng-data-(cs|nl)"
)


def test_package_list_is_one_package_per_line_and_avoids_the_reserved_sets() -> None:
    packages = devcorpus.packages()
    assert {"fillets-ng-data", "pocketsphinx-testdata", "espeak-ng", "flite"} <= set(packages)
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", p) for p in packages)
    assert not [p for p in packages if RESERVED.search(p)]


def test_builder_reads_no_reserved_source() -> None:
    source = Path(devcorpus.__file__).read_text()
    code = source.split('"""', 2)[2]  # the docstring names the reserved sets; the code must not
    assert not RESERVED.search(code.lower())
    assert str(devcorpus.SOUNDS).endswith("/en")
    assert all("/en/" in p for p in devcorpus.FILLETS_GROUPS.values())


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
