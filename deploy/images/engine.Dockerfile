# syntax=docker/dockerfile:1
# A vLLM engine: the official vLLM OpenAI server image plus the llmops CLI, non-root, with the
# model cache on a volume (/models). Build from the repository root:
#   docker build -f deploy/images/engine.Dockerfile -t llmops-engine:0.1.0 .
# Pin the base by digest for reproducible builds:
#   --build-arg VLLM_IMAGE=vllm/vllm-openai:v0.32.0@sha256:<digest you tested>
# A CPU engine (no GPU) builds from vLLM's CPU image instead:
#   --build-arg VLLM_IMAGE=public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.32.0
ARG VLLM_IMAGE=vllm/vllm-openai:v0.32.0
FROM ${VLLM_IMAGE}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The llmops CLI lives in its own virtual environment: its dependencies (fastapi, openai...)
# must not move the versions vLLM was built and tested with.
COPY pyproject.toml README.md /tmp/llmops-src/
COPY common/ /tmp/llmops-src/common/
COPY llmops/ /tmp/llmops-src/llmops/
COPY gateway/ /tmp/llmops-src/gateway/
COPY engine/ /tmp/llmops-src/engine/
COPY observability/ /tmp/llmops-src/observability/
COPY prompts/ /tmp/llmops-src/prompts/
COPY retrieval/ /tmp/llmops-src/retrieval/
COPY evals/ /tmp/llmops-src/evals/
COPY monitor/ /tmp/llmops-src/monitor/
COPY rollout/ /tmp/llmops-src/rollout/
RUN python3 -m venv /opt/llmops \
    && /opt/llmops/bin/pip install --no-cache-dir /tmp/llmops-src \
    && ln -s /opt/llmops/bin/llmops /usr/local/bin/llmops \
    && rm -rf /tmp/llmops-src \
    && useradd --uid 10001 --gid 0 --home-dir /home/vllm --create-home vllm \
    && mkdir -p /models \
    && chown 10001:0 /models \
    && chmod 0775 /models

# Everything downloaded or compiled goes to the volume: weights survive restarts and upgrades.
ENV HF_HOME=/models/hf \
    VLLM_CACHE_ROOT=/models/vllm \
    LLMOPS_HOME=/models/llmops \
    HOME=/home/vllm
VOLUME ["/models"]
USER 10001
EXPOSE 8000
# First start downloads and loads the weights: give it up to 20 minutes before counting failures.
HEALTHCHECK --interval=30s --timeout=5s --start-period=1200s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["vllm", "serve"]
