# Scaling Studio for GPU hosts. Installed as the README says for an environment of your own:
# STUDIO_VENV=/opt/venv bash scripts/install.sh, with a CUDA torch put there first.
#
#   docker build -t scaling-studio .
#   docker run --gpus all --ipc=host -p 7860:7860 -e STUDIO_AUTH=admin:change-me \
#     -v studio-data:/data -v hf-cache:/home/studio/.cache/huggingface scaling-studio
#
# torch 2.13.0 from PyPI (pinned in constraints.txt) is a CUDA 13 build, hence this CUDA 13 base and an
# NVIDIA driver >= 580 on the host. For an older driver, install a CUDA 12 torch first (install.sh keeps it):
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 -t scaling-studio .
ARG CUDA_IMAGE=nvidia/cuda:13.0.0-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

ARG TORCH_INDEX=""

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# tini is PID 1: it forwards SIGTERM to the studio (which stops its sweep) and reaps the
# accelerate/torchrun grandchildren that a killed run can leave behind.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv tini ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 studio \
    && useradd --create-home --uid 10001 --gid 10001 --shell /bin/bash studio \
    && python3 -m venv "$VIRTUAL_ENV" \
    && mkdir -p /data /home/studio/.cache/huggingface /opt/scaling-studio \
    && chown -R studio:studio /data /home/studio/.cache "$VIRTUAL_ENV" /opt/scaling-studio

WORKDIR /opt/scaling-studio
COPY --chown=studio:studio . .
USER 10001:10001
# The CUDA torch goes in first; install.sh keeps it and takes everything else from lock/studio.txt.
RUN python -m pip install "torch==$(sed -n 's/^torch==//p' constraints.txt)" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} \
    && STUDIO_VENV="$VIRTUAL_ENV" bash scripts/install.sh

# The database, run logs and the tiny model live in /data; models come from the Hugging Face
# cache volume (runs are offline: fill it on a machine with network access).
ENV STUDIO_HOME=/data \
    STUDIO_DB=/data/studio.db \
    HF_HOME=/home/studio/.cache/huggingface \
    GRADIO_SERVER_NAME=0.0.0.0 \
    STUDIO_HOST=0.0.0.0 \
    STUDIO_PORT=7860
VOLUME ["/data", "/home/studio/.cache/huggingface"]
EXPOSE 7860

HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"]

# `studio serve` off loopback refuses to start without STUDIO_AUTH=user:password.
ENTRYPOINT ["tini", "--", "studio"]
CMD ["serve", "--host", "0.0.0.0", "--port", "7860"]
