# The Veraclaim chat app (Gradio), for a chat replica in production.
#
# The image holds the app and its runtime dependencies only: no test tools, no model server
# (TGI runs on RunPod, see runpod.toml) and no secrets. Configure it at run time:
#   VERACLAIM_MODEL_BASE_URL, VERACLAIM_MODEL_ID, VERACLAIM_MODEL_API_KEY  the model server
#   VERACLAIM_LOG_DATABASE_URL                                            the conversation log
#   VERACLAIM_INDEX_S3_URI (optional)  s3://bucket/prefix to pull the index from at start,
#                                      with the usual AWS_* variables or an instance role;
#                                      without it, mount the index folder at /data/index.
#
# Build: docker build -t veraclaim-chat .
# Run:   docker run -p 7860:7860 -e VERACLAIM_MODEL_BASE_URL=... -v "$PWD/var/index:/data/index:ro" veraclaim-chat
# NOTE: this machine has no Docker engine, so the image was never built here; only hadolint
# checks this file (tests/serving/test_dockerfile.py).

# ---- build stage: a virtual environment with the app and its runtime dependencies ----
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH"

# torch from PyTorch's CPU index, so pip does not pull the multi-GB CUDA build. The version
# is the one scripts/setup_venv.sh installs.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY chat_ui ./chat_ui
COPY index_builder ./index_builder
COPY serving ./serving
RUN pip install --no-cache-dir .

# ---- runtime stage ----
FROM python:3.11-slim-bookworm

ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    DO_NOT_TRACK=1 \
    VERACLAIM_HOST=0.0.0.0 \
    VERACLAIM_PORT=7860 \
    VERACLAIM_INDEX_DIR=/data/index \
    VERACLAIM_LOG_DATABASE_URL=sqlite:////data/log/conversations.sqlite3

RUN groupadd --gid 10001 veraclaim \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin veraclaim \
    && mkdir -p /data/index /data/log \
    && chown -R 10001:10001 /data

COPY --from=build /opt/venv /opt/venv

# A numeric user, so the runtime can tell that it is not root without reading /etc/passwd.
USER 10001:10001
WORKDIR /home/veraclaim
VOLUME ["/data"]
EXPOSE 7860

# Gradio answers GET / once the app is up; start-period covers loading the index and the
# embedding model.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"]

# Pull the published index first when VERACLAIM_INDEX_S3_URI is set, then serve the chat.
CMD ["sh", "-c", "if [ -n \"$VERACLAIM_INDEX_S3_URI\" ]; then veraclaim-index pull \"$VERACLAIM_INDEX_S3_URI\" --out \"$VERACLAIM_INDEX_DIR\" || exit 1; fi; exec veraclaim-chat serve"]
