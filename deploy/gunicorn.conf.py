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
worker_class = "gthread" if threads > 1 else "sync"
timeout = 60
graceful_timeout = 20
keepalive = 5
accesslog = None  # the audit log records security events; request logs come from nginx
errorlog = "-"
# Only the reverse proxy may set X-Forwarded-* (also set server.trusted_proxies in iam.toml).
forwarded_allow_ips = os.environ.get("IAM_TRUSTED_PROXIES", "127.0.0.1")
