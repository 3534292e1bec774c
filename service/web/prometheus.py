"""Prometheus text-format metrics, kept in process with no extra dependency."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        index = next((i for i, edge in enumerate(BUCKETS) if seconds <= edge), len(BUCKETS))
        self.counts[index] += 1
        self.total += seconds

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, running = [], 0
        for edge, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if edge == float("inf") else f"{edge:g}"
            out.append(f'{name}_bucket{{{labels}{"," if labels else ""}le="{le}"}} {running}')
        suffix = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{suffix} {self.total:.6f}", f"{name}_count{suffix} {running}"]
        return out


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = defaultdict(Histogram)
        self.inference = Histogram()
        self.in_flight = 0
        self.streams_opened = 0
        self.streams_active = 0
        self.streams_closed: dict[str, int] = defaultdict(int)
        self.stream_segments = 0

    def record_request(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            self.latency[route].observe(seconds)

    def record_inference(self, seconds: float) -> None:
        with self._lock:
            self.inference.observe(seconds)

    def stream_opened(self) -> None:
        with self._lock:
            self.streams_opened += 1
            self.streams_active += 1

    def stream_closed(self, code: str) -> None:
        """``code``: the close code, or "disconnect" when the client left without one we send."""
        with self._lock:
            self.streams_active -= 1
            self.streams_closed[code] += 1

    def stream_segment(self) -> None:
        with self._lock:
            self.stream_segments += 1

    def render(self, queue_rejections: int, queued: int) -> str:
        with self._lock:
            lines = ["# TYPE voicecheck_requests_total counter"]
            lines += [
                f'voicecheck_requests_total{{route="{route}",status="{status}"}} {count}'
                for (route, status), count in sorted(self.requests.items())
            ]
            lines.append("# TYPE voicecheck_request_duration_seconds histogram")
            for route, histogram in sorted(self.latency.items()):
                lines += histogram.lines("voicecheck_request_duration_seconds", f'route="{route}"')
            lines.append("# TYPE voicecheck_inference_seconds histogram")
            lines += self.inference.lines("voicecheck_inference_seconds")
            lines += [
                "# TYPE voicecheck_in_flight gauge",
                f"voicecheck_in_flight {self.in_flight}",
                "# TYPE voicecheck_queued gauge",
                f"voicecheck_queued {queued}",
                "# TYPE voicecheck_queue_rejections_total counter",
                f"voicecheck_queue_rejections_total {queue_rejections}",
            ]
            lines += self._stream_lines()
        return "\n".join(lines) + "\n"

    def _stream_lines(self) -> list[str]:
        lines = [
            "# TYPE voicecheck_streams_opened_total counter",
            f"voicecheck_streams_opened_total {self.streams_opened}",
            "# TYPE voicecheck_streams_active gauge",
            f"voicecheck_streams_active {self.streams_active}",
            "# TYPE voicecheck_streams_closed_total counter",
        ]
        lines += [
            f'voicecheck_streams_closed_total{{code="{code}"}} {count}'
            for code, count in sorted(self.streams_closed.items())
        ]
        return [
            *lines,
            "# TYPE voicecheck_stream_segments_total counter",
            f"voicecheck_stream_segments_total {self.stream_segments}",
        ]
