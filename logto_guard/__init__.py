"""Trust Logto machine-to-machine access tokens in Starlette and FastAPI APIs."""

from __future__ import annotations

__version__ = "0.1.0"
