# Two stages: "export" turns wav2vec2-base into the static INT8 graph and calibrates its votes
# (torch lives only here); "runtime" serves it with onnxruntime, no torch.
#   docker build -t voicecheck .                              the pretrained weights (needs the model hub)
#   docker build --build-arg WEIGHTS=random-init -t vc-smoke .  offline smoke build: RANDOM weights
#   --build-arg TORCH_INDEX=URL                               where CPU-only torch comes from
ARG WEIGHTS=pretrained

FROM python:3.11-slim-bookworm AS export
ARG WEIGHTS
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY scripts/corpus-packages.txt /tmp/corpus-packages.txt
RUN apt-get update \
 && grep -v '^#' /tmp/corpus-packages.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml ./
# CPU-only torch (the default index serves several GB of CUDA); the default index only when the
# CPU index cannot be reached. Then every other dependency and the corpus, before the code, so
# that code edits rebuild from the export step on.
RUN torch=$(grep -o '"torch[<>=][^"]*"' pyproject.toml | tr -d '"') \
 && if python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)" "$TORCH_INDEX" 2>/dev/null; \
    then pip install --index-url "$TORCH_INDEX" "$torch"; \
    else echo "the CPU wheel index cannot be reached: torch from the default index" >&2; pip install "$torch"; fi \
 && python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
x = p['optional-dependencies']; print('\n'.join(p['dependencies'] + x['export'] + x['voices']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
COPY scripts scripts
COPY service/__init__.py service/labels.py service/
COPY export/__init__.py export/devcorpus.py export/
# without the resynthesised test groups: they are never learnt from, and pyworld needs a compiler
RUN scripts/make-dev-corpus /corpus --vocoders ''
COPY README.md ./
COPY service service
COPY export export
RUN pip install --no-deps .
# pretrained: the real weights, and the build fails without the model hub; random-init: a smoke build.
RUN case "$WEIGHTS" in \
      pretrained) source="--model facebook/wav2vec2-base" ;; \
      random-init) source="--random-init base"; echo "WARNING: WEIGHTS=random-init: RANDOM weights" >&2 ;; \
      *) echo "WEIGHTS must be pretrained or random-init, not '$WEIGHTS'" >&2; exit 2 ;; \
    esac \
 && python -m export $source --range-audio /corpus --out /artifacts
RUN python -m export.calibrate /corpus --artifacts /artifacts --cache /tmp/measurements.npz \
 && python -m export.evaluate /corpus --artifacts /artifacts --cache /tmp/measurements.npz --robustness 100
# which wav2vec2 layer these weights favour for the hidden-state vote: a table in the build log
RUN python -m export.layerscan /corpus --artifacts /artifacts

FROM python:3.11-slim-bookworm AS runtime
ARG WEIGHTS
LABEL org.opencontainers.image.title="voicecheck" \
      voicecheck.weights="$WEIGHTS"
# OpenBLAS (numpy's) single-threaded: onnxruntime has the cores, and numpy imports faster (docs/deploy.md)
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1 \
    HOST=0.0.0.0 PORT=8000 ARTIFACTS_DIR=/app/artifacts THREADS=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service service
COPY export export
# installed, compiled, and the source removed: run from /app, Python imports the compiled package
RUN pip install . && rm -rf /src && useradd --create-home --uid 10001 voicecheck
WORKDIR /app
COPY --from=export /artifacts /app/artifacts
USER voicecheck
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['PORT'], timeout=4)"
CMD ["python", "-m", "service"]
