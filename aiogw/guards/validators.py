"""Checks a candidate must pass before the engine reports it: `(text) -> bool`.

An expression finds what has the *shape* of a secret or a personal number; a validator
decides whether it is one: a checksum (cards, IBANs, GitHub tokens), the rules of a
numbering plan (SSNs, phone numbers), a structure (JWTs), or the look of a real value
rather than a placeholder. Each receives the matched text only and must be cheap: it
runs per candidate, never over a whole text. The catalog names them in `validator`;
`VALIDATORS` is the registry it checks names against. The checks themselves are in
`credential_validators` and `pii_validators`.

Well-known example values (the Stripe test cards, AWS's documented example key, the
jwt.io sample token, the IBANs every bank's documentation uses) are format-valid but
public: they are rejected here, so a Stripe integration or an SDK's README is not PII.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiogw.guards.credential_validators import (
    aws_access_key,
    aws_secret_key,
    azure_storage_key,
    entropy,
    github_token,
    jwt,
    private_key,
    token,
    url_password,
)
from aiogw.guards.pii_validators import email, iban, luhn, phone, public_ip, us_ssn

VALIDATORS: Mapping[str, Callable[[str], bool]] = {
    "luhn": luhn,
    "iban": iban,
    "us_ssn": us_ssn,
    "github_token": github_token,
    "aws_access_key": aws_access_key,
    "aws_secret_key": aws_secret_key,
    "azure_storage_key": azure_storage_key,
    "jwt": jwt,
    "entropy": entropy,
    "token": token,
    "private_key": private_key,
    "url_password": url_password,
    "email": email,
    "phone": phone,
    "public_ip": public_ip,
}
