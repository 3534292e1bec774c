from __future__ import annotations

import itertools
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from service.detector import MIN_WINDOW_SECONDS, analysis_windows, detect, split_windows, window_features
from service.features import FEATURE_NAMES, hidden_state_variance, signal_features
from service.model import Encoder, create_session
from service.verdict import VoteRules
from tests.conftest import speech


@pytest.fixture(scope="module")
def encoder(tiny_artifacts: Path) -> Encoder:
    return Encoder(create_session(tiny_artifacts / "model.onnx", threads=1))


@pytest.mark.parametrize("gain", [0.1, 3.0])
@pytest.mark.parametrize("natural", [True, False])
def test_features_and_votes_do_not_change_with_loudness(
    encoder: Encoder, tiny_artifacts: Path, gain: float, natural: bool
) -> None:
    clip = speech(4.0, seed=3, natural=natural)
    assert np.max(np.abs(clip * gain)) < 1.0
    rules = VoteRules.load(tiny_artifacts / "votes.json")
    [original] = window_features(encoder, clip, 10.0)
    [scaled] = window_features(encoder, clip * gain, 10.0)
    for name in FEATURE_NAMES:
        assert scaled.features[name] == pytest.approx(original.features[name], rel=1e-3, abs=1e-6)
    assert [v.supports for v in rules.decide(scaled.features).votes] == [
        v.supports for v in rules.decide(original.features).votes
    ]


def test_features_tell_the_toy_classes_apart() -> None:
    natural = signal_features(speech(4.0, seed=11, natural=True))
    plain = signal_features(speech(4.0, seed=11, natural=False))
    assert natural != plain
    assert all(np.isfinite(list(natural.values())))


def test_hidden_state_variance_is_a_share() -> None:
    rng = np.random.default_rng(0)
    constant = np.ones((50, 8))
    assert hidden_state_variance(constant) == pytest.approx(0.0, abs=1e-9)
    assert 0.0 < hidden_state_variance(rng.standard_normal((50, 8))) <= 1.0


@pytest.mark.parametrize("seconds", [0.5, 9.9, 10.0, 10.1, 25.0, 300.0])
def test_windows_cover_the_clip_and_stay_short(seconds: float) -> None:
    samples = int(seconds * 16_000)
    windows = split_windows(samples, 10.0)
    assert windows[0][0] == 0
    assert windows[-1][1] == samples
    assert all(a == b for (_, a), (b, _) in itertools.pairwise(windows))
    assert all(end - start <= 10.0 * 16_000 for start, end in windows)
    assert len(windows) == max(1, int(np.ceil(samples / 160_000)))


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
    rules = VoteRules.load(tiny_artifacts / "votes.json")
    clip = np.tile(speech(10.0, seed=4), 30)
    tracemalloc.start()
    detection = detect(encoder, rules, clip, 10.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(detection.segments) == 30
    assert detection.seconds == pytest.approx(300.0)
    assert peak < 60 * 1024 * 1024, f"peak traced memory {peak / 1e6:.0f} MB"
