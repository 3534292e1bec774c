# syntax=docker/dockerfile:1
# Two stages: "export" turns the pretrained wav2vec2-base into the static INT8 graph and calibrates
# its votes (torch lives only here); "runtime" serves it with onnxruntime, no torch.

FROM python:3.11-slim-bookworm AS export
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY scripts/corpus-packages.txt /tmp/corpus-packages.txt
RUN apt-get update \
 && xargs -a /tmp/corpus-packages.txt apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service service
COPY export export
COPY scripts scripts
# CPU-only torch (the default wheel pulls in several GB of CUDA)
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install ".[export,corpus]"
RUN scripts/make-dev-corpus /corpus
# Real pretrained weights only: with no model hub this step fails, and so does the build.
RUN python -m export --model facebook/wav2vec2-base --calibration /corpus --out /artifacts
RUN python -m export.calibrate /corpus --artifacts /artifacts --cache /corpus/measurements.npz \
 && python -m export.evaluate /corpus --artifacts /artifacts --cache /corpus/measurements.npz --robustness 100

FROM python:3.11-slim-bookworm AS runtime
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 PORT=8000 ARTIFACTS_DIR=/app/artifacts THREADS=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service service
COPY export export
RUN pip install . && useradd --create-home --uid 10001 voicecheck
COPY --from=export /artifacts /app/artifacts
USER voicecheck
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['PORT'], timeout=4)"
CMD ["python", "-m", "service"]
