"""Request and response bodies of the passkey routes, as the OpenAPI document shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from keyturn.core.passkeys import MAX_NAME_CHARS, Passkey
from keyturn.http.schemas import Strict, Text, TokenText

PasskeyName = Annotated[Text, Field(min_length=1, max_length=MAX_NAME_CHARS)]
Credential = Annotated[
    dict[str, Any],
    Field(
        description="The PublicKeyCredential the browser returned, in WebAuthn's JSON form"
        " (base64url for binary members), as `PublicKeyCredential.toJSON()` gives it."
    ),
]


class PasskeyRegisterRequest(Strict):
    credential: Credential
    name: PasskeyName | None = Field(
        None, description="Default: the browser and system it was made on (`Chrome on macOS`)."
    )


class PasskeyRenameRequest(Strict):
    name: PasskeyName


class PasskeyLoginOptionsRequest(Strict):
    mfa_token: TokenText | None = None


class PasskeyLoginRequest(Strict):
    credential: Credential
    mfa_token: TokenText | None = None
    remember_me: bool = True


class PasskeyOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, passkey: Passkey) -> PasskeyOut:
        return cls(
            id=passkey.id,
            name=passkey.name,
            created_at=passkey.created_at,
            last_used_at=passkey.last_used_at,
        )


class PasskeyEnvelope(BaseModel):
    passkey: PasskeyOut


class PasskeyList(BaseModel):
    passkeys: list[PasskeyOut]
