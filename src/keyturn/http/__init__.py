"""HTTP: FastAPI routes that translate between the wire and the services."""
