"""A small service of its own that trusts Keyturn's access tokens, through keyturn.verify.

    KEYTURN_ISSUER=http://127.0.0.1:8000 .venv/bin/uvicorn service:app \
        --app-dir examples/resource_service --port 8001

KEYTURN_ISSUER is the Keyturn server whose tokens it accepts (their `iss`; its JWKS is read
from there). With KEYTURN_REDIS_URL (the Redis Keyturn itself uses) a logout reaches this
service at once; without it, a token stays valid here until it expires.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from keyturn.verify import AccessClaims, Verifier
from keyturn.verify.deps import KeyturnBearer, install_error_handler

verifier = Verifier(
    os.environ.get("KEYTURN_ISSUER", "http://127.0.0.1:8000"),
    audience=os.environ.get("KEYTURN_AUDIENCE", "keyturn"),
    redis_url=os.environ.get("KEYTURN_REDIS_URL") or None,
)
bearer = KeyturnBearer(verifier)
Principal = Annotated[AccessClaims, Depends(bearer)]

app = FastAPI(title="Notes, a service protected by Keyturn")
install_error_handler(app)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/notes")
async def notes(principal: Principal) -> dict[str, Any]:
    """Anyone Keyturn logged in: their own notes."""
    return {"owner": principal.subject, "roles": list(principal.roles), "notes": []}


@app.get("/reports", dependencies=[Depends(bearer.requires_role("admin"))])
async def reports() -> dict[str, Any]:
    """Admins only (403 insufficient_role for others)."""
    return {"reports": []}
