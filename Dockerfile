# One image for every service of the project; the command picks the service:
#   agent worker (default):  python -m agent start
#   token server:            python -m token_server
#   Agent Context API:       python -m context_api
#   webhook deliverer:       python -m webhooks
#   webhook receiver:        python -m webhook_receiver
# BASE must provide Python 3.11+ with venv, NODE_BASE Node.js 20+ with npm; the defaults are the
# official slim images. Offline builds pass locally bootstrapped ones instead
# (docs/deployment.md, tests/test_docker_image.py).
ARG BASE=python:3.11-slim
ARG NODE_BASE=node:20-bookworm-slim

# The web page the token server serves at / (web/, bundled by esbuild)
FROM ${NODE_BASE} AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
COPY web/tsconfig.json web/build.mjs ./
COPY web/src ./src
RUN npm run build

FROM ${BASE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH \
    WEBHOOK_OUTBOX_PATH=/app/var/webhook-outbox.db \
    TOKEN_SERVER_WEB_DIR=/app/web/dist

# onnxruntime (Silero VAD) needs OpenMP; OpenCV (bitHuman SDK) needs glib
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 app \
    && python -m venv /opt/venv

WORKDIR /app
COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY pyproject.toml README.md ./
COPY agent ./agent
COPY bithuman_client ./bithuman_client
COPY common ./common
COPY context_api ./context_api
COPY token_server ./token_server
COPY webhooks ./webhooks
COPY webhook_receiver ./webhook_receiver
COPY config ./config
COPY --from=web /web/dist ./web/dist
RUN pip install --no-deps . && mkdir -p /app/var && chown app /app/var

USER app
# 8081: the worker's health server (GET / -> OK); 3000: the token server; 3100: the Context API
EXPOSE 8081 3000 3100
# Probes HEALTHCHECK_URL, by default the worker's health server; a container running another
# service sets it to that service's /healthz (compose does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "common.healthcheck"]
CMD ["python", "-m", "agent", "start"]
