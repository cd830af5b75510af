# nanoserve, CPU image. Build: docker build -t nanoserve:cpu .   (compose.yaml builds it too)
# Stage 1 compiles llama-cpp-python once (scripts/install.sh, as `make install` does); stage 2 is
# the venv and nothing else, run as a non-root user with the data dir as a volume.
FROM python:3.11-slim-bookworm AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY scripts/install.sh ./scripts/install.sh
RUN GPU=cpu EDITABLE=0 EXTRAS=llamacpp,sentence,otel,rag,pgvector,hub bash scripts/install.sh /opt/nanoserve

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 nanoserve \
    && mkdir /data && chown nanoserve /data
COPY --from=builder /opt/nanoserve /opt/nanoserve
ENV PATH=/opt/nanoserve/bin:$PATH \
    NANOSERVE_HOME=/data \
    PYTHONUNBUFFERED=1
VOLUME /data
USER 10001
EXPOSE 8000
# /health: the process answers. Orchestrators that should wait for the models use /ready.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
# Beyond loopback only with API keys: NANOSERVE_BOOTSTRAP_KEY (.env) is the first admin key.
ENTRYPOINT ["nanoserve", "serve", "--host", "0.0.0.0", "--port", "8000"]
