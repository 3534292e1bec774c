"""The deadline policy: wav2vec2 runs on what the budget affords, and a slow CPU still answers in time."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from service.detector.artifacts import Artifacts
from service.detector.encoder import Encoder
from service.detector.measurements import HIDDEN_MEASUREMENTS, SIGNAL_MEASUREMENTS
from service.detector.votes import VoteRules
from service.detector.windows import (
    EncoderBudget,
    EncoderPace,
    clip_features,
    detect,
    spread_order,
    window_features,
)
from service.web.settings import Settings
from tests.conftest import API_KEY, encode, payload, serving, speech


class SlowEncoder:
    """Stands in for wav2vec2 on a slow CPU: ``pace`` wall seconds per second of audio."""

    def __init__(self, pace: float) -> None:
        self.pace = pace
        self.seconds: list[float] = []

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        self.seconds.append(len(waveform) / 16_000)
        time.sleep(self.pace * self.seconds[-1])
        frames = max(2, len(waveform) // 320)
        return np.random.default_rng(len(waveform)).standard_normal((frames, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def rules(tiny_artifacts: Path) -> VoteRules:
    return Artifacts(tiny_artifacts).votes()


@pytest.mark.parametrize("count", [1, 2, 3, 6, 7, 13, 60])
def test_spread_order_covers_every_window_and_each_prefix_is_spread(count: int) -> None:
    order = spread_order(count)
    assert sorted(order) == list(range(count))
    for taken in range(2, count + 1):
        prefix = sorted(order[:taken])
        gaps = np.diff([-0.5, *prefix, count - 0.5])
        assert gaps.max() <= 3 * count / taken, (taken, prefix)


def test_slow_encoder_answers_by_the_deadline(rules: VoteRules) -> None:
    slow = SlowEncoder(pace=0.1)  # a 5 s window takes 0.5 s
    clip = speech(30.0, seed=5)
    started = time.monotonic()
    budget = EncoderBudget(deadline=started + 1.8, pace=EncoderPace(0.1))
    detection = detect(slow, rules, clip, 5.0, budget)
    assert time.monotonic() - started < 1.8
    assert len(detection.segments) == 6
    assert 0 < detection.encoded_seconds < 30.0
    encoded = [w for w, _ in detection.segments if w.encoded_seconds > 0]
    assert len(encoded) == len(slow.seconds) < 6
    skipped = [w for w, _ in detection.segments if w.encoded_seconds == 0]
    for name in HIDDEN_MEASUREMENTS:  # the encoded windows' mean stands in for the others
        assert len({w.features[name] for w in skipped}) == 1


def test_a_wrong_start_up_pace_is_replaced_by_the_first_run(rules: VoteRules) -> None:
    for hopeful in (0.01, 1.0):  # the start-up run was 20 times too fast, or 5 times too slow
        slow = SlowEncoder(pace=0.2)  # 1 s per 5 s window
        started = time.monotonic()
        budget = EncoderBudget(deadline=started + 3.0, pace=EncoderPace(hopeful))
        detect(slow, rules, speech(30.0, seed=6), 5.0, budget)
        assert time.monotonic() - started < 3.0
        assert 1 <= len(slow.seconds) <= 2  # 3 s less the reserve, at 1.25 s planned per window
        assert budget.pace is not None
        assert budget.pace.seconds_per_audio_second == pytest.approx(0.2, rel=0.1)


def test_clip_values_average_signal_over_all_windows_and_hidden_over_the_encoded() -> None:
    windows = window_features(
        SlowEncoder(pace=0.0),
        speech(20.0, seed=4),
        5.0,
        EncoderBudget(audio_seconds=10.0),
    )
    encoded = [w for w in windows if w.encoded_seconds > 0]
    assert len(windows) == 4
    assert len(encoded) == 2
    clip = clip_features(windows)
    for names, over in ((SIGNAL_MEASUREMENTS, windows), (HIDDEN_MEASUREMENTS, encoded)):
        for name in names:
            expected = np.average([w.features[name] for w in over], weights=[w.end - w.start for w in over])
            assert clip[name] == pytest.approx(expected)


def test_budget_too_small_for_a_window_still_encodes_a_shorter_piece(rules: VoteRules) -> None:
    slow = SlowEncoder(pace=1.0)
    budget = EncoderBudget(deadline=time.monotonic() + 2.0, pace=EncoderPace(1.0))
    detection = detect(slow, rules, speech(20.0, seed=7), 5.0, budget)
    assert len(slow.seconds) == 1
    assert 1.0 <= slow.seconds[0] < 5.0
    assert detection.encoded_seconds == pytest.approx(slow.seconds[0], abs=1e-3)


def test_clips_that_fit_are_analysed_exactly_as_without_a_budget(
    tiny_artifacts: Path, rules: VoteRules
) -> None:
    encoder = Encoder.load(Artifacts(tiny_artifacts).graph, threads=1)
    clip = speech(12.0, seed=8)
    unbounded = detect(encoder, rules, clip, 5.0)
    budget = EncoderBudget(deadline=time.monotonic() + 60.0, pace=EncoderPace(0.05))
    bounded = detect(encoder, rules, clip, 5.0, budget)
    assert bounded.encoded_seconds == pytest.approx(12.0)
    assert bounded.verdict == unbounded.verdict
    allowance = detect(encoder, rules, clip, 5.0, EncoderBudget(audio_seconds=4.0))
    assert allowance.encoded_seconds == pytest.approx(4.0)


def test_the_route_answers_within_the_deadline_on_a_slow_encoder(settings: Settings) -> None:
    body = payload(encode(speech(40.0, seed=9), 16_000, "FLAC"), fmt="flac")
    with serving(settings, deadline_seconds=3.0) as (client, runtime):
        runtime.detector = replace(runtime.detector, encoder=SlowEncoder(pace=0.3))
        runtime.pace = EncoderPace(0.3)
        started = time.monotonic()
        response = client.post("/api/voice-detection", json=body, headers={"x-api-key": API_KEY})
        elapsed = time.monotonic() - started
        health = client.get("/health").json()
    assert response.status_code == 200, response.text
    assert elapsed < 3.0
    segments = response.json()["segments"]
    assert len(segments) == 8
    assert 0 < sum(s["encodedSeconds"] > 0 for s in segments) < 8
    assert health["deadline_seconds"] == 3.0
    assert health["encoder_seconds_per_audio_second"] == pytest.approx(0.3, rel=0.2)
