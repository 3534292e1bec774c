from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soxr

from export import calibrate, evaluate
from export.calibrate import fit_logistic, group_folds, leave_one_group_out, sample_weights
from export.corpus import FeatureTable, compute_features
from export.robustness import PERTURBATIONS, mp3_32k
from export.synthetic import speech_like
from service.detector.artifacts import Artifacts
from service.detector.encoder import Encoder
from service.detector.measurements import MEASUREMENTS, VOTES
from service.detector.scoring import (
    balanced_accuracy,
    equal_error_rate,
    expected_calibration_error,
    roc_auc,
    tiered_score,
)
from service.detector.windows import clip_features, window_features
from service.labels import AI, read_labels
from service.web.settings import Settings
from tests.conftest import encode, make_client, with_foreign_votes


def telephone_band(clip: np.ndarray) -> np.ndarray:
    """The dev corpus's chain: through 8 kHz and back, so nothing above 4 kHz."""
    return np.asarray(soxr.resample(soxr.resample(clip, 16_000, 8_000), 8_000, 16_000), dtype=np.float32)


GROUPS = {"human-a": False, "human-b": False, "ai-a": True, "ai-b": True, "ai-c": True}


@pytest.fixture(scope="module")
def toy_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Toy 'voices': natural-style synthetic speech as HUMAN, plain synthesis as AI, MP3 and FLAC."""
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    for g, (group, is_ai) in enumerate(GROUPS.items()):
        (root / group).mkdir()
        for i in range(6):
            clip = telephone_band(speech_like(2.5, seed=1000 * g + i, natural=not is_ai))
            name = f"{group}/{i}.{'mp3' if i % 2 else 'flac'}"
            (root / name).write_bytes(encode(clip, 16_000, "MP3" if i % 2 else "FLAC"))
            rows.append(
                {
                    "path": name,
                    "label": "AI_GENERATED" if is_ai else "HUMAN",
                    "group": group,
                    "language": "English",
                }
            )
    with (root / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "group", "language"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def calibrated(exported_artifacts: Path, toy_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calibrated")
    for source, target in zip(Artifacts(exported_artifacts).files, Artifacts(folder).files, strict=True):
        shutil.copy(source, target)
    assert calibrate.main([str(toy_corpus), "--artifacts", str(folder), "--threads", "1"]) == 0
    return folder


def test_calibrate_writes_calibrated_votes_with_provenance(
    calibrated: Path, exported_artifacts: Path
) -> None:
    votes = json.loads(Artifacts(calibrated).votes_file.read_text())
    manifest = Artifacts(exported_artifacts).manifest()
    assert votes["calibrated"] is True
    provenance = votes["provenance"]
    assert provenance["graph_sha256"] == manifest.graph.sha256
    assert provenance["corpus"]["clips"] == 30
    assert provenance["corpus"]["groups"]["AI_GENERATED:ai-a"] == 6
    metrics = provenance["cross_validated"]
    for key in (
        "balanced_accuracy",
        "eer",
        "roc_auc",
        "ece",
        "tiered_score",
        "confusion",
        "per_group_accuracy",
    ):
        assert key in metrics
    assert metrics["scheme"] == "leave-one-group-out"
    assert set(metrics["per_group_accuracy"]) == set(GROUPS)
    assert metrics["worst_group"]["accuracy"] == min(metrics["per_group_accuracy"].values())
    assert [vote["name"] for vote in votes["votes"]] == [spec.name for spec in VOTES]
    assert votes["combine"]["slope"] >= 0.0


def test_service_serves_calibrated_votes(calibrated: Path, settings: Settings) -> None:
    with make_client(settings, artifacts_dir=calibrated) as client:
        health = client.get("/health").json()
    assert health["votes"]["calibrated"] is True
    assert health["votes"]["cross_validated"]["clips"] == 30
    assert health["votes"]["window_seconds"] == health["window_seconds"] == settings.window_seconds


def test_evaluate_reports_every_metric(calibrated: Path, toy_corpus: Path, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    args = [str(toy_corpus), "--artifacts", str(calibrated), "--report", str(report_path), "--threads", "1"]
    args += ["--robustness", "5"]
    assert evaluate.main(args) == 0
    report = json.loads(report_path.read_text())
    for key in (
        "accuracy",
        "balanced_accuracy",
        "eer",
        "roc_auc",
        "ece",
        "tiered_score",
        "per_group_accuracy",
    ):
        assert key in report
    assert report["clips"] == 30
    assert sum(sum(row.values()) for row in report["confusion"].values()) == 30
    assert 0.0 <= report["tiered_score"] <= report["accuracy"] <= 1.0
    assert report["votes_calibrated"] is True
    assert set(report["leave_one_group_out"]["per_group_accuracy"]) == set(GROUPS)
    transfer = report["generator_transfer"]
    assert transfer["families"] == ["ai-a", "ai-b", "ai-c"]  # no family column: one family per group
    assert set(transfer["trained_without_family"]["ai-a"]) == {"human", "ai-a"}
    assert set(transfer["trained_on_one_family"]["ai-a"]) == {"human", "ai-b", "ai-c"}
    robustness = report["robustness"]
    assert robustness["clips"] == 5
    assert set(robustness["verdict_flip_rate"]) == {
        "-20 dB",
        "+6 dB",
        "20 dB SNR white noise",
        "32 kbit/s MP3",
        "8 kHz telephone band",
    }
    assert robustness["verdict_flip_rate"]["-20 dB"] == 0.0


@pytest.mark.parametrize("name", PERTURBATIONS)
def test_level_noise_and_recoding_move_each_vote_little(calibrated: Path, name: str) -> None:
    """Gains change no measurement at all; noise and re-encoding move each signal vote's
    standardised measurements by under one spread on average. The hidden-state vote is left out
    of the noise bound: here it comes from a tiny random-init network, whose robustness says
    nothing about the pretrained model's."""
    rules = Artifacts(calibrated).votes()
    encoder = Encoder.load(Artifacts(calibrated).graph, threads=1)
    rng = np.random.default_rng(0)
    for seed, natural in ((5001, True), (5002, False), (5003, True), (5004, False)):
        clip = telephone_band(speech_like(4.0, seed=seed, natural=natural))
        altered = PERTURBATIONS[name](clip, rng)
        assert np.max(np.abs(altered)) < 1.0

        before = clip_features(window_features(encoder, clip, 10.0))
        after = clip_features(window_features(encoder, altered, 10.0))
        if name.endswith("dB"):
            assert after == pytest.approx(before, rel=1e-3, abs=1e-4)
            assert rules.decide(after).classification == rules.decide(before).classification
            continue
        for model in rules.models:
            if model.name == "hidden_state_variance":
                continue
            shifts = [
                abs(after[m] - before[m]) / s for m, s in zip(model.measurements, model.scale, strict=True)
            ]
            assert np.mean(shifts) < 1.0, (
                f"{name} moved {model.name} by {np.mean(shifts):.2f} spreads ({seed})"
            )


def test_recoding_is_about_32_kbit_per_second() -> None:
    clip = speech_like(4.0, seed=1, natural=True)
    assert 28 < len(mp3_32k(clip)) * 8 / 4.0 / 1000 < 40


def test_logistic_fit_finds_the_side_and_shrinks_with_the_penalty() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((400, 2))
    y = (z[:, 0] - 0.5 * z[:, 1] + 0.3 * rng.standard_normal(400) > 0).astype(float)
    w = np.full(400, 1 / 400)
    weights, _ = fit_logistic(z, y, w, l2=0.01)
    assert weights[0] > 0 > weights[1]
    strong, _ = fit_logistic(z, y, w, l2=10.0)
    assert np.linalg.norm(strong) < 0.2 * np.linalg.norm(weights)


def test_sample_weights_give_every_group_and_class_the_same_say() -> None:
    groups = ["h-big"] * 90 + ["h-small"] * 10 + ["ai-a"] * 30 + ["ai-b"] * 20 + ["ai-c"] * 10
    is_ai = np.array([g.startswith("ai") for g in groups])
    w = sample_weights(is_ai, groups)
    labels = np.array(groups)
    assert w.sum() == pytest.approx(1.0)
    assert w[labels == "h-big"].sum() == pytest.approx(0.25)
    assert w[labels == "h-small"].sum() == pytest.approx(0.25)
    assert w[labels == "ai-c"].sum() == pytest.approx(1 / 6)


def test_folds_keep_groups_whole() -> None:
    groups = [f"ai-{i}" for i in range(10) for _ in range(3)] + [
        f"human-{i}" for i in range(6) for _ in range(4)
    ]
    is_ai = np.array([g.startswith("ai") for g in groups])
    folds = group_folds(groups, is_ai, 5)
    for group in set(groups):
        assert len({folds[i] for i, g in enumerate(groups) if g == group}) == 1
    assert len(set(folds[is_ai])) == 5
    assert len(set(folds[~is_ai])) == 5


def test_vectorised_prediction_is_the_services_decision(calibrated: Path, toy_corpus: Path) -> None:
    rules = Artifacts(calibrated).votes()
    encoder = Encoder.load(Artifacts(calibrated).graph, threads=1)
    table = compute_features(read_labels(toy_corpus), encoder, 5.0)
    ai_probability, predicted_ai = rules.predict(table.values)
    for i in range(len(table.clips)):
        verdict = rules.decide(table.row(i))
        assert (verdict.classification == AI) == predicted_ai[i]
        assert verdict.ai_probability == ai_probability[i]  # the same arithmetic, to the bit


def test_leave_one_group_out_never_sees_the_group_it_scores() -> None:
    """A group whose measurements are the mirror image of its class's other groups is scored as the
    other class: the votes that score it were fitted without it."""
    rng = np.random.default_rng(0)
    rows, groups, labels = [], [], []
    for g in range(8):
        is_ai = g % 2 == 0
        sign = 1.0 if is_ai else -1.0
        if g == 0:
            sign = -1.0  # the odd one out: an AI group that looks human
        for _ in range(10):
            rows.append(sign + 0.3 * rng.standard_normal(len(MEASUREMENTS)))
            groups.append(f"g{g}")
            labels.append(is_ai)
    from service.labels import Clip

    clips = tuple(
        Clip(Path(f"{i}.wav"), "AI_GENERATED" if a else "HUMAN", g, "")
        for i, (g, a) in enumerate(zip(groups, labels, strict=True))
    )
    table = FeatureTable(clips, np.array(rows))
    _, predicted_ai = leave_one_group_out(table)
    assert not predicted_ai[:10].any()  # g0 is called human: nothing learnt from g0 itself
    assert predicted_ai[20:30].all()
    assert not predicted_ai[10:20].any()
    assert len(VOTES) == 5


def test_metrics_on_known_cases() -> None:
    truth = np.array([True, True, False, False])
    assert roc_auc(truth, np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    assert roc_auc(truth, np.array([0.1, 0.2, 0.8, 0.9])) == 0.0
    assert roc_auc(truth, np.full(4, 0.5)) == 0.5
    assert equal_error_rate(truth, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert balanced_accuracy(truth, np.array([True, False, False, False])) == 0.75
    correct = np.array([True, True, True, False])
    assert tiered_score(correct, np.array([0.9, 0.7, 0.45, 0.99])) == pytest.approx((1 + 0.75 + 0.5 + 0) / 4)
    assert expected_calibration_error(np.array([True, False]), np.array([0.5, 0.5])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([True, True]), np.array([0.6, 0.6])) == pytest.approx(0.4)


def test_serving_with_another_window_than_calibrated_warns(
    calibrated: Path, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="voicecheck")
    with make_client(settings, artifacts_dir=calibrated, window_seconds=settings.window_seconds * 2):
        pass
    assert "recalibrate or match it" in caplog.text


def test_people_set_each_votes_threshold_at_the_worst_held_out_groups_specificity() -> None:
    rng = np.random.default_rng(0)
    easy, hard = rng.uniform(-3, -1, (40, 2)), rng.uniform(-1, 1, (40, 2))
    machines = rng.uniform(5, 9, (40, 2))
    logits = np.vstack([easy, hard, machines])
    groups = ["human-easy"] * 40 + ["human-hard"] * 40 + ["ai"] * 40
    is_ai = np.array([g == "ai" for g in groups])
    thresholds = calibrate.people_thresholds(logits, is_ai, groups, specificity=0.85)
    assert np.mean(hard <= thresholds, axis=0) == pytest.approx([0.85, 0.85], abs=0.03)
    assert np.all(easy < thresholds)
    louder = np.vstack([easy, hard, machines * 10])  # the machines' scores do not move it
    assert calibrate.people_thresholds(louder, is_ai, groups, 0.85) == pytest.approx(thresholds)


def test_cache_keeps_the_hidden_measurements_when_only_signal_ones_change(
    calibrated: Path, toy_corpus: Path, tmp_path: Path
) -> None:
    encoder = Encoder.load(Artifacts(calibrated).graph, threads=1)
    calls = []

    def counting(waveform: np.ndarray) -> np.ndarray:
        calls.append(len(waveform))
        return encoder(waveform)

    clips, cache = read_labels(toy_corpus), tmp_path / "measurements.npz"
    first = compute_features(clips, counting, 5.0, cache=cache)
    encoded = len(calls)
    stored = dict(np.load(cache))
    stored["names"] = np.array([f"old_{n}" if n == MEASUREMENTS[0] else n for n in stored["names"]])
    stored["values"][:, 0] = np.nan  # a signal measurement that changed since
    np.savez(cache, **stored)
    again = compute_features(clips, counting, 5.0, cache=cache)
    assert encoded > 0
    assert len(calls) == encoded  # no wav2vec2 pass the second time
    np.testing.assert_allclose(again.values, first.values, rtol=1e-9)
    assert list(np.load(cache)["names"]) == list(MEASUREMENTS)


def test_evaluate_refuses_votes_of_another_graph_in_one_line(tiny_artifacts: Path, tmp_path: Path) -> None:
    folder = with_foreign_votes(tiny_artifacts, tmp_path / "mixed")
    command = [sys.executable, "-m", "export.evaluate", str(tmp_path), "--artifacts", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("evaluate: ")
    assert "learned for another graph" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
