"""`/tokens/`: the data team's API tokens, listed, made and revoked (admin).

A token's secret is shown once, in the answer that makes it; only its hash is stored. A
revoked token is refused at once by the API process that revoked it, and by the others
within `THE_EYE_KEY_CACHE_SECONDS`. `THE_EYE_ADMIN_TOKEN` is no stored token: it is not
listed and cannot be revoked here (unset it instead).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from the_eye.api import bodies
from the_eye.api.auth import AdminAccess
from the_eye.api.pagination import RowId, iso
from the_eye.api.problems import not_found
from the_eye.api.responses import JSONBody
from the_eye.api.state import state_of
from the_eye.services import credentials

router = APIRouter(tags=["tokens"], dependencies=[AdminAccess])


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["analyst"])
    scope: Literal["read", "admin"] = Field(
        "read", description="`read` queries; `admin` also changes (schemas, keys, tokens)."
    )


def token_json(token: credentials.Token) -> dict[str, object]:
    body: dict[str, object] = {
        "id": token.id,
        "name": token.name,
        "scope": token.scope,
        "active": token.active,
        "created_at": iso(token.created_at),
    }
    if token.secret is not None:
        body["token"] = token.secret
    return body


@router.get(
    "/tokens/",
    summary="List API tokens, revoked ones included",
    response_model=bodies.TokenList,
)
def list_tokens(request: Request) -> JSONBody:
    tokens = credentials.list_tokens(state_of(request).engine)
    return JSONBody({"results": [token_json(t) for t in tokens], "next": None})


@router.post(
    "/tokens/", status_code=201, summary="Create an API token", response_model=bodies.Token
)
def create_token(request: Request, body: NewToken) -> JSONBody:
    """The answer holds the token; it is never shown again."""
    token = credentials.issue_token(state_of(request).engine, body.name, body.scope)
    return JSONBody(token_json(token), status_code=201)


@router.delete("/tokens/{token_id}/", status_code=204, summary="Revoke an API token")
def revoke_token(request: Request, token_id: RowId) -> Response:
    state = state_of(request)
    try:
        credentials.revoke_token(state.engine, token_id, state)
    except credentials.TokenNotFound:
        raise not_found("API token") from None
    return Response(status_code=204)
