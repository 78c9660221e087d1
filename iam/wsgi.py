"""WSGI entry point for an external gunicorn: ``gunicorn 'iam.wsgi:app'``."""

from iam.app import create_app

app = create_app()
