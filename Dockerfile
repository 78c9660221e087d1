# syntax=docker/dockerfile:1
# iam in a container: non-root, read-only root file system, health check.
#   docker build -t iam .
#   docker compose -f deploy/container/compose.yaml up      (PostgreSQL, provider, worker, nginx)
# Writable state lives only in /var/lib/iam (a volume): generated files, the audit anchor,
# backups. Configuration: /etc/iam/iam.toml (mounted) and IAM_* environment variables.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md babel.cfg ./
COPY iam iam
COPY sso sso
COPY pim pim
COPY provisioning provisioning
COPY policies policies
COPY templates templates
COPY static static
COPY translations translations
COPY deploy deploy
RUN python -m venv /opt/iam && /opt/iam/bin/pip install --no-cache-dir ".[postgres]"
# compiled catalogues are built, never committed
RUN if ls translations/*/LC_MESSAGES/*.po >/dev/null 2>&1; then /opt/iam/bin/pybabel compile -d translations; fi

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 iam \
 && useradd --system --uid 10001 --gid iam --home-dir /var/lib/iam --shell /usr/sbin/nologin iam \
 && mkdir -p /var/lib/iam /etc/iam && chown iam:iam /var/lib/iam
COPY --from=build /opt/iam /opt/iam
COPY --from=build /src/deploy/gunicorn.conf.py /opt/iam/gunicorn.conf.py
ENV PATH=/opt/iam/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IAM_CONFIG=/etc/iam/iam.toml \
    IAM_VAR_DIR=/var/lib/iam \
    IAM_SERVER__HOST=0.0.0.0 \
    IAM_SERVER__PORT=8000
USER 10001:10001
WORKDIR /var/lib/iam
VOLUME ["/var/lib/iam"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
# `iam serve` runs gunicorn; `docker run … iam worker` runs the worker; `… iam db upgrade` migrates.
ENTRYPOINT ["iam"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
