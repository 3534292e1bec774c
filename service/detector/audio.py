"""Decode any soundfile-readable bytes to 16 kHz mono float32, streaming and bounded."""

from __future__ import annotations

import io
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import soundfile as sf
import soxr

from service.detector.errors import AudioError

SAMPLE_RATE = 16_000
_BLOCK_FRAMES = 1 << 16
# libsndfile's MP3 decoder (libmpg123) writes resync notes to file descriptor 2 when a read ends
# mid-frame or meets bytes that are not MPEG audio, with no way to turn them off.
DECODER_NOTES = (b"[src/libmpg123/", b"Note: ")
NOT_ALLOWED = "could not decode audio: send MP3, WAV, FLAC or OGG bytes"
# The contract's containers, by libsndfile's name, and how their files begin: anything else is
# refused before a parser sees it (libsndfile reads some twenty other formats).
CONTAINERS = {"WAV", "WAVEX", "MP3", "FLAC", "OGG"}
CONTAINER_MAGIC = (b"RIFF", b"fLaC", b"OggS", b"ID3")
# Raw PCM a live stream may send: 16-bit integers, or float samples (a decoded file's, unchanged)
PCM_ENCODINGS: dict[str, np.dtype[Any]] = {"pcm_s16le": np.dtype("<i2"), "pcm_f32le": np.dtype("<f4")}


@dataclass(frozen=True)
class AudioLimits:
    max_seconds: float = 300.0
    min_seconds: float = 0.5
    max_channels: int = 8
    min_sample_rate: int = 4_000
    max_sample_rate: int = 192_000
    silence_peak: float = 1e-4  # -80 dBFS: nothing a microphone or codec leaves audible
    corrupt_peak: float = 16.0  # +24 dBFS: no real decoder overshoots this far; corrupt streams do


def decode_audio(data: bytes | BinaryIO, limits: AudioLimits | None = None) -> np.ndarray:
    """Return the clip (its bytes, or a file open at its start, read in blocks) as float32 mono at
    16 kHz; raise AudioError for anything unusable."""
    limits = limits or AudioLimits()
    source = io.BytesIO(data) if isinstance(data, bytes) else data  # BytesIO shares the bytes
    waveform = np.concatenate([*resampled_blocks(source, limits), np.zeros(0, np.float32)])
    _check_content(waveform, limits)
    return waveform


def resampled_blocks(source: BinaryIO, limits: AudioLimits) -> Iterator[np.ndarray]:
    """The audio in ``source`` (bytes in memory or a file on disk) as 16 kHz mono float32 blocks,
    decoded as they are read: memory stays that of one block whatever the length. Raises AudioError
    for anything unusable found on the way; the caller checks the whole (``check_decoded``)."""
    head = source.read(max(len(magic) for magic in CONTAINER_MAGIC))
    if not head:
        raise AudioError("audio is empty")
    source.seek(0)
    if not head.startswith(CONTAINER_MAGIC) and not _mpeg_audio(head):
        raise AudioError(NOT_ALLOWED)
    try:
        with sf.SoundFile(source) as stream:
            if stream.format not in CONTAINERS:
                raise AudioError(NOT_ALLOWED)
            _check_header(stream, limits)
            yield from _read_resampled(stream, limits)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as exc:
        raise AudioError(NOT_ALLOWED) from exc


def _mpeg_audio(data: bytes) -> bool:
    """An MPEG audio frame header at the start: 11 sync bits, then a valid version and layer."""
    if len(data) < 2 or data[0] != 0xFF:
        return False
    sync, version, layer = data[1] & 0xE0, data[1] & 0x18, data[1] & 0x06
    return sync == 0xE0 and version != 0x08 and layer != 0


def _check_header(stream: sf.SoundFile, limits: AudioLimits) -> None:
    if not limits.min_sample_rate <= stream.samplerate <= limits.max_sample_rate:
        raise AudioError(
            f"sample rate {stream.samplerate} Hz is outside "
            f"{limits.min_sample_rate}-{limits.max_sample_rate} Hz"
        )
    if not 1 <= stream.channels <= limits.max_channels:
        raise AudioError(f"{stream.channels} channels; at most {limits.max_channels} are allowed")
    claimed = stream.frames / stream.samplerate if 0 < stream.frames < 2**62 else 0.0
    if claimed > limits.max_seconds + 1.0:
        raise _too_long(limits)


def _read_resampled(stream: sf.SoundFile, limits: AudioLimits) -> Iterator[np.ndarray]:
    resampler = soxr.ResampleStream(stream.samplerate, SAMPLE_RATE, 1, dtype="float32")
    max_samples = int((limits.max_seconds + 1.0) * SAMPLE_RATE)
    total = 0
    # read() rather than blocks(): blocks() trusts the header's frame count and pads a truncated
    # stream with whatever its buffer held.
    while len(block := stream.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)):
        if not np.all(np.abs(block) <= limits.corrupt_peak):  # also catches NaN
            raise AudioError("audio is corrupt: it decodes to samples far beyond full scale")
        chunk = resampler.resample_chunk(block.mean(axis=1))
        total += len(chunk)
        if total > max_samples:
            raise _too_long(limits)
        yield chunk
    yield resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def _check_content(waveform: np.ndarray, limits: AudioLimits) -> None:
    check_decoded(len(waveform) / SAMPLE_RATE, float(np.max(np.abs(waveform - waveform.mean()))), limits)


def check_decoded(seconds: float, swing: float, limits: AudioLimits) -> None:
    """A whole decoded clip: audible (``check_audible``) and within the length limit."""
    check_audible(seconds, swing, limits)
    if seconds > limits.max_seconds:
        raise _too_long(limits)


def check_audible(seconds: float, swing: float, limits: AudioLimits) -> None:
    """Long enough and not silent; ``swing`` is the largest distance of a sample from the clip's
    mean (its peak once the DC offset is removed). The JSON route's clips and streams alike."""
    if seconds < limits.min_seconds:
        raise AudioError(f"audio is {seconds:.2f} s long; at least {limits.min_seconds:g} s is needed")
    if swing < limits.silence_peak:
        raise AudioError("audio is silent: no audible signal once its DC offset is removed")


def _too_long(limits: AudioLimits) -> AudioError:
    return AudioError(f"audio is longer than the {limits.max_seconds:g} s limit")


def quiet_decoder_notes() -> None:
    """Keep libmpg123's notes out of the log. Writes to file descriptor 2 from C code pass through
    a thread that drops the notes; Python's own ``sys.stderr`` keeps the original descriptor, so
    logs and tracebacks never depend on that thread. Call once, before logging is configured."""
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = open(original, "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    threading.Thread(target=_forward_all_but_notes, args=(read_end, original), daemon=True).start()


def _forward_all_but_notes(read_end: int, destination: int) -> None:
    with os.fdopen(read_end, "rb") as pipe:
        for line in pipe:
            if not line.startswith(DECODER_NOTES):
                os.write(destination, line)
