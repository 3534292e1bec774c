"""``voicecheck``: one command for serving, scanning, streaming, and the export steps."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from service.detector.windows import DEFAULT_WINDOW_SECONDS
from service.web.settings import artifacts_dir

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Options = TypeVar("Options", bound="DataclassInstance")
# Subcommands whose own parsers (and --help) live in export/; they need the [export] extra for export.
DELEGATED = {
    "export": ("export.__main__", "export the INT8 graph, manifest and provisional votes"),
    "calibrate": ("export.calibrate", "learn the votes from a labelled folder (labels.csv)"),
    "evaluate": ("export.evaluate", "measure the votes on a labelled folder"),
    "layers": (
        "export.layerscan",
        "score the hidden-state vote on every wav2vec2 layer of a labelled folder",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicecheck", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "serve",
        help="run the HTTP and WebSocket service",
        description="Run the service with uvicorn. Every setting comes from the environment "
        "(API_KEY, ARTIFACTS_DIR, HOST, PORT, ...; see the README's configuration table).",
    )
    _add_scan(commands)
    _add_stream(commands)
    for name, (_, text) in DELEGATED.items():
        commands.add_parser(name, help=text, add_help=False)
    return parser


def _add_scan(commands: Any) -> None:
    scan = commands.add_parser(
        "scan",
        help="classify files and folders (here, or on a Ray cluster), one line per file",
        description="Run the detector on audio files and folders (recursively: .mp3 .wav .flac .ogg). "
        "Resumable: files already in --out (by resolved path) are skipped; one scan at a time "
        "per --out. Lines carry the JSON route's fields plus file, seconds and weights.",
    )
    scan.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="audio files or folders; with --engine ray also URIs pyarrow reads (s3://, gs://, hdfs://, file://)",
    )
    scan.add_argument("--out", type=Path, required=True, help="results.jsonl or results.csv (appended to)")
    scan.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (with --engine ray: actors), one session each (default 1)",
    )
    scan.add_argument(
        "--artifacts",
        type=Path,
        default=artifacts_dir(),
        help="folder with model.onnx (default: $ARTIFACTS_DIR, else ./artifacts)",
    )
    scan.add_argument("--language", default="English", help="language reported on each line")
    scan.add_argument(
        "--threads",
        type=int,
        default=0,
        help="onnxruntime threads per worker or actor (0: cores/workers here, 1 per actor on Ray)",
    )
    scan.add_argument(
        "--window-seconds", type=float, default=DEFAULT_WINDOW_SECONDS, help="analysis window (2-30)"
    )
    scan.add_argument("--max-seconds", type=float, default=3600.0, help="longest file analysed (1-3600)")
    scan.add_argument("--labels", type=Path, default=None, help="a labels.csv: also print evaluation metrics")
    scan.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    scan.add_argument(
        "--engine",
        default="local",
        help="local: worker processes on this machine (default); ray: an actor pool on a Ray cluster "
        "(the cluster extra; docs/scale.md)",
    )
    scan.add_argument(
        "--ray-address",
        default=None,
        help="with --engine ray: the cluster, as ray.init takes it (default: $RAY_ADDRESS, a running "
        "local Ray, or a new local one)",
    )


def _add_stream(commands: Any) -> None:
    stream = commands.add_parser(
        "stream",
        help="play a file to the live-stream route and print its segments",
        description="Send FILE's decoded samples to the WebSocket route in real time (or faster). "
        "With no flags it finds the service scripts/serve starts: the key from API_KEY or the key "
        "file, the port from PORT.",
    )
    stream.add_argument("file", type=Path, metavar="FILE", help="an MP3, WAV, FLAC or OGG file")
    stream.add_argument(
        "--url",
        default=None,
        help="the service: ws://, wss://, http:// or https:// URL, or HOST:PORT "
        "(default ws://127.0.0.1:$PORT, PORT defaulting to 8000)",
    )
    stream.add_argument(
        "--key",
        default=None,
        help="API key (default: $API_KEY, else the key file scripts/serve writes: $API_KEY_FILE "
        "or ~/.config/voicecheck/api-key)",
    )
    stream.add_argument("--language", default="English")
    stream.add_argument(
        "--speed", type=float, default=1.0, help="1 = real time, 4 = four times faster, 0 = no pause"
    )
    stream.add_argument(
        "--frame-ms", type=float, default=100.0, help="audio per frame, 1-500 (default 100 ms)"
    )
    stream.add_argument("--key-in-message", action="store_true", help="send the key in the start message")
    stream.add_argument("--json", action="store_true", help="print every message as JSON")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in DELEGATED:
        return _delegate(args_list[0], args_list[1:])
    args = build_parser().parse_args(args_list)
    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": _serve,
        "scan": _scan,
        "stream": _stream,
    }
    return handlers[args.command](args)


def _delegate(name: str, argv: list[str]) -> int:
    import importlib

    try:
        module = importlib.import_module(DELEGATED[name][0])
    except ImportError as exc:
        print(f"voicecheck {name}: {exc}; install the export extra: pip install '.[export]'", file=sys.stderr)
        return 2
    result: int = module.main(argv)
    return result


def options_from(cls: type[Options], args: argparse.Namespace, **given: Any) -> Options:
    """The dataclass ``cls`` from the parsed arguments of the same names, and ``given``."""
    names = {f.name for f in fields(cls)} - set(given)
    return cls(**{name: getattr(args, name) for name in names if hasattr(args, name)}, **given)


def _serve(args: argparse.Namespace) -> int:
    from service.__main__ import main as serve

    return serve()


def _scan(args: argparse.Namespace) -> int:
    from service.cli.scan import (
        ScanError,
        ScanOptions,
        is_uri,
        label_metrics,
        metrics_table,
        scan,
        summary_table,
    )

    uris = tuple(path for path in args.paths if is_uri(path))
    paths = tuple(Path(path) for path in args.paths if not is_uri(path))
    options = options_from(ScanOptions, args, paths=paths, uris=uris, progress=not args.no_progress)
    try:
        report = scan(options)
        print(summary_table(report))
        if args.labels:
            print()
            print(metrics_table(label_metrics(report, args.labels)))
    except (ScanError, ValueError) as exc:
        print(f"voicecheck scan: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nvoicecheck scan: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 0


def _stream(args: argparse.Namespace) -> int:
    from service.cli.stream_client import ClientFailure, StreamOptions, client_key, load_pcm, play, stream_url
    from service.detector.audio import quiet_decoder_notes

    if args.speed < 0 or not 1.0 <= args.frame_ms <= 500.0:
        print("voicecheck stream: --speed must be >= 0 and --frame-ms 1-500", file=sys.stderr)
        return 2
    try:
        url, key = stream_url(args.url, os.environ), client_key(args.key, os.environ)
        quiet_decoder_notes()  # C-level stderr from here on passes a filter thread (detector/audio.py)
        pcm, rate = load_pcm(args.file)
    except (ClientFailure, OSError) as exc:
        print(f"voicecheck stream: {_one_line(exc)}", file=sys.stderr)
        return 2
    options = StreamOptions(url, key, args.language, args.speed, args.frame_ms / 1000.0, args.key_in_message)
    try:
        result = asyncio.run(play(pcm, rate, options, _printer(args.json)))
    except ClientFailure as exc:
        print(f"voicecheck stream: {exc}", file=sys.stderr)
        return 1
    return 0 if result.summary is not None else 1


def _one_line(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc)


def _printer(raw: bool) -> Callable[[dict[str, Any]], None]:
    def show(message: dict[str, Any]) -> None:
        if raw or message["type"] == "summary":
            print(json.dumps(message, indent=None if raw else 2), flush=True)
        elif message["type"] == "segment":
            print(
                f"{message['start']:7.2f}-{message['end']:7.2f} s  {message['classification']:<13} "
                f"{message['score']:.4f}",
                flush=True,
            )
        else:
            print(f"error: {message.get('message')}", file=sys.stderr, flush=True)

    return show


if __name__ == "__main__":
    raise SystemExit(main())
