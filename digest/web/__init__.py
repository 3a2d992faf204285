"""The website: subscribe, confirm, manage, rate, unsubscribe (FastAPI + Jinja2 templates/web/)."""

from digest.web.app import create_app

__all__ = ["create_app"]
