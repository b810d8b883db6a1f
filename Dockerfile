# hokusai serve in a slim image: non-root, health-checked, stopped gracefully.
#   docker build -t hokusai .
#   docker run -p 3000:3000 --env-file hokusai.env hokusai
# deploy/compose.yml runs two replicas on one PostgreSQL incident log.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[postgres]'

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=3000 \
    HOKUSAI_CONFIG=/etc/hokusai/hokusai.yml \
    HOKUSAI_RUNBOOKS=/etc/hokusai/runbooks \
    HOKUSAI_DB=/var/lib/hokusai/hokusai.db \
    HOKUSAI_LOG_FORMAT=json
RUN useradd --system --uid 10001 --home-dir /var/lib/hokusai --create-home hokusai
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels 'hokusai-incident-bot[postgres]' \
    && rm -rf /wheels
COPY hokusai.yml /etc/hokusai/hokusai.yml
COPY runbooks /etc/hokusai/runbooks
COPY manifest.yml /var/lib/hokusai/manifest.yml
USER hokusai
WORKDIR /var/lib/hokusai
EXPOSE 3000
# uvicorn finishes the requests in flight (the acks), then the bot hands its leases back.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=2)"]
CMD ["sh", "-c", "exec hokusai serve --host 0.0.0.0 --port \"$PORT\""]
