"""The HTTP face: FastAPI app, mountable router, one JSON error shape."""

from __future__ import annotations

from ..jobs.service import Service
from .app import create_app
from .errors import install as install_error_handlers
from .routes import build_router

__all__ = ["Service", "build_router", "create_app", "install_error_handlers"]
