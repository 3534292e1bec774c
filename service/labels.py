"""The contract's two classes and a labelled folder's ``labels.csv`` (path,label,group and
optionally language,family); a leaf module every room may import, so the corpus builder needs
nothing else of service."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

AI = "AI_GENERATED"
HUMAN = "HUMAN"
LABELS = (AI, HUMAN)


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    group: str
    language: str
    family: str = ""  # generator kind ("human", "espeak", "world", ...); the group when not given


def read_labels(data_dir: Path) -> list[Clip]:
    path = data_dir / "labels.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    clips = [
        Clip(data_dir / r["path"], r["label"], r["group"], r.get("language") or "", r.get("family") or "")
        for r in rows
    ]
    bad = sorted({c.label for c in clips} - set(LABELS))
    if bad:
        raise ValueError(f"{path}: labels must be {' or '.join(LABELS)}; found {bad}")
    if not clips:
        raise ValueError(f"{path} lists no clips")
    return clips
