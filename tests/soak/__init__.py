"""Soak tests: sustained load against uvicorn while the provider rotates keys and restarts."""
