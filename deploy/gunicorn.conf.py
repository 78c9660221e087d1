"""gunicorn settings for running iam behind nginx (or directly with TLS).

    gunicorn -c deploy/gunicorn.conf.py 'iam.wsgi:app'

``iam serve`` starts the same server with these defaults built in; use this file when a
process manager (systemd, see deploy/iam.service) starts gunicorn itself.
"""

import multiprocessing
import os

bind = os.environ.get("IAM_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("IAM_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("IAM_THREADS", "4"))
# gunicorn's own workers, which also record client certificates the TLS handshake refuses
# (audit event card.tls_refused; see iam/server.py)
worker_class = "iam.server.ThreadWorker" if threads > 1 else "iam.server.SyncWorker"
timeout = 60
graceful_timeout = 20
keepalive = 5
accesslog = None  # the audit log records security events; request logs come from nginx
errorlog = "-"
# Only the reverse proxy may set X-Forwarded-* (also set server.trusted_proxies in iam.toml).
forwarded_allow_ips = os.environ.get("IAM_TRUSTED_PROXIES", "127.0.0.1")

# -- TLS terminated by gunicorn itself, with smart-card / client-certificate sign-in ----------
# (the other deployment, nginx in front, is deploy/nginx/iam.conf). Set IAM_CERTFILE and
# IAM_KEYFILE to serve HTTPS; IAM_CA_CERTS names the PEM bundle of the card-issuing CAs whose
# client certificates the handshake accepts (root + intermediates); IAM_CLIENT_CERTS=optional
# asks browsers for a certificate without requiring one (password sign-in keeps working).
# The application reads the certificate from environ["gunicorn.socket"] and validates it again
# against x509.trust_dir (chain, dates, usages, CRL/OCSP) — the handshake is only a first
# filter: it checks chain and purpose but not the dates (ssl_context below), so an expired or
# not yet valid card reaches the card page and its reason; a card of an unknown CA or with the
# wrong purpose ends the handshake and is recorded as card.tls_refused (README, "Smart cards").
if os.environ.get("IAM_CERTFILE"):
    import ssl

    from iam.server import ssl_context  # noqa: F401 — gunicorn's ssl_context hook

    certfile = os.environ["IAM_CERTFILE"]
    keyfile = os.environ.get("IAM_KEYFILE")
    if os.environ.get("IAM_CA_CERTS"):
        ca_certs = os.environ["IAM_CA_CERTS"]
        cert_reqs = {
            "none": ssl.CERT_NONE,
            "optional": ssl.CERT_OPTIONAL,
            "required": ssl.CERT_REQUIRED,
        }[os.environ.get("IAM_CLIENT_CERTS", "optional")]
