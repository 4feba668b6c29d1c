"""Validators for credentials: is a candidate a real secret, or a placeholder, a
reference to where the secret lives, a documented example?

A generic secret must look random (`entropy`, `token`); some formats carry their own
proof (a GitHub token's CRC32, a JWT's JSON parts). `placeholder` and `has_run` say what
is too regular or too telling to be a real value; the personal-data validators use
`has_run` too. Registered by name in `aiogw.guards.validators`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from collections import Counter
from itertools import pairwise

# --- values that are not secrets ------------------------------------------------------

# fmt: off
_PLACEHOLDER_WORDS = (
    "your", "example", "sample", "dummy", "placeholder", "changeme", "change_me", "change-me", "replace",
    "insert", "redacted", "fake", "test", "secret", "password", "passwd", "token", "apikey", "api_key",
    "api-key", "here", "todo", "fixme", "none", "null", "undefined", "xxxx", "****", "....", "<", ">",
    "${", "{{", "}}", "%(", "$(", "foobar", "lorem", "demo", "mock", "default", "my_", "my-", "sk-...",
)
# fmt: on
_DOTTED = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|::|->)[A-Za-z_$][\w$]*(?:\(\))?)+")  # os.environ, process.env.X
_ENV_NAME = re.compile(r"\$?[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")  # OPENAI_API_KEY
_SNAKE = re.compile(r"[a-z][a-z0-9]*(?:[_-][a-z0-9]+)+")  # get_secret_key, my-app-token
_CAMEL = re.compile(r"[a-z]+(?:[A-Z][a-z]+)+|(?:[A-Z][a-z]+){2,}")  # getApiKey, SecretManager
_PATH = re.compile(r"(?:~|\.{1,2})?/[\w.-]+(?:/[\w.-]*)*")  # /oauth/token, ./config/key.pem


def placeholder(value: str) -> bool:
    """Whether `value` is evidently not a real secret: a placeholder, a template slot,
    a reference to where the secret lives (an env var name, a code path), or too
    regular to be random (one repeated character, an alphabet or keyboard run)."""
    low = value.lower()
    if any(word in low for word in _PLACEHOLDER_WORDS):
        return True
    if len(set(value)) <= 3 or has_run(low):
        return True
    return bool(
        _DOTTED.fullmatch(value)
        or _ENV_NAME.fullmatch(value)
        or _SNAKE.fullmatch(value)
        or _CAMEL.fullmatch(value)
        or _PATH.fullmatch(value)
    )


def has_run(low: str, length: int = 6) -> bool:
    """An ascending or descending run (abcdef, 123456, 987654) or a repeat (aaaaaa)."""
    same = up = down = 1
    for a, b in pairwise(low):
        d = ord(b) - ord(a)
        same = same + 1 if d == 0 else 1
        up = up + 1 if d == 1 else 1
        down = down + 1 if d == -1 else 1
        if max(same, up, down) >= length:
            return True
    return "qwerty" in low or "asdfgh" in low


def shannon_entropy(value: str) -> float:
    """Bits per character of `value` taken as a sample of its own characters."""
    n = len(value)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


# --- generic secrets ---------------------------------------------------------------------


def entropy(value: str) -> bool:
    """A generic secret's value: at least 12 characters of at least two kinds (letters,
    digits, symbols), not a placeholder, with ≥ 3 bits/char."""
    if len(value) < 12 or placeholder(value):
        return False
    kinds = (any(c.isalpha() for c in value), any(c.isdigit() for c in value), any(not c.isalnum() for c in value))
    if sum(kinds) < 2:
        return False
    return shannon_entropy(value) >= 3.0


_VENDOR_PREFIX = re.compile(r"^[A-Za-z0-9]{2,12}[-_](?:[a-z]+\d*[-_])?")  # sk_live_, xoxb-, sk-ant-


def token(text: str) -> bool:
    """A vendor-prefixed token (Slack, Stripe, Google, Anthropic, OpenAI, GitLab…): the
    part after the prefix must not be a placeholder and must look random."""
    body = _VENDOR_PREFIX.sub("", text)
    return not placeholder(body) and shannon_entropy(body) >= 3.0


def private_key(text: str) -> bool:
    """A PEM private key block with a real body: enough base64 that is not `...`."""
    lines = [ln for ln in text.replace("\\n", "\n").splitlines() if ln and not ln.startswith("-----") and ":" not in ln]
    body = "".join(lines).replace(" ", "")
    low = body.lower()
    return (
        len(body) >= 40
        and "..." not in low
        and "xxxx" not in low
        and not has_run(low)
        and shannon_entropy(body) >= 4.0
    )


# Passwords of local databases started from their images' defaults: not secrets.
# fmt: off
_DEFAULT_PASSWORDS = frozenset(("postgres", "root", "admin", "guest", "mysql", "pass", "password", "secret", "example",
                                "changeme", "test", "dev", "user", "default", "letmein", "rabbitmq", "mongo", "redis"))
# fmt: on


def url_password(text: str) -> bool:
    """`scheme://user:password@host`: the password is not a placeholder or a template."""
    m = re.search(r"://([^:/@\s]*):([^@\s]*)@", text)
    if not m:
        return False
    user, password = m.group(1), m.group(2)
    if password.lower() in _DEFAULT_PASSWORDS or password == user:
        return False
    return len(password) >= 6 and not placeholder(password) and not password.startswith(("$", "%", "{"))



# --- checksums and structures ------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_BASE62[r])
    return "".join(reversed(out)).rjust(width, "0")


def github_token(text: str) -> bool:
    """A GitHub token (ghp_, gho_, ghu_, ghs_, ghr_): 30 random base62 characters then
    6 of checksum, the CRC32 of the random part written in base62."""
    if len(text) != 40 or text[:2] != "gh" or text[2] not in "pousr" or text[3] != "_":
        return False
    random, check = text[4:34], text[34:]
    return base62(zlib.crc32(random.encode()), 6) == check


_AWS_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA")
_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")


def aws_access_key(text: str) -> bool:
    """An AWS access key id: AKIA (long-term), ASIA (STS), ABIA, ACCA or A3T? then 16
    base32 characters; not AWS's documented ...EXAMPLE key nor a placeholder."""
    if len(text) != 20 or not (text.startswith(_AWS_PREFIXES) or text.startswith("A3T")):
        return False
    rest = text[4:]
    return set(rest) <= _BASE32 and not text.endswith("EXAMPLE") and not placeholder(rest) and len(set(rest)) > 6


def aws_secret_key(value: str) -> bool:
    """The 40-character secret access key (the value assigned to aws_secret_access_key)."""
    return len(value) == 40 and "EXAMPLE" not in value and not placeholder(value) and shannon_entropy(value) >= 4.0


def _b64url_json(part: str) -> object:
    try:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


# The token on jwt.io's front page, pasted into countless tutorials.
_JWT_IO_SIGNATURE = "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"


def jwt(text: str) -> bool:
    """A JSON Web Token: three base64url parts, a header that is a JSON object with
    "alg", a payload that is a JSON object; not the jwt.io sample."""
    parts = text.split(".")
    if len(parts) != 3 or not parts[2] or parts[2].startswith(_JWT_IO_SIGNATURE[:20]):
        return False
    header, payload = _b64url_json(parts[0]), _b64url_json(parts[1])
    return isinstance(header, dict) and "alg" in header and isinstance(payload, dict)



# The storage emulator's (Azurite's) account key: published, in every tutorial.
_AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azure_storage_key(text: str) -> bool:
    """An Azure storage account key: 64 bytes of base64, not the emulator's."""
    return text != _AZURITE_KEY and token(text)
