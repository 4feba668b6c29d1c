"""The labeled corpus the guards are measured on, built deterministically from a seed.

Two sources, kept apart in every label:

- hand-written documents in this directory: benign traffic of coding agents
  (`benign_*.txt`, written before any pattern existed), injection attacks
  (`injection.txt`), and carriers (`carriers.txt`): the files, logs and messages a
  secret or a personal number ends up in;
- generated values: fake but format-valid credentials (GitHub tokens with their CRC32,
  AWS key ids, JWTs, PEM blocks, vendor keys…) and personal data (Luhn-valid cards,
  mod-97-valid IBANs, valid SSNs, E.164 phones, emails) planted into the carriers;
  obfuscated variants of the English injections (zero-width characters, homoglyphs,
  fullwidth forms, line breaks, tag characters, HTML comments, JSON strings); and benign
  documents from `benign_templates.txt` filled with the noise of real traffic (hashes,
  UUIDs, ids, timestamps, floats, base64 images).

`corpus(seed)` returns every document; `holdout()` the documents written after the
patterns were frozen (never used to tune them), measured apart;
`python -m tests.guard_corpus.build --out DIR` writes both as JSON lines.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import string
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240612

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class Doc:
    id: str
    place: str
    text: str
    kind: str
    source: str  # handwritten | generated | holdout
    category: str | None = None  # None: benign
    subcategory: str | None = None
    span: tuple[int, int] | None = None  # where the planted value is, when known


# --- reading the hand-written files -----------------------------------------------------


def _sections(name: str) -> Iterator[tuple[dict[str, str], str]]:
    """(header fields, body) for each `=== doc k=v ...` section of a data file."""
    header: dict[str, str] | None = None
    lines: list[str] = []
    for line in (HERE / name).read_text(encoding="utf-8").splitlines():
        if line.startswith("=== doc "):
            if header is not None:
                yield header, "\n".join(lines).strip("\n")
            header = dict(field.split("=", 1) for field in line[8:].split())
            lines = []
        elif header is not None:
            lines.append(line)
    if header is not None:
        yield header, "\n".join(lines).strip("\n")


def _unescape(text: str) -> str:
    return re.sub(r"\\U([0-9a-fA-F]{8})|\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1) or m.group(2), 16)), text)


def handwritten_benign() -> list[Doc]:
    docs = []
    for name in ("benign_code.txt", "benign_ops.txt", "benign_chat.txt"):
        for i, (h, body) in enumerate(_sections(name)):
            docs.append(Doc(f"{name[:-4]}:{i}", h["place"], body, h["kind"], "handwritten"))
    return docs


def handwritten_injections(name: str = "injection.txt", source: str = "handwritten") -> list[Doc]:
    docs = []
    for i, (h, body) in enumerate(_sections(name)):
        text = _unescape(body) if h.get("esc") == "1" else body
        docs.append(Doc(f"{name[:-4]}:{i}", h["place"], text, h["sub"], source, "injection", h["sub"]))
    return docs


def holdout() -> list[Doc]:
    """Documents written after the catalog was frozen and never used to tune it: a
    check on how the patterns generalise, reported apart from the main corpus."""
    benign = [
        Doc(f"holdout_benign:{i}", h["place"], body, h["kind"], "holdout")
        for i, (h, body) in enumerate(_sections("holdout_benign.txt"))
    ]
    return benign + handwritten_injections("holdout_injection.txt", "holdout")


# --- credentials -------------------------------------------------------------------------


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _base62(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 62)
        out = BASE62[r] + out
    return out.rjust(width, "0")


def github_token(rng: random.Random) -> str:
    random_part = _pick(rng, ALNUM, 30)
    return f"gh{rng.choice('pousr')}_{random_part}{_base62(zlib.crc32(random_part.encode()), 6)}"


def github_pat(rng: random.Random) -> str:
    return f"github_pat_{_pick(rng, ALNUM, 22)}_{_pick(rng, ALNUM, 59)}"


def aws_access_key(rng: random.Random) -> str:
    return rng.choice(["AKIA", "AKIA", "AKIA", "ASIA", "ABIA"]) + _pick(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)


def aws_secret_key(rng: random.Random) -> str:
    return _pick(rng, B64, 40)


def anthropic_key(rng: random.Random) -> str:
    kind = rng.choice(["api03", "api03", "api03", "admin01"])
    return f"sk-ant-{kind}-{_pick(rng, B64URL, 93)}AA"


def openai_key(rng: random.Random) -> str:
    style = rng.choice(["proj", "proj", "svcacct", "admin", "legacy"])
    if style == "legacy":
        return f"sk-{_pick(rng, ALNUM, 20)}T3BlbkFJ{_pick(rng, ALNUM, 20)}"
    n = rng.choice([58, 74])
    return f"sk-{style}-{_pick(rng, B64URL, n)}T3BlbkFJ{_pick(rng, B64URL, n)}"


def google_api_key(rng: random.Random) -> str:
    return "AIza" + _pick(rng, B64URL, 35)


def slack_token(rng: random.Random) -> str:
    style = rng.choice(["bot", "user", "webhook"])
    team, user = rng.randrange(10**9, 10**12), rng.randrange(10**9, 10**12)
    if style == "bot":
        return f"xoxb-{team}-{user}-{_pick(rng, ALNUM, 24)}"
    if style == "user":
        return f"xoxp-{team}-{user}-{rng.randrange(10**9, 10**12)}-{_pick(rng, HEX, 32)}"
    t, b = _pick(rng, string.ascii_uppercase + string.digits, 8), _pick(rng, string.ascii_uppercase + string.digits, 10)
    return f"https://hooks.slack.com/services/T{t}/B{b}/{_pick(rng, ALNUM, 24)}"


def stripe_key(rng: random.Random) -> str:
    prefix = rng.choice(["sk_live_", "sk_live_", "rk_live_"])
    return prefix + _pick(rng, ALNUM, rng.choice([24, 99]))


def gitlab_token(rng: random.Random) -> str:
    return "glpat-" + _pick(rng, B64URL, 20)


def huggingface_token(rng: random.Random) -> str:
    return "hf_" + _pick(rng, string.ascii_letters, 34)


def npm_token(rng: random.Random) -> str:
    return "npm_" + _pick(rng, ALNUM, 36)


def jwt(rng: random.Random) -> str:
    def enc(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

    alg = rng.choice(["HS256", "RS256", "ES256"])
    header = {"alg": alg, "typ": "JWT"} if rng.random() < 0.7 else {"alg": alg, "kid": _pick(rng, HEX, 16)}
    iat = rng.randrange(1_690_000_000, 1_720_000_000)
    payload = {"sub": f"user_{rng.randrange(10**6)}", "iat": iat, "exp": iat + 3600}
    if rng.random() < 0.5:
        payload["scope"] = rng.choice(["read:orders", "admin", "repo write:packages"])
    sig = _pick(rng, B64URL, {"HS256": 43, "RS256": 342, "ES256": 86}[alg])
    return f"{enc(header)}.{enc(payload)}.{sig}"


def private_key(rng: random.Random) -> str:
    kind, lead, n = rng.choice(
        [
            ("RSA PRIVATE KEY", "MIIEpAIBAAKCAQEA", 1580),
            ("PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", 1620),
            ("EC PRIVATE KEY", "MHcCAQEEI", 220),
            ("OPENSSH PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", 380),
        ]
    )
    body = lead + _pick(rng, B64, n - len(lead))
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"


_SECRET_NAMES = [
    ("DB_PASSWORD", "db_password"),
    ("POSTGRES_PASSWORD", "postgresPassword"),
    ("REDIS_PASSWORD", "redis_password"),
    ("SMTP_PASSWORD", "smtp_password"),
    ("API_SECRET", "api_secret"),
    ("CLIENT_SECRET", "clientSecret"),
    ("JWT_SECRET", "jwt_secret"),
    ("SESSION_SECRET", "sessionSecret"),
    ("APP_SECRET_KEY", "app_secret_key"),
    ("WEBHOOK_SECRET", "webhook_secret"),
    ("SECRET_KEY", "secret_key"),
    ("ACCESS_TOKEN", "accessToken"),
    ("AUTH_TOKEN", "auth_token"),
    ("API_KEY", "apiKey"),
    ("DATADOG_API_KEY", "datadog_api_key"),
    ("TWILIO_AUTH_TOKEN", "twilio_auth_token"),
    ("MAILGUN_API_KEY", "mailgun_api_key"),
    ("ENCRYPTION_KEY", "encryption_key"),
    ("ADMIN_PASSWORD", "admin_password"),
    ("PRIVATE_TOKEN", "private_token"),
]


def generic_secret(rng: random.Random) -> str:
    style = rng.choice(["alnum", "hex32", "hex64", "b64", "urlsafe", "password"])
    if style == "alnum":
        return _pick(rng, ALNUM, rng.randrange(20, 41))
    if style == "hex32":
        return _pick(rng, HEX, 32)
    if style == "hex64":
        return _pick(rng, HEX, 64)
    if style == "b64":
        return base64.b64encode(rng.randbytes(rng.choice([24, 32]))).decode()
    if style == "urlsafe":
        return base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode()
    return _pick(rng, ALNUM + "!@#%^&*", rng.randrange(16, 25))


def connection_string(rng: random.Random) -> str:
    user = rng.choice(["svc_billing", "app", "admin", "etl_reader", "web"])
    pw = _pick(rng, ALNUM, rng.randrange(14, 30))
    host = rng.choice(
        [
            "db.internal.acme.dev",
            "10.0.4.17",
            "prod-db-1.c9x2k.eu-west-1.rds.amazonaws.com",
            "cluster0.ab1cd.mongodb.net",
        ]
    )
    scheme, port, path = rng.choice(
        [
            ("postgres", 5432, "/billing"),
            ("postgresql", 5432, "/app"),
            ("mysql", 3306, "/shop"),
            ("mongodb+srv", None, "/orders"),
            ("redis", 6379, "/0"),
            ("amqp", 5672, "/prod"),
        ]
    )
    hostport = host if port is None else f"{host}:{port}"
    if scheme == "redis" and rng.random() < 0.5:
        return f"redis://:{pw}@{hostport}{path}"
    return f"{scheme}://{user}:{pw}@{hostport}{path}"


# subcategory -> (generator, [(NAME, key)], needs an assignment carrier)
CREDENTIALS: dict[str, tuple[Callable[[random.Random], str], list[tuple[str, str]], bool]] = {
    "github_token": (
        lambda r: github_token(r) if r.random() < 0.8 else github_pat(r),
        [("GITHUB_TOKEN", "github_token"), ("GH_TOKEN", "token"), ("GITHUB_PAT", "githubPat")],
        False,
    ),
    "aws_access_key": (aws_access_key, [("AWS_ACCESS_KEY_ID", "aws_access_key_id"), ("AWS_KEY", "accessKeyId")], False),
    "aws_secret_key": (
        aws_secret_key,
        [("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"), ("AWS_SECRET_ACCESS_KEY", "secretAccessKey")],
        True,
    ),
    "anthropic_key": (anthropic_key, [("ANTHROPIC_API_KEY", "anthropic_api_key"), ("CLAUDE_KEY", "apiKey")], False),
    "openai_key": (openai_key, [("OPENAI_API_KEY", "openai_api_key"), ("OPENAI_KEY", "openaiKey")], False),
    "google_api_key": (
        google_api_key,
        [("GOOGLE_API_KEY", "google_api_key"), ("GEMINI_API_KEY", "apiKey"), ("MAPS_API_KEY", "mapsKey")],
        False,
    ),
    "slack_token": (slack_token, [("SLACK_BOT_TOKEN", "slack_bot_token"), ("SLACK_WEBHOOK_URL", "webhook_url")], False),
    "stripe_key": (stripe_key, [("STRIPE_SECRET_KEY", "stripe_secret_key"), ("STRIPE_API_KEY", "stripeKey")], False),
    "gitlab_token": (gitlab_token, [("GITLAB_TOKEN", "gitlab_token"), ("CI_JOB_PAT", "private_token")], False),
    "huggingface_token": (huggingface_token, [("HF_TOKEN", "hf_token"), ("HUGGINGFACE_HUB_TOKEN", "hubToken")], False),
    "npm_token": (npm_token, [("NPM_TOKEN", "npm_token"), ("NODE_AUTH_TOKEN", "authToken")], False),
    "jwt": (jwt, [("SERVICE_JWT", "service_jwt"), ("ID_TOKEN", "idToken"), ("BEARER", "bearer")], False),
    "private_key": (private_key, [("TLS_KEY", "private_key"), ("SSH_KEY", "privateKey")], False),
    "generic_secret": (generic_secret, _SECRET_NAMES, True),
    "connection_string": (connection_string, [("DATABASE_URL", "database_url"), ("BROKER_URL", "brokerUrl")], False),
}


# --- personal data -----------------------------------------------------------------------


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, c in enumerate(reversed(body)):
        v = int(c)
        if i % 2 == 0:
            v = v * 2 - 9 if v > 4 else v * 2
        total += v
    return body + str((10 - total % 10) % 10)


def payment_card(rng: random.Random) -> str:
    network = rng.choice(["visa", "visa", "mc", "mc2", "amex", "discover"])
    if network == "visa":
        number = _luhn_complete("4", 16, rng)
    elif network == "mc":
        number = _luhn_complete(str(rng.randrange(51, 56)), 16, rng)
    elif network == "mc2":
        number = _luhn_complete(str(rng.randrange(2221, 2721)), 16, rng)
    elif network == "amex":
        number = _luhn_complete(rng.choice(["34", "37"]), 15, rng)
    else:
        number = _luhn_complete(rng.choice(["6011", "65"]), 16, rng)
    sep = rng.choice(["", " ", "-"])
    if not sep:
        return number
    groups = [4, 6, 5] if len(number) == 15 else [4, 4, 4, 4]
    out, i = [], 0
    for g in groups:
        out.append(number[i : i + g])
        i += g
    return sep.join(out)


# Country: (BBAN layout as (kind, count) runs: n digits, a upper-case letters, c alnum)
_IBAN_LAYOUTS = {
    "DE": [("n", 18)],
    "GB": [("a", 4), ("n", 14)],
    "FR": [("n", 10), ("c", 11), ("n", 2)],
    "NL": [("a", 4), ("n", 10)],
    "ES": [("n", 20)],
    "IT": [("a", 1), ("n", 10), ("c", 12)],
    "BE": [("n", 12)],
    "CH": [("n", 5), ("c", 12)],
    "PL": [("n", 24)],
    "SE": [("n", 20)],
    "AT": [("n", 16)],
    "IE": [("a", 4), ("n", 14)],
}


def iban(rng: random.Random) -> str:
    country = rng.choice(sorted(_IBAN_LAYOUTS))
    alphabets = {"n": string.digits, "a": string.ascii_uppercase, "c": string.ascii_uppercase + string.digits}
    bban = "".join(_pick(rng, alphabets[kind], count) for kind, count in _IBAN_LAYOUTS[country])
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    value = f"{country}{98 - int(numeric) % 97:02d}{bban}"
    if rng.random() < 0.5:
        return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def us_ssn(rng: random.Random) -> str:
    while True:
        area = rng.randrange(1, 900)
        if area != 666:
            break
    sep = rng.choice(["-", "-", " "])
    return f"{area:03d}{sep}{rng.randrange(1, 100):02d}{sep}{rng.randrange(1, 10000):04d}"


_FIRST = [
    "maria",
    "kenji",
    "amara",
    "lukas",
    "priya",
    "tomas",
    "sofia",
    "li",
    "noah",
    "fatima",
    "oliver",
    "chen",
    "aisha",
    "mateo",
    "hannah",
    "yusuf",
    "elena",
    "arjun",
    "grace",
    "diego",
]
_LAST = [
    "lopez",
    "watanabe",
    "okafor",
    "novak",
    "sharma",
    "reyes",
    "rossi",
    "wei",
    "smith",
    "haddad",
    "jensen",
    "kowalski",
    "mensah",
    "garcia",
    "mueller",
    "demir",
    "ivanova",
    "patel",
    "kim",
    "silva",
]
_DOMAINS = [
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "proton.me",
    "icloud.com",
    "acme-logistics.de",
    "northwind.io",
    "fabrikam.co",
    "contoso-health.org",
    "uni-heidelberg.de",
    "web.de",
    "hotmail.fr",
]


def email(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first}{last}",
            f"{first[0]}{last}",
            f"{first}_{last}{rng.randrange(100)}",
            f"{last}.{first}",
        ]
    )
    return f"{local}@{rng.choice(_DOMAINS)}"


def phone(rng: random.Random) -> str:
    style = rng.choice(["us", "uk", "de", "fr", "in", "br", "jp"])
    if style == "us":
        area, exch = rng.randrange(201, 990), rng.randrange(200, 1000)
        while exch == 555:
            exch = rng.randrange(200, 1000)
        line = rng.randrange(10000)
        return rng.choice(
            [
                f"+1{area}{exch}{line:04d}",
                f"+1 {area} {exch} {line:04d}",
                f"+1 ({area}) {exch}-{line:04d}",
                f"+1-{area}-{exch}-{line:04d}",
            ]
        )
    if style == "uk":
        n = f"7{rng.randrange(100, 1000)}{rng.randrange(100000, 1000000)}"
        return rng.choice([f"+44{n}", f"+44 {n[:4]} {n[4:]}"])
    if style == "de":
        n = f"{rng.choice(['151', '160', '170', '30', '89'])}{rng.randrange(1000000, 100000000)}"
        return rng.choice([f"+49{n}", f"+49 {n[:3]} {n[3:]}"])
    if style == "fr":
        n = f"{rng.choice('67')}{rng.randrange(10000000, 100000000)}"
        return rng.choice([f"+33{n}", f"+33 {n[0]} {n[1:3]} {n[3:5]} {n[5:7]} {n[7:]}"])
    if style == "in":
        n = f"{rng.choice('9876')}{rng.randrange(100000000, 1000000000)}"
        return rng.choice([f"+91{n}", f"+91 {n[:5]} {n[5:]}"])
    if style == "br":
        n = f"{rng.randrange(11, 100)}9{rng.randrange(10000000, 100000000)}"
        return rng.choice([f"+55{n}", f"+55 {n[:2]} {n[2:7]}-{n[7:]}"])
    n = f"{rng.choice(['90', '80', '70'])}{rng.randrange(10000000, 100000000)}"
    return rng.choice([f"+81{n}", f"+81 {n[:2]} {n[2:6]} {n[6:]}"])


PII: dict[str, tuple[Callable[[random.Random], str], list[tuple[str, str]]]] = {
    "payment_card": (payment_card, [("card number", "card_number"), ("card", "pan")]),
    "iban": (iban, [("IBAN", "iban"), ("bank account (IBAN)", "bank_iban")]),
    "us_ssn": (us_ssn, [("SSN", "ssn"), ("social security number", "social_security_number")]),
    "email": (email, [("email", "email"), ("contact email", "contact_email")]),
    "phone": (phone, [("phone", "phone"), ("mobile", "mobile_number")]),
}


def _plant(template: str, value: str, label: str, key: str) -> tuple[str, tuple[int, int]]:
    text = template.replace("«name»", label).replace("«key»", key).replace("«label»", label)
    start = text.index("«value»")
    return text.replace("«value»", value), (start, start + len(value))


def planted(rng: random.Random, per_subcategory: int) -> list[Doc]:
    carriers = list(_sections("carriers.txt"))
    assigning = (
        "env-file",
        "json-config",
        "python-hardcoded",
        "yaml-config",
        "shell-history",
        "git-diff",
        "docker-compose",
        "python-traceback",
        "notebook-cell",
        "toml-config",
        "tool-call",
        "model-answer",
    )
    docs = []
    for sub, (gen, names, needs_assignment) in CREDENTIALS.items():
        pool = [
            (h, b) for h, b in carriers if h["for"] == "credential" and (not needs_assignment or h["kind"] in assigning)
        ]
        for i in range(per_subcategory):
            h, body = pool[i % len(pool)]
            value = gen(rng)
            name, key = rng.choice(names)
            if "\n" in value and h["kind"] in ("json-config", "notebook-cell", "python-traceback", "tool-call"):
                value = value.replace("\n", "\\n")  # a PEM inside a JSON string: escaped newlines
            text, span = _plant(body, value, name, key)
            docs.append(Doc(f"credential:{sub}:{i}", h["place"], text, h["kind"], "generated", "credential", sub, span))
    for sub, (gen, labels) in PII.items():
        pool = [(h, b) for h, b in carriers if h["for"] == "pii"]
        for i in range(per_subcategory):
            h, body = pool[i % len(pool)]
            label, key = rng.choice(labels)
            text, span = _plant(body, gen(rng), label, key)
            docs.append(Doc(f"pii:{sub}:{i}", h["place"], text, h["kind"], "generated", "pii", sub, span))
    return docs


# --- disguised injections ----------------------------------------------------------------

_ZW = ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff"]
_LOOKALIKE = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "y": "у", "x": "х", "i": "і", "s": "ѕ"}


def _zero_width(text: str, rng: random.Random) -> str:
    return "".join(c + rng.choice(_ZW) if c.isalpha() and rng.random() < 0.3 else c for c in text)


def _homoglyphs(text: str, rng: random.Random) -> str:
    return "".join(_LOOKALIKE[c] if c in _LOOKALIKE and rng.random() < 0.5 else c for c in text)


def _fullwidth(text: str, rng: random.Random) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


def _line_breaks(text: str, rng: random.Random) -> str:
    return "".join(rng.choice(["\n", "\n  ", " \n", "\r\n"]) if c == " " and rng.random() < 0.4 else c for c in text)


def _tags(text: str, rng: random.Random) -> str:
    return "Thanks for reading! " + "".join(chr(0xE0000 + ord(c)) if " " <= c <= "~" else c for c in text)


def _html_comment(text: str, rng: random.Random) -> str:
    return (
        "<html><body>\n<h1>Release notes</h1>\n<p>Version 3.2 improves startup time.</p>\n"
        f"<!-- {text} -->\n<p>See the changelog for details.</p>\n</body></html>"
    )


def _markdown_page(text: str, rng: random.Random) -> str:
    return (
        f"# Setup guide\n\nInstall the package with `pip install fastparse`.\n\n> {text}\n\n"
        "## Usage\n\n```python\nimport fastparse\nfastparse.load('data.csv')\n```\n"
    )


def _json_field(text: str, rng: random.Random) -> str:
    return json.dumps(
        {
            "number": rng.randrange(100, 9999),
            "title": "Crash on startup",
            "state": "open",
            "body": text,
            "user": {"login": "octo-user"},
            "labels": ["bug"],
        }
    )


DISGUISES: dict[str, Callable[[str, random.Random], str]] = {
    "zero_width": _zero_width,
    "homoglyphs": _homoglyphs,
    "fullwidth": _fullwidth,
    "line_breaks": _line_breaks,
    "tags": _tags,
    "html_comment": _html_comment,
    "markdown": _markdown_page,
    "json": _json_field,
}


def disguised(rng: random.Random, injections: list[Doc]) -> list[Doc]:
    docs = []
    bases = [d for d in injections if d.text.isascii()]
    for name, disguise in DISGUISES.items():
        for j, base in enumerate(rng.sample(bases, min(20, len(bases)))):
            docs.append(
                Doc(
                    f"injection:{name}:{j}",
                    "tool_result",
                    disguise(base.text, rng),
                    f"{base.kind}+{name}",
                    "generated",
                    "injection",
                    base.subcategory,
                )
            )
    return docs


# --- benign noise ------------------------------------------------------------------------


def _uuid(rng: random.Random) -> str:
    h = _pick(rng, HEX, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{rng.choice('89ab')}{h[17:20]}-{h[20:]}"


FILLERS: dict[str, Callable[[random.Random], str]] = {
    "uuid": _uuid,
    "sha1": lambda r: _pick(r, HEX, 40),
    "sha256": lambda r: _pick(r, HEX, 64),
    "md5": lambda r: _pick(r, HEX, 32),
    "short_sha": lambda r: _pick(r, HEX, 7),
    "epoch": lambda r: str(r.randrange(1_600_000_000, 1_760_000_000)),
    "epoch_ms": lambda r: str(r.randrange(1_600_000_000_000, 1_760_000_000_000)),
    "iso_ts": lambda r: (
        f"2024-{r.randrange(1, 13):02d}-{r.randrange(1, 29):02d}T{r.randrange(24):02d}:"
        f"{r.randrange(60):02d}:{r.randrange(60):02d}.{r.randrange(1000):03d}Z"
    ),
    "float": lambda r: repr(r.random()),
    "small_int": lambda r: str(r.randrange(0, 100000)),
    "db_id": lambda r: str(r.randrange(1, 10**9)),
    "snowflake": lambda r: str(r.randrange(10**17, 2 * 10**18)),
    "trace_id": lambda r: str(r.randrange(10**18, 2**64)),
    "order_no": lambda r: f"ORD-{r.randrange(2019, 2025)}-{r.randrange(10**6):06d}",
    "invoice": lambda r: f"INV-{r.randrange(10000, 99999)}",
    "version": lambda r: f"{r.randrange(0, 20)}.{r.randrange(0, 40)}.{r.randrange(0, 30)}",
    "b64img": lambda r: "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA" + _pick(r, B64, r.randrange(200, 1200)) + "==",
    "ip": lambda r: f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
    "port": lambda r: str(r.randrange(1024, 65536)),
    "hexaddr": lambda r: "0x7f" + _pick(r, HEX, 10),
    "ms": lambda r: str(r.randrange(1, 5000)),
    "req_id": lambda r: "req_" + _pick(r, ALNUM, 24),
    "stripe_id": lambda r: r.choice(["cus_", "pi_", "ch_", "pm_", "in_", "sub_"]) + _pick(r, ALNUM, 24),
    "pod": lambda r: _pick(r, HEX, 10) + "-" + _pick(r, string.ascii_lowercase + string.digits, 5),
    "npm_integrity": lambda r: "sha512-" + base64.b64encode(r.randbytes(64)).decode(),
    "container": lambda r: _pick(r, HEX, 12),
    "isbn": lambda r: f"978-{r.randrange(10)}-{r.randrange(100, 1000)}-{r.randrange(10000, 100000)}-{r.randrange(10)}",
    "ga_id": lambda r: f"{r.randrange(10**9, 2 * 10**9)}.{r.randrange(1_600_000_000, 1_760_000_000)}",
    "percent": lambda r: f"{r.random() * 100:.1f}",
    "bytes": lambda r: str(r.randrange(10**3, 10**10)),
    "word": lambda r: r.choice(["orders", "invoices", "users", "sessions", "payments", "events", "builds"]),
    "money": lambda r: f"{r.randrange(1, 100000) / 100:.2f}",
    "tracking": lambda r: "1Z" + _pick(r, string.ascii_uppercase + string.digits, 16),
    "phone_local": lambda r: f"({r.randrange(200, 1000)}) 555-01{r.randrange(100):02d}",
}


def generated_benign(rng: random.Random, per_template: int) -> list[Doc]:
    docs = []
    slot = re.compile(r"«(\w+)»")
    for t, (h, body) in enumerate(_sections("benign_templates.txt")):
        for i in range(per_template):
            text = slot.sub(lambda m: FILLERS[m.group(1)](rng), body)
            docs.append(Doc(f"benign_gen:{h['kind']}:{t}:{i}", h["place"], text, h["kind"], "generated"))
    return docs


def bundles(rng: random.Random, benign: list[Doc], count: int) -> list[Doc]:
    """Big tool results: several benign documents read in one go (a multi-file read)."""
    pool = [d for d in benign if d.place == "tool_result"]
    docs = []
    for i in range(count):
        parts = rng.sample(pool, rng.randrange(4, 10))
        text = "\n\n".join(f"==> {d.kind}.txt <==\n{d.text}" for d in parts)
        docs.append(Doc(f"benign_bundle:{i}", "tool_result", text, "bundle", "generated"))
    return docs


def corpus(
    seed: int = SEED, *, per_subcategory: int = 30, per_template: int = 60, bundle_count: int = 300
) -> list[Doc]:
    rng = random.Random(seed)
    benign = handwritten_benign()
    benign += generated_benign(rng, per_template)
    benign += bundles(rng, benign, bundle_count)
    injections = handwritten_injections()
    return benign + injections + disguised(rng, injections) + planted(rng, per_subcategory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, required=True, help="directory for corpus.jsonl")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc in corpus(args.seed) + holdout():
            f.write(json.dumps(asdict(doc), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
