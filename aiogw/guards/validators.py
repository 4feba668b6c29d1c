"""Checks a candidate must pass before the engine reports it: `(text) -> bool`.

An expression finds what has the *shape* of a secret or a personal number; a validator
decides whether it is one: a checksum (cards, IBANs, GitHub tokens), the rules of a
numbering plan (SSNs, phone numbers), a structure (JWTs), or the look of a real value
rather than a placeholder. Each receives the matched text only and must be cheap: it
runs per candidate, never over a whole text. The catalog names them in `validator`;
`VALIDATORS` is the registry it checks names against.

Well-known example values (the Stripe test cards, AWS's documented example key, the
jwt.io sample token, the IBANs every bank's documentation uses) are format-valid but
public: they are rejected here, so a Stripe integration or an SDK's README is not PII.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
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
    if len(set(value)) <= 3 or _has_run(low):
        return True
    return bool(
        _DOTTED.fullmatch(value)
        or _ENV_NAME.fullmatch(value)
        or _SNAKE.fullmatch(value)
        or _CAMEL.fullmatch(value)
        or _PATH.fullmatch(value)
    )


def _has_run(low: str, length: int = 6) -> bool:
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
        and not _has_run(low)
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


# --- checksums and numbering plans -----------------------------------------------------

# Public test numbers of the card networks and payment providers (Stripe, Adyen, Braintree
# docs): they are in every payment integration's tests and README.
# fmt: off
_TEST_CARDS = frozenset({
    "4242424242424242", "4000056655665556", "5555555555554444", "2223003122003222", "5200828282828210",
    "5105105105105100", "378282246310005", "371449635398431", "6011111111111117", "6011000990139424",
    "3056930009020004", "36227206271667", "3566002020360505", "6200000000000005", "4111111111111111",
    "4012888888881881", "4222222222222", "5431111111111111", "4000000000000077", "4000000000000002",
    "4000000000009995", "4000002500003155", "4000000000003220", "5454545454545454", "4917610000000000",
    "378734493671000", "6011000000000004", "3530111333300000", "30569309025904", "38520000023237",
    "4988438843884305", "5101180000000007", "2222400070000005", "4444333322221111", "4035501000000008",
})
# fmt: on


def _card_network_ok(d: str) -> bool:
    n = len(d)
    if d[0] == "4":
        return n in (13, 16, 19)
    if d[:2] in ("34", "37"):
        return n == 15
    two, four, six = int(d[:2]), int(d[:4]), int(d[:6])
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if d[:4] == "6011" or d[:2] == "65" or 644 <= int(d[:3]) <= 649 or 622126 <= six <= 622925:
        return 16 <= n <= 19
    if 3528 <= four <= 3589:
        return 16 <= n <= 19
    if 300 <= int(d[:3]) <= 305 or d[:2] in ("36", "38", "39"):
        return 14 <= n <= 19
    if d[:2] == "62":
        return 16 <= n <= 19
    return False


def luhn(text: str) -> bool:
    """A payment card number: 13–19 digits of a known network (by IIN prefix and
    length), a correct Luhn check digit, not a public test number, no long repeat."""
    d = "".join(c for c in text if c.isdigit())
    if not 13 <= len(d) <= 19 or not _card_network_ok(d) or d in _TEST_CARDS:
        return False
    if re.search(r"(\d)\1{7}", d):
        return False
    total = 0
    for i, c in enumerate(reversed(d)):
        v = ord(c) - 48
        if i % 2:
            v = v * 2 - 9 if v > 4 else v * 2
        total += v
    return total % 10 == 0


# IBAN length per country (the SWIFT IBAN registry).
# fmt: off
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
# fmt: on
# The registry's own examples, reused by every bank's and library's documentation.
# fmt: off
_EXAMPLE_IBANS = frozenset({
    "DE89370400440532013000", "GB29NWBK60161331926819", "GB82WEST12345698765432", "FR1420041010050500013M02606",
    "NL91ABNA0417164300", "ES9121000418450200051332", "IT60X0542811101000000123456", "BE68539007547034",
    "CH9300762011623852957", "AT611904300234573201",
})
# fmt: on


def iban(text: str) -> bool:
    """An IBAN: a known country, that country's length, alphanumeric, mod-97 == 1."""
    s = text.replace(" ", "").upper()
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not s.isalnum() or not s[2:4].isdigit() or s in _EXAMPLE_IBANS:
        return False
    digits = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(digits) % 97 == 1


# Numbers printed in advertising (wallet inserts, the SSA's own leaflet, an ad campaign)
# and the universal placeholder; the 987-65-432x range the SSA reserves for ads is in
# the 900 series already.
_AD_SSNS = frozenset({"078051120", "219099999", "457555462", "123456789"})


def us_ssn(text: str) -> bool:
    """A US Social Security number: area not 000, 666 or 9xx; group not 00; serial
    not 0000; not an advertising number or one digit repeated."""
    d = "".join(c for c in text if c.isdigit())
    if len(d) != 9 or d in _AD_SSNS or len(set(d)) == 1:
        return False
    area, group, serial = d[:3], d[3:5], d[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


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


# --- personal data ---------------------------------------------------------------------

_RESERVED_DOMAINS = frozenset(
    (
        "example.com",
        "example.org",
        "example.net",
        "test.com",
        "domain.com",
        "email.com",
        "company.com",
        "acme.com",
        "yourdomain.com",
        "mydomain.com",
        "sentry.io",
    )
)
_RESERVED_TLDS = frozenset(("example", "test", "invalid", "localhost", "local", "internal", "lan"))
# File extensions that look like a TLD after `name@2x.`: retina images, module paths.
_FILE_EXTENSIONS = frozenset(
    "png jpg jpeg gif svg webp ico bmp js mjs cjs ts tsx jsx css scss json yaml yml toml "
    "py rb go rs java kt md txt html htm xml lock zip gz tgz whl map wasm so dll".split()
)
_ROLE_LOCALS = frozenset(
    (
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
        "git",
        "user",
        "username",
        "name",
        "you",
        "your.name",
        "yourname",
        "someone",
        "somebody",
        "email",
        "foo",
        "bar",
        "test",
    )
)


def email(text: str) -> bool:
    """An email address of a person at a real domain: not a reserved or documentation
    domain (RFC 2606/6761), not a role or placeholder mailbox (noreply, git@ for ssh,
    you@), not a file name such as `logo@2x.png`. Runs on every address: kept cheap."""
    local, _, domain = text.rpartition("@")
    domain = domain.lower()
    if "noreply" in domain:
        return False
    labels = domain.rsplit(".", 2)
    tld = labels[-1]
    if tld in _RESERVED_TLDS or tld in _FILE_EXTENSIONS or ".".join(labels[-2:]) in _RESERVED_DOMAINS:
        return False
    low = local.lower()
    return low not in _ROLE_LOCALS and "noreply" not in low and not labels[0].startswith(("2x", "3x"))


# Country calling codes (ITU-T E.164 assignments). One-digit: 1 (NANP) and 7.
# fmt: off
_CC2 = frozenset({20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54, 55, 56,
                  57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98})
_CC3 = frozenset([211, 212, 213, 216, 218, *range(220, 259), *range(260, 270), 290, 291, 297, 298, 299,
                  *range(350, 360), *range(370, 384), 385, 386, 387, 389, 420, 421, 423, *range(500, 510),
                  *range(590, 600), *range(670, 693), 850, 852, 853, 855, 856, 880, 886, *range(960, 969),
                  *range(970, 978), 992, 993, 994, 995, 996, 998])
# fmt: on


# Ranges Ofcom reserves for drama and documentation (020 7946 0xxx, 07700 900xxx, the
# 0113…0161 496 0xxx series), as digits with the country code.
_FICTION_PREFIXES = (
    "442079460",
    "447700900",
    "441134960",
    "441144960",
    "441154960",
    "441164960",
    "441174960",
    "441184960",
    "441214960",
    "441314960",
    "441414960",
    "441514960",
    "441614960",
)


def phone(text: str) -> bool:
    """An international phone number (+CC ...): 8–15 digits in all (E.164), an assigned
    country code, for +1 a valid NANP area code and exchange (not the 555-01xx numbers
    reserved for fiction), not a UK drama number, not a placeholder run (1234567)."""
    d = "".join(c for c in text if c.isdigit())
    if not 8 <= len(d) <= 15 or not text.lstrip().startswith("+"):
        return False
    if len(set(d[1:])) <= 2 or _has_run(d[-7:], 6):
        return False
    if d[0] == "1":
        if len(d) != 11 or d[1] in "01" or d[4] in "01":
            return False
        return not (d[4:7] == "555" and d[7:9] == "01")
    if d[0] == "7":
        return len(d) == 11
    if d.startswith(_FICTION_PREFIXES):
        return False
    if int(d[:2]) in _CC2:
        return len(d) - 2 >= 7
    return int(d[:3]) in _CC3 and len(d) - 3 >= 6


VALIDATORS: Mapping[str, Callable[[str], bool]] = {
    "luhn": luhn,
    "iban": iban,
    "us_ssn": us_ssn,
    "github_token": github_token,
    "aws_access_key": aws_access_key,
    "aws_secret_key": aws_secret_key,
    "jwt": jwt,
    "entropy": entropy,
    "token": token,
    "private_key": private_key,
    "url_password": url_password,
    "email": email,
    "phone": phone,
}
