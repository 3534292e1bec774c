"""The hand-off from export to service: the artifacts folder, its manifest and its votes."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from service.detector.votes import VoteRules, VotesFileError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
WEIGHT_KINDS = ("pretrained", "random-init")  # ModelOrigin.kind, and every verdict's "weights"


class ArtifactsError(RuntimeError):
    """The artifacts folder cannot be served; the message says how to make it."""


@dataclass(frozen=True)
class GraphInfo:
    file: str
    sha256: str
    bytes: int
    opset: int
    inputs: dict[str, list[str | int]]
    outputs: dict[str, list[str | int]]
    op_counts: dict[str, int]


@dataclass(frozen=True)
class ModelOrigin:
    """Where the weights came from: the pretrained model at a revision, or random init."""

    kind: str  # one of WEIGHT_KINDS
    model_id: str | None = None
    revision: str | None = None
    architecture: str | None = None
    seed: int | None = None
    layers: int | None = None  # transformer layers the graph keeps (None: every one, older manifests)
    warning: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in WEIGHT_KINDS:
            raise ValueError(f"source.kind must be {' or '.join(WEIGHT_KINDS)}, not {self.kind!r}")

    @property
    def random_weights(self) -> bool:
        return self.kind == "random-init"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Manifest:
    """manifest.json: where the graph came from, how it was made, and how faithful it is."""

    graph: GraphInfo
    source: ModelOrigin
    quantization: dict[str, Any] = field(default_factory=dict)
    fidelity: dict[str, Any] = field(default_factory=dict)
    latency_5s: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "source": self.source.to_json()}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Manifest:
        graph, source = GraphInfo(**raw["graph"]), _known(ModelOrigin, raw["source"])
        return _known(cls, {**raw, "graph": graph, "source": source})


@dataclass(frozen=True)
class Artifacts:
    """The folder export writes and the service loads: the graph, its manifest, its votes."""

    folder: Path

    @property
    def graph(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def manifest_file(self) -> Path:
        return self.folder / "manifest.json"

    @property
    def votes_file(self) -> Path:
        return self.folder / "votes.json"

    @property
    def files(self) -> tuple[Path, Path, Path]:
        return self.graph, self.manifest_file, self.votes_file

    def check_complete(self) -> None:
        for path in self.files:
            if not path.is_file():
                raise ArtifactsError(
                    f"{path} is missing: create the artifacts with `voicecheck export --out {self.folder}` "
                    "(add --random-init base when the model hub is unreachable)"
                )

    def manifest(self) -> Manifest:
        try:
            return Manifest.from_json(json.loads(self.manifest_file.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArtifactsError(f"{self.manifest_file}: not a usable manifest ({exc})") from exc

    def votes(self) -> VoteRules:
        return VoteRules.load(self.votes_file)

    def load(self) -> tuple[Manifest, VoteRules]:
        """The manifest and the votes, checked to belong to this graph."""
        self.check_complete()
        manifest = self.manifest()
        try:
            rules = self.votes()
        except VotesFileError as exc:
            raise ArtifactsError(str(exc)) from exc
        learned, served = rules.provenance.layers, manifest.source.layers
        if learned is not None and learned != served:
            raise ArtifactsError(
                f"{self.votes_file} was learned on wav2vec2 layer {learned} but {self.graph} ends at layer "
                f"{served or 'the last'}: re-run voicecheck calibrate (or export with --layers {learned})"
            )
        if rules.provenance.graph_sha256 != manifest.graph.sha256:
            raise ArtifactsError(
                f"{self.votes_file} was learned for another graph: re-run voicecheck calibrate "
                f"(or voicecheck export) so the votes match {self.graph}"
            )
        return manifest, rules

    def write(self, manifest: Manifest, rules: VoteRules) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.manifest_file.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
        rules.save(self.votes_file)

    def move_to(self, destination: Artifacts) -> None:
        """Put every file in place, the graph first, once all three are written."""
        for source, target in zip(self.files, destination.files, strict=True):
            shutil.move(source, target)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _known(cls: type[T], raw: dict[str, Any]) -> T:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in names})
