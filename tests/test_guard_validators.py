"""Validators: checksums, numbering plans, structures and placeholders, on plain strings."""

from __future__ import annotations

import base64
import json

import pytest

from aiogw.guards import credential_validators as cred
from aiogw.guards import pii_validators as pii
from aiogw.guards import validators


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "number",
    [
        "4932340500303396",
        "4802-7475-5553-4070",
        "3436 494205 55260",
        "5421742180967926",
        "2223908100339077",
        "6011787789328792",
        "375793834701747",
    ],
)
def test_luhn_accepts_valid_cards(number):
    assert pii.luhn(number)


@pytest.mark.parametrize(
    "number",
    [
        "4932340500303397",  # check digit off by one
        "4242424242424242",  # Stripe's test card
        "4111 1111 1111 1111",  # the generic test card
        "378282246310005",  # Amex test card
        "9932340500303396",  # no network starts with 9
        "3436494205552600",  # Amex prefix with 16 digits
        "4000000000000002",  # long run of one digit
        "12345",
    ],
)
def test_luhn_rejects(number):
    assert not pii.luhn(number)


def test_iban():
    assert pii.iban("CH6190364XVL4VT45A4BQ")
    assert pii.iban("BE88 5106 5025 5595")
    assert not pii.iban("BE88 5106 5025 5596")  # mod-97 fails
    assert not pii.iban("BE88510650255595 00")  # wrong length for BE
    assert not pii.iban("ZZ88510650255595")  # unknown country
    assert not pii.iban("DE89 3704 0044 0532 0130 00")  # the registry's example, in every doc
    assert pii.IBAN_LENGTHS["DE"] == 22 and pii.IBAN_LENGTHS["NO"] == 15 and pii.IBAN_LENGTHS["LC"] == 32


@pytest.mark.parametrize(
    "ssn,ok",
    [
        ("328-34-6392", True),
        ("328 34 6392", True),
        ("001-01-0001", True),
        ("000-12-3456", False),
        ("666-12-3456", False),
        ("900-12-3456", False),
        ("987-65-4321", False),
        ("328-00-6392", False),
        ("328-34-0000", False),
        ("078-05-1120", False),
        ("219-09-9999", False),
        ("123-45-6789", False),
        ("111-11-1111", False),
    ],
)
def test_us_ssn(ssn, ok):
    assert pii.us_ssn(ssn) is ok


def test_github_token_checksum():
    token = "ghu_zymMlopiWfqUyHRSIf8NFmAUNLnY5Y0fCMcF"
    assert cred.github_token(token)
    assert cred.github_token("ghp_" + token[4:])  # the checksum covers the random part only
    assert not cred.github_token(token[:-1] + "G")
    assert not cred.github_token("ghx_" + token[4:])
    assert not cred.github_token("ghp_" + "x" * 36)
    assert cred.base62(0, 6) == "000000" and cred.base62(61, 2) == "0z"


def test_aws_access_key():
    assert cred.aws_access_key("AKIAN4QZIW6DIJ2HGHJS")
    assert cred.aws_access_key("ASIAZ7QRM2L5XKJ4TNVW")
    assert not cred.aws_access_key("AKIAIOSFODNN7EXAMPLE")  # AWS's documented example
    assert not cred.aws_access_key("AKIAN4QZIW6DIJ2HGHJ1")  # 1 is not base32
    assert not cred.aws_access_key("AIDAJQABLZS4A3QDU576Q")  # a user id, not a key id
    assert not cred.aws_access_key("AKIAXXXXXXXXXXXXXXXX")


def test_aws_secret_key():
    assert cred.aws_secret_key("ww0sAO/DGpUxjKbgRBWZRZX1VlxeVZ4DNCNnOBFX")
    assert not cred.aws_secret_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert not cred.aws_secret_key("ww0sAO/DGpUxjKbgRBWZRZX1VlxeVZ4DNCNnOBF")  # 39


def test_jwt():
    good = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'sub': 'u1', 'iat': 1})}.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    assert cred.jwt(good)
    assert not cred.jwt(f"{_b64({'typ': 'JWT'})}.{_b64({'sub': 'u1'})}.c2lnbmF0dXJlLXNpZ25hdHVyZQ")  # no alg
    assert not cred.jwt(f"{_b64({'alg': 'none'})}.bm90IGpzb24.c2lnbmF0dXJlLXNpZ25hdHVyZQ")  # payload not JSON
    assert not cred.jwt(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0Ijo"
        "xNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
    )  # jwt.io's sample
    assert not cred.jwt("a.b")


@pytest.mark.parametrize(
    "value",
    [
        "YOUR_API_KEY",
        "your-api-key-here",
        "xxxxxxxxxxxxxxxx",
        "<token>",
        "${VAR_NAME}",
        "{{ secret }}",
        "changeme123",
        "example-secret-1",
        "dummy_value_99",
        "test-token-1234",
        "aaaaaaaaaaaa",
        "abcdef123456",
        "1234567890ab",
        "os.environ.get",
        "process.env.STRIPE_SECRET_KEY",
        "OPENAI_API_KEY",
        "get_random_secret_key",
        "getApiKeyFromVault",
        "/oauth/token/refresh",
        "qwertyuiop12",
    ],
)
def test_placeholders(value):
    assert cred.placeholder(value)
    assert not cred.entropy(value)


@pytest.mark.parametrize(
    "value",
    [
        "c965RDmhwFayB48u1dUmi4Yh76JB8",
        "504ee8fa5a41c4e63cadaa62277c57d7",
        "Qm9Pq3Xt7Lk2Vb8Nf4Rj6Hs1Dz5Wc0Ya==",
        "k#8Lp!2vR@9zQw^4",
    ],
)
def test_entropy_accepts_random_values(value):
    assert not cred.placeholder(value)
    assert cred.entropy(value)


def test_entropy_measure():
    assert cred.shannon_entropy("") == 0.0
    assert cred.shannon_entropy("aaaa") == 0.0
    assert cred.shannon_entropy("abcd") == pytest.approx(2.0)
    assert not cred.entropy("short1")  # under 12 characters
    assert not cred.entropy("abcdefghijklmnop")  # one kind of character


def test_token():
    assert cred.token("sk_live_n23XGt1CqGqOlDsjmvGiZGoNwMHeoJBYjKavUYUzLY")
    assert cred.token("xoxb-318467386674-853114537338-neL7rDVFvMfSbdKfOi3AmB4Q")
    assert not cred.token("sk_live_xxxxxxxxxxxxxxxxxxxxxxxx")
    assert not cred.token("xoxb-your-bot-token")


def test_private_key():
    body = "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0"
    assert cred.private_key(f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----")
    assert cred.private_key(f"-----BEGIN PRIVATE KEY-----\\n{body}\\n-----END PRIVATE KEY-----")  # JSON-escaped
    assert not cred.private_key("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA...\n...\n-----END RSA PRIVATE KEY-----")


def test_url_password():
    assert cred.url_password("postgres://svc_billing:c965RDmhwFayB48u1dUmi4Yh76JB8@db")
    assert cred.url_password("redis://:Xq3m9vKJ2b4t8yZx@c")
    assert not cred.url_password("postgres://postgres:postgres@l")  # the image's default
    assert not cred.url_password("mysql://app:app@l")
    assert not cred.url_password("mysql://user:${DB_PASSWORD}@d")
    assert not cred.url_password("postgres://app@localhost")


@pytest.mark.parametrize(
    "address,ok",
    [
        ("maria.lopez@gmail.com", True),
        ("tsilva@contoso-health.org", True),
        ("k.w@uni-heidelberg.de", True),
        ("you@example.com", False),
        ("alice@example.org", False),
        ("jane@company.com", False),
        ("41898282+bot@users.noreply.github.com", False),
        ("noreply@acme.dev", False),
        ("git@github.com", False),
        ("logo@2x.png", False),
        ("ops@host.internal", False),
        ("a@b.test", False),
    ],
)
def test_email(address, ok):
    assert pii.email(address) is ok


@pytest.mark.parametrize(
    "number,ok",
    [
        ("+1 (290) 884-7893", True),
        ("+12908847893", True),
        ("+44 7911 583062", True),
        ("+49 160 95650241", True),
        ("+819037138942", True),
        ("+33 6 12 48 56 79", True),
        ("+91 98765 12804", True),
        ("+1 555 010 0199", False),  # NANP: exchange cannot start with 0; and 555-01xx is fiction
        ("+1 (415) 555-0123", False),  # 555-01xx: reserved for fiction
        ("+1 (115) 884-7893", False),  # area code starts with 1
        ("+44 20 7946 0000", False),  # Ofcom drama range
        ("+1234567", False),  # too short
        ("+999 123 456 789", False),  # unassigned country code
        ("+44 7911 123456", False),  # a run: placeholder
        ("12908847893", False),  # no +: national formats are not matched
    ],
)
def test_phone(number, ok):
    assert pii.phone(number) is ok


@pytest.mark.parametrize(("address", "ok"), [
    ("81.2.69.160", True),
    ("34.117.59.81", True),
    ("2a03:2880:f12f:83:face:b00c:0:25de", True),
    ("10.1.2.3", False),  # private
    ("172.31.255.1", False),
    ("192.168.0.1", False),
    ("100.64.0.1", False),  # shared (CGNAT)
    ("127.0.0.1", False),
    ("169.254.169.254", False),  # link-local: the cloud metadata service
    ("192.0.2.10", False),  # documentation
    ("224.0.0.251", False),  # multicast
    ("240.0.0.1", False),  # reserved
    ("8.8.8.8", False),  # a public resolver: a service, not anyone's
    ("1.2.3.4", False),  # single digits: a version more often than a host
    ("2001:db8::1", False),  # documentation
    ("fd00::1", False),  # unique local
    ("fe80::1", False),
    ("::ffff:81.2.69.160", False),  # IPv4-mapped: the IPv4 pattern judges IPv4
    ("2002:5102:45a0::1", False),  # 6to4
    ("2606:4700:4700::1111", False),
    ("256.1.1.1", False),
    ("1:2:3:4:5:6:7", False),
])
def test_public_ip(address, ok):
    assert pii.public_ip(address) is ok


def test_registry_names_every_validator():
    assert set(validators.VALIDATORS) >= {"luhn", "iban", "us_ssn", "github_token", "aws_access_key", "jwt", "entropy"}
    assert all(callable(f) for f in validators.VALIDATORS.values())
