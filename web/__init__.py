"""The FastAPI app: /api/v1, auth, health, metrics and the monitor pages."""
