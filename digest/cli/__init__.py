"""`digest`, the admin CLI: one module per command group, put together in app.py."""

from digest.cli.app import app, main

__all__ = ["app", "main"]
