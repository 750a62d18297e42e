# syntax=docker/dockerfile:1
# The llmops gateway: the project without torch (no retrieval/evals extras), run as non-root.
# Build from the repository root:
#   docker build -f deploy/images/gateway.Dockerfile -t llmops-gateway:0.1.0 .
# Reproducible builds: pin the base by digest too, e.g.
#   --build-arg PYTHON_IMAGE=python:3.11.16-slim-bookworm@sha256:<digest you tested>
ARG PYTHON_IMAGE=python:3.11.16-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/llmops
COPY pyproject.toml README.md ./
# Every package pyproject.toml lists (tests/deploy/test_dockerfiles.py checks it).
COPY common/ common/
COPY llmops/ llmops/
COPY gateway/ gateway/
COPY engine/ engine/
COPY observability/ observability/
COPY prompts/ prompts/
COPY retrieval/ retrieval/
COPY evals/ evals/
COPY monitor/ monitor/
COPY rollout/ rollout/
# Core dependencies plus Langfuse tracing and the Qdrant client: nothing that pulls torch.
# Embeddings come from an OpenAI-compatible upstream (vLLM), not from a local model.
ARG QDRANT_CLIENT_VERSION=1.20.0
RUN /opt/llmops/bin/pip install --no-cache-dir ".[observability]" \
        "qdrant-client==${QDRANT_CLIENT_VERSION}" \
    && /opt/llmops/bin/llmops --help > /dev/null

FROM ${PYTHON_IMAGE}
# git: the prompt registry reads template versions from git history.
# Debian drops superseded package versions, so pinning one would break rebuilds: the base
# image tag (or digest) is what pins the distribution.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 llmops \
    && useradd --system --uid 10001 --gid llmops --home-dir /var/lib/llmops --create-home llmops
COPY --from=build /opt/llmops /opt/llmops
# Prompts baked in (used when no git-sync sidecar or mounted checkout is configured).
COPY prompts/ /srv/llmops/prompts/
ENV PATH=/opt/llmops/bin:$PATH \
    LLMOPS_HOME=/var/lib/llmops \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /var/lib/llmops
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["llmops"]
CMD ["serve", "--config", "/etc/llmops/gateway.yaml", "--host", "0.0.0.0", "--port", "8080"]
