# syntax=docker/dockerfile:1
# segmenter worker image: `docker build -t segmenter .`; `docker run segmenter` starts `segmenter worker`,
# any other command replaces CMD (`docker run segmenter topics create --partitions 8`).

# --- build: install the project and its dependencies into a venv -----------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# A compiler only for dependencies without a binary wheel on the target platform (e.g. arm64); it stays
# in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/segmenter
WORKDIR /src
COPY pyproject.toml README.md ./
COPY segmenter ./segmenter
COPY streams ./streams
COPY state ./state
RUN /opt/segmenter/bin/pip install .

# --- runtime ----------------------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PATH=/opt/segmenter/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SEGMENTER_WEB_PORT=6066 \
    SEGMENTER_DATA_DIR=/var/lib/segmenter
RUN groupadd --system --gid 10001 segmenter \
 && useradd --system --uid 10001 --gid segmenter --home-dir /var/lib/segmenter --no-create-home \
        --shell /usr/sbin/nologin segmenter \
 && mkdir -p /var/lib/segmenter \
 && chown segmenter:segmenter /var/lib/segmenter
COPY --from=build /opt/segmenter /opt/segmenter
USER 10001:10001
WORKDIR /var/lib/segmenter
EXPOSE 6066
# /var/lib/segmenter is SEGMENTER_DATA_DIR: RocksDB stores (SEGMENTER_STORE=rocksdb) under
# {app id}/partition-N; mount a volume there to keep them across container restarts.
# On SIGTERM (docker stop) the worker finishes the batch in progress: give it a grace period of 60 s
# (docker stop -t 60, compose stop_grace_period).
# Liveness of the worker's HTTP endpoint (readiness is /readyz, used by Kubernetes).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SEGMENTER_WEB_PORT', '6066'), timeout=4)"]
ENTRYPOINT ["segmenter"]
CMD ["worker"]
