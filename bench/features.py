"""Time the vote measurements of one 5 s window (fastest and median of 30 runs, milliseconds).

    python bench/features.py
    git show 069fa04:service/features.py > /tmp/old_features.py
    python bench/features.py --baseline /tmp/old_features.py   # the single-number features before
    python bench/features.py --artifacts /tmp/det-art   # and the encoder on the same window: the share

The hidden-state statistics run on a 249 x 768 array (a 5 s window's last hidden state).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import times_ms
from export.synthetic import speech_like
from service.detector.artifacts import Artifacts
from service.detector.encoder import Encoder
from service.detector.measurements import hidden_measurements, signal_measurements


def fastest_and_median(run: Callable[[], object], repeats: int = 30) -> tuple[float, float]:
    times = times_ms(run, repeats)
    return min(times), float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline", type=Path, help="a features.py with signal_features, hidden_state_variance"
    )
    parser.add_argument("--artifacts", type=Path, help="also time this graph's encoder on the window")
    args = parser.parse_args()
    clip = speech_like(5.0, 1, True)
    hidden = np.random.default_rng(0).standard_normal((249, 768)).astype(np.float32)
    fast, median = fastest_and_median(lambda: (signal_measurements(clip), hidden_measurements(hidden)))
    print(f"five vote families: {fast:.1f} ms fastest, {median:.1f} ms median")
    if args.artifacts:
        encoder = Encoder.load(Artifacts(args.artifacts).graph, threads=2)
        encode_fast, encode_median = fastest_and_median(lambda: encoder(clip), repeats=5)
        print(
            f"encoder, same window: {encode_fast:.1f} ms fastest, {encode_median:.1f} ms median; "
            f"measurements {fast / (fast + encode_fast):.1%} of both (fastest)"
        )
    if args.baseline:
        spec = importlib.util.spec_from_file_location("baseline_features", args.baseline)
        assert spec is not None
        assert spec.loader is not None
        old = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        fast, median = fastest_and_median(
            lambda: (old.signal_features(clip), old.hidden_state_variance(hidden))
        )
        print(f"baseline features:  {fast:.1f} ms fastest, {median:.1f} ms median")


if __name__ == "__main__":
    main()
