from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from service.detector.artifacts import Artifacts
from service.detector.encoder import Encoder
from service.detector.features import hidden_variance_measurements, telephone_band
from service.detector.measurements import MEASUREMENTS, VOTES, signal_measurements
from service.detector.windows import MIN_WINDOW_SECONDS, analysis_windows, detect, window_features
from tests.conftest import speech


@pytest.fixture(scope="module")
def encoder(tiny_artifacts: Path) -> Encoder:
    return Encoder.load(Artifacts(tiny_artifacts).graph, threads=1)


@pytest.mark.parametrize("gain", [0.1, 3.0])
@pytest.mark.parametrize("natural", [True, False])
def test_features_and_votes_do_not_change_with_loudness(
    encoder: Encoder, tiny_artifacts: Path, gain: float, natural: bool
) -> None:
    clip = speech(4.0, seed=3, natural=natural)
    assert np.max(np.abs(clip * gain)) < 1.0
    rules = Artifacts(tiny_artifacts).votes()
    [original] = window_features(encoder, clip, 10.0)
    [scaled] = window_features(encoder, clip * gain, 10.0)
    assert set(original.features) == set(MEASUREMENTS)
    for name in MEASUREMENTS:
        assert scaled.features[name] == pytest.approx(original.features[name], rel=1e-3, abs=1e-4), name
    assert [v.supports for v in rules.decide(scaled.features).votes] == [
        v.supports for v in rules.decide(original.features).votes
    ]


def test_measurements_tell_the_toy_classes_apart() -> None:
    natural = signal_measurements(speech(4.0, seed=11, natural=True))
    plain = signal_measurements(speech(4.0, seed=11, natural=False))
    assert all(np.isfinite(list(natural.values())))
    assert natural["jitter"] > plain["jitter"]  # the toy "people" wobble in pitch, plain synthesis does not
    assert natural["aperiodicity"] > plain["aperiodicity"]  # and breathe noise into the voice


def test_registry_computes_exactly_its_measurements() -> None:
    computed = signal_measurements(speech(2.0, seed=2))
    computed.update(hidden_variance_measurements(np.random.default_rng(0).standard_normal((99, 16))))
    assert list(computed) == list(MEASUREMENTS)
    assert len(set(MEASUREMENTS)) == len(MEASUREMENTS)
    assert [v.name for v in VOTES] == [
        "audio_energy",
        "audio_variance",
        "zero_crossing_rate",
        "temporal_variation",
        "hidden_state_variance",
    ]


def test_measurements_ignore_content_above_the_telephone_band() -> None:
    """Bandwidth must not tell the classes apart: 8 kHz channels and 16 kHz ones look alike."""
    clip = speech(3.0, seed=5).astype(np.float64)
    spectrum = np.fft.rfft(np.random.default_rng(1).standard_normal(len(clip)) * 0.05)
    spectrum[np.fft.rfftfreq(len(clip), 1 / 16_000) < 4_000] = 0
    high_hiss = np.fft.irfft(spectrum, n=len(clip))  # only content above 4 kHz
    assert np.allclose(telephone_band(high_hiss), 0.0, atol=1e-9)
    before, after = signal_measurements(clip), signal_measurements(clip + high_hiss)
    for name, value in before.items():
        assert after[name] == pytest.approx(value, rel=0.05, abs=0.05), name


def test_hidden_measurements_are_order_free_shares() -> None:
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((50, 8)) + rng.standard_normal(8)
    shuffled = hidden[:, rng.permutation(8)]
    assert hidden_variance_measurements(shuffled) == pytest.approx(hidden_variance_measurements(hidden))
    constant = hidden_variance_measurements(np.ones((50, 8)))
    assert constant["hidden_variance_share"] == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < hidden_variance_measurements(hidden)["hidden_variance_share"] <= 1.0
    assert hidden_variance_measurements(hidden * 7.0) == pytest.approx(hidden_variance_measurements(hidden))


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.5, [(0.0, 0.5)]),
        (4.0, [(0.0, 4.0)]),
        (5.0, [(0.0, 5.0)]),
        (5.3, [(0.0, 5.0)]),  # a remainder under half a second is left out
        (5.5, [(0.0, 5.0), (5.0, 5.5)]),
        (12.0, [(0.0, 5.0), (5.0, 10.0), (10.0, 12.0)]),
    ],
)
def test_analysis_windows_are_fixed_length_from_the_start(
    seconds: float, expected: list[tuple[float, float]]
) -> None:
    windows = analysis_windows(int(seconds * 16_000), 5.0)
    assert [(a / 16_000, b / 16_000) for a, b in windows] == expected
    assert all(b - a >= MIN_WINDOW_SECONDS * 16_000 for a, b in windows)


def test_five_minute_clip_uses_bounded_memory(encoder: Encoder, tiny_artifacts: Path) -> None:
    rules = Artifacts(tiny_artifacts).votes()
    clip = np.tile(speech(10.0, seed=4), 30)
    tracemalloc.start()
    detection = detect(encoder, rules, clip, 10.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(detection.segments) == 30
    assert detection.seconds == pytest.approx(300.0)
    assert peak < 60 * 1024 * 1024, f"peak traced memory {peak / 1e6:.0f} MB"


def test_readme_describes_every_vote_of_the_registry() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("## How it decides") : readme.index("## Export")]
    for spec in VOTES:
        assert f"| {spec.label.removeprefix('wav2vec2 ')} |" in section, spec.label


def _vowel(seconds: float, f0: np.ndarray | float, breath: float, seed: int = 0) -> np.ndarray:
    """A sustained vowel: harmonics of ``f0`` (per sample, or fixed) plus ``breath`` noise."""
    n = int(seconds * 16_000)
    f0 = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f0) / 16_000
    voice = sum(np.sin(k * phase) / k for k in range(1, 30))
    noise = np.random.default_rng(seed).standard_normal(n)
    return np.asarray(voice / np.std(voice) + breath * noise, dtype=np.float64)


def test_pulse_excitation_stays_periodic_in_the_upper_band_where_breath_does_not() -> None:
    buzzy = signal_measurements(_vowel(2.0, 120.0, breath=0.0))
    breathy = signal_measurements(_vowel(2.0, 120.0, breath=0.3))
    assert buzzy["upper_band_periodicity"] > 0.9
    assert breathy["upper_band_periodicity"] < buzzy["upper_band_periodicity"] - 0.2


def test_pitch_resets_count_as_jumps_and_a_glide_does_not() -> None:
    n = 32_000
    glide = np.linspace(110.0, 150.0, n)
    steps = np.where((np.arange(n) // 1_600) % 2 == 0, 110.0, 135.0)  # a reset every 100 ms
    smooth = signal_measurements(_vowel(2.0, glide, breath=0.01))["pitch_jump_share"]
    reset = signal_measurements(_vowel(2.0, steps, breath=0.01))["pitch_jump_share"]
    assert smooth < 0.02
    assert reset > smooth + 0.04


def test_a_stationary_tone_shows_as_a_tonal_line() -> None:
    """A person's moving pitch smears its harmonics; a steady tone (an upsampling trace) does not."""
    vowel = _vowel(2.0, 110.0 + 30.0 * np.sin(np.linspace(0, 6 * np.pi, 32_000)), breath=0.1)
    tone = 0.3 * np.sin(2 * np.pi * 2_756.0 * np.arange(len(vowel)) / 16_000)
    assert (
        signal_measurements(vowel + tone)["tonal_lines_db"]
        > signal_measurements(vowel)["tonal_lines_db"] + 6.0
    )
