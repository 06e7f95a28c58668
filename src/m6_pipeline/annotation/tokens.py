"""Personal sign-in tokens: `m6.<annotator id>.<secret>`. Only a salted scrypt hash of the
secret is stored; the id part lets sign-in find the one hash to check."""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "m6"
# scrypt at n=2**14, r=8 (16 MiB, tens of ms): slow enough to make guessing a stolen hash costly
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class AccessDenied(PermissionError):
    """A missing, malformed, unknown or revoked token, or a role that may not do this."""


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def token_of(annotator_id: str, secret: str) -> str:
    return f"{PREFIX}.{annotator_id}.{secret}"


def parse_token(token: str) -> tuple[str, str]:
    """(annotator id, secret) of a token; AccessDenied when it is not one."""
    parts = (token or "").strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        raise AccessDenied("that is not an annotation token (they look like m6.<id>.<secret>)")
    return parts[1], parts[2]


def hash_secret(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **SCRYPT)


def matches(secret: str, salt: bytes, stored: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret, salt), stored)
