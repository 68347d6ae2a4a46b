# One image for every service of the project; the command picks the service:
#   agent worker (default):  python -m agent start
#   token server:            python -m token_server
#   webhook deliverer:       python -m webhooks.deliver
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WEBHOOK_OUTBOX_PATH=/app/var/webhook-outbox.db

# onnxruntime (Silero VAD) needs OpenMP; OpenCV (bitHuman SDK) needs glib
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 app

WORKDIR /app
COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY pyproject.toml README.md ./
COPY agent ./agent
COPY bithuman_client ./bithuman_client
COPY common ./common
COPY token_server ./token_server
COPY webhooks ./webhooks
COPY config ./config
RUN pip install --no-deps . && mkdir -p /app/var && chown app /app/var

USER app
# 8081: the worker's health server (GET / -> OK); 3000: the token server
EXPOSE 8081 3000
CMD ["python", "-m", "agent", "start"]
