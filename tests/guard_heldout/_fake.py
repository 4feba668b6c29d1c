"""Fake but format-valid secrets and personal data.

Formats follow public documentation: prefixes, lengths and alphabets, plus the
checksums a format has (GitHub and npm tokens end in a base62 CRC-32 of their random
part; cards pass Luhn; IBANs pass mod-97 and, for BE/NL/ES/FR, their national check;
SSNs avoid the never-issued areas; Azure keys are base64 of the right byte count).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
import string
import uuid

from . import _keys

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64URL = ALNUM + "-_"


def pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# -- tokens --------------------------------------------------------------------------


def _b62_crc(body: str) -> str:
    v = binascii.crc32(body.encode())
    out = ""
    while v:
        v, r = divmod(v, 62)
        out = B62[r] + out
    return out.rjust(6, "0")


def github(rng: random.Random, prefix: str = "ghp") -> str:
    body = pick(rng, ALNUM, 30)
    return f"{prefix}_{body}{_b62_crc(body)}"


def github_pat(rng: random.Random) -> str:
    return f"github_pat_11{pick(rng, string.ascii_uppercase + string.digits, 20)}_{pick(rng, ALNUM, 59)}"


def npm(rng: random.Random) -> str:
    body = pick(rng, ALNUM, 30)
    return f"npm_{body}{_b62_crc(body)}"


GITLAB_KINDS = {
    "glpat": ("glpat-", B64URL, 20),
    "gldt": ("gldt-", B64URL, 20),
    "glrt": ("glrt-", B64URL, 20),
    "glft": ("glft-", B64URL, 20),
    "glsoat": ("glsoat-", B64URL, 20),
    "glptt": ("glptt-", HEX, 40),
    "gloas": ("gloas-", B64URL, 64),
    "glimt": ("glimt-", B64URL, 25),
    "GR1348941": ("GR1348941", B64URL, 20),
}


def gitlab(rng: random.Random, kind: str = "glpat") -> str:
    prefix, alpha, n = GITLAB_KINDS[kind]
    while True:
        tail = pick(rng, alpha, n)
        if tail[0] not in "-_" and tail[-1] not in "-_":
            return prefix + tail


def pypi(rng: random.Random) -> str:
    """A macaroon with PyPI's v2 framing: location pypi.org, a UUID identifier, caveats."""

    def field(t: int, data: bytes) -> bytes:
        return bytes([t, len(data)]) + data

    ident = uid(rng).encode()
    caveat1 = json.dumps([1, rng.getrandbits(60)]).encode()
    caveat2 = json.dumps([2, [uid(rng)]] if rng.random() < 0.5 else [3, rng.getrandbits(31), 0]).encode()
    raw = (
        b"\x02"
        + field(1, b"pypi.org")
        + field(2, ident)
        + b"\x00"
        + field(2, b'{"version": 1, "permissions": "user"}' if rng.random() < 0.4 else caveat1)
        + b"\x00"
        + field(2, caveat2)
        + b"\x00\x00"
        + field(6, rng.randbytes(32))
    )
    return "pypi-" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def docker_pat(rng: random.Random) -> str:
    return "dckr_pat_" + pick(rng, B64URL, 27)


def huggingface(rng: random.Random) -> str:
    return "hf_" + pick(rng, string.ascii_letters, 34)


def slack_bot(rng: random.Random) -> str:
    return f"xoxb-{rng.randint(10**10, 10**12)}-{rng.randint(10**11, 10**13)}-{pick(rng, ALNUM, 24)}"


def slack_user(rng: random.Random) -> str:
    return (
        f"xoxp-{rng.randint(10**10, 10**12)}-{rng.randint(10**10, 10**12)}-"
        f"{rng.randint(10**11, 10**13)}-{pick(rng, HEX, 32)}"
    )


def slack_app(rng: random.Random) -> str:
    return f"xapp-1-A{pick(rng, string.ascii_uppercase + string.digits, 10)}-{rng.randint(10**12, 10**13)}-{pick(rng, HEX, 64)}"


def slack_webhook(rng: random.Random) -> str:
    up = string.ascii_uppercase + string.digits
    return f"https://hooks.slack.com/services/T{pick(rng, up, 8)}/B{pick(rng, up, 10)}/{pick(rng, ALNUM, 24)}"


def stripe(rng: random.Random, prefix: str = "sk_live_") -> str:
    if rng.random() < 0.5:
        return prefix + pick(rng, ALNUM, 24)
    return prefix + "51" + pick(rng, ALNUM, 97)


def twilio_sid(rng: random.Random) -> str:
    return "AC" + pick(rng, HEX, 32)


def twilio_key(rng: random.Random) -> str:
    return "SK" + pick(rng, HEX, 32)


def sendgrid(rng: random.Random) -> str:
    return f"SG.{pick(rng, B64URL, 22)}.{pick(rng, B64URL, 43)}"


def shopify(rng: random.Random, prefix: str = "shpat_") -> str:
    return prefix + pick(rng, HEX, 32)


def digitalocean(rng: random.Random, prefix: str = "dop_v1_") -> str:
    return prefix + pick(rng, HEX, 64)


def atlassian(rng: random.Random) -> str:
    return "ATATT3xFfGF0" + pick(rng, B64URL, 171) + "=" + pick(rng, HEX.upper(), 8)


def vault(rng: random.Random, legacy: bool = False) -> str:
    if legacy:
        return "s." + pick(rng, ALNUM, 24)
    return "hvs.CAESI" + pick(rng, B64URL, 86) + pick(rng, ALNUM, 4)


def terraform(rng: random.Random) -> str:
    return pick(rng, string.ascii_letters + string.digits, 14) + ".atlasv1." + pick(rng, B64URL, 67)


def databricks(rng: random.Random) -> str:
    return "dapi" + pick(rng, HEX, 32) + ("-2" if rng.random() < 0.3 else "")


def datadog_api(rng: random.Random) -> str:
    return pick(rng, HEX, 32)


def datadog_app(rng: random.Random) -> str:
    return pick(rng, HEX, 40)


def azure_account_key(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(64)).decode()


def azure_sas_key(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(32)).decode()


def aws_key_id(rng: random.Random, prefix: str = "AKIA") -> str:
    return prefix + pick(rng, string.ascii_uppercase + "234567", 16)


def aws_secret(rng: random.Random) -> str:
    return base64.b64encode(rng.randbytes(30)).decode()


def aws_session_token(rng: random.Random) -> str:
    return "IQoJb3JpZ2luX2VjE" + base64.b64encode(rng.randbytes(rng.randint(400, 600))).decode()


def openai(rng: random.Random) -> str:
    kind = rng.choice(["proj", "proj", "svcacct", "legacy"])
    if kind == "legacy":
        return "sk-" + pick(rng, ALNUM, 20) + "T3BlbkFJ" + pick(rng, ALNUM, 20)
    n = rng.choice([74, 58])
    return f"sk-{kind}-" + pick(rng, B64URL, n) + "T3BlbkFJ" + pick(rng, B64URL, n)


def anthropic(rng: random.Random, admin: bool = False) -> str:
    head = "sk-ant-admin01-" if admin else "sk-ant-api03-"
    return head + pick(rng, B64URL, 93) + "AA"


def gcp_api_key(rng: random.Random) -> str:
    return "AIza" + pick(rng, B64URL, 35)


def jwt(rng: random.Random, claims: dict, alg: str = "HS256") -> str:
    header = {"alg": alg, "typ": "JWT"}
    if alg != "HS256":
        header["kid"] = pick(rng, B64URL, 22)
    h = _keys.b64u(json.dumps(header, separators=(",", ":")).encode())
    p = _keys.b64u(json.dumps(claims, separators=(",", ":")).encode())
    if alg == "HS256":
        sig = hmac.new(rng.randbytes(32), f"{h}.{p}".encode(), hashlib.sha256).digest()
    else:
        sig = rng.randbytes(256)
    return f"{h}.{p}.{_keys.b64u(sig)}"


# -- passwords -------------------------------------------------------------------------

_WORDS = (
    "falcon harbor maple quartz velvet ember cobalt orchid tundra saffron lantern juniper "
    "granite monsoon walnut cinder pelican mosaic thistle glacier copper meadow raven "
    "sierra paprika nebula cactus biscuit willow marble lagoon"
).split()


def password(rng: random.Random, url_safe: bool = False) -> str:
    style = rng.randrange(4)
    sym = "-_.~" if url_safe else "!#$%&*+-=?^_"
    if style == 0:
        while True:
            p = pick(rng, ALNUM + sym, rng.randint(14, 24))
            if any(c.isdigit() for c in p) and any(c.isupper() for c in p):
                return p
    if style == 1:
        return rng.choice(_WORDS).capitalize() + str(rng.randint(10, 9999)) + rng.choice(sym)
    if style == 2:
        return "-".join(rng.sample(_WORDS, 3)) + str(rng.randint(1, 99))
    return base64.urlsafe_b64encode(rng.randbytes(24)).decode().rstrip("=")


# -- personal data -----------------------------------------------------------------------

FIRST = (
    "Amelia Tomasz Priya Kenji Lucía Oluwaseun Ingrid Mateo Fatima Dmitri Siobhan Hao "
    "Isabela Arjun Noor Henrik Chiara Kwame Yuki Rafael Leila Bogdan Aoife Thanh Camille "
    "Emeka Sofia Jonas Mariam Diego Hannah Ravi Elif Pieter Grace Tariq Margot Ji-woo"
).split()
LAST = (
    "Kowalczyk Okafor Lindqvist Nakamura Fernández Achterberg Haddad Moreau Petrov "
    "Gallagher Nguyen Rossi Mensah Varga Iyer Schneider Dubois Kaplan Oyelaran Castillo "
    "Johansson Takahashi Brennan Silva Novak Abiodun Horvath Kim Lefebvre Yilmaz Walsh"
).split()
MAIL_DOMAINS = (
    "gmail.com outlook.com yahoo.co.uk proton.me gmx.de web.de icloud.com hotmail.fr "
    "fastmail.com mail.ru libero.it orange.fr seznam.cz"
).split()
ORG_DOMAINS = (
    "northwind-freight.com tallgrass.io pinecrest-health.org kestrel.dev brightwater.co.uk halvorsen.no".split()
)


def person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def _ascii(s: str) -> str:
    table = str.maketrans("áéíóúñüöäåçøğı", "aeiounuoaacogi")
    return s.lower().translate(table).replace("-", "")


def email(rng: random.Random, first: str | None = None, last: str | None = None) -> str:
    if first is None:
        first, last = person(rng)
    f, l_ = _ascii(first), _ascii(last)
    local = rng.choice(
        [f"{f}.{l_}", f"{f[0]}{l_}", f"{f}{rng.randint(1, 99)}", f"{l_}.{f}", f"{f}_{l_}{rng.randint(70, 99)}"]
    )
    dom = rng.choice(MAIL_DOMAINS if rng.random() < 0.6 else ORG_DOMAINS)
    return f"{local}@{dom}"


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return body + str((10 - total % 10) % 10)


def luhn_ok(num: str) -> bool:
    digits = [int(c) for c in num if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_KNOWN_TEST_CARDS = {"4242424242424242", "4111111111111111", "5555555555554444", "378282246310005", "4000056655665556"}


def card(rng: random.Random, brand: str | None = None, sep: str | None = None) -> str:
    brand = brand or rng.choice(["visa", "visa", "mc", "mc2", "amex", "discover", "jcb", "diners"])
    spec = {
        "visa": (str(rng.choice([4147, 4532, 4716, 4929, 4485, 4024])) + str(rng.randint(10, 99)), 16),
        "mc": (str(rng.randint(51, 55)) + str(rng.randint(1000, 9999)), 16),
        "mc2": (str(rng.randint(2221, 2720)) + str(rng.randint(10, 99)), 16),
        "amex": (rng.choice(["34", "37"]) + str(rng.randint(1000, 9999)), 15),
        "discover": ("6011" + str(rng.randint(10, 99)), 16),
        "jcb": (str(rng.randint(3528, 3589)) + str(rng.randint(10, 99)), 16),
        "diners": ("36" + str(rng.randint(1000, 9999)), 14),
    }[brand]
    while True:
        num = luhn_complete(spec[0], spec[1], rng)
        if num not in _KNOWN_TEST_CARDS and len(set(num[6:])) > 3:
            break
    if sep is None:
        sep = rng.choice(["", " ", "-", " "])
    if not sep:
        return num
    if len(num) == 15:
        groups = [num[:4], num[4:10], num[10:]]
    elif len(num) == 14:
        groups = [num[:4], num[4:10], num[10:]]
    else:
        groups = [num[i : i + 4] for i in range(0, 16, 4)]
    return sep.join(groups)


def ssn(rng: random.Random, style: str = "-") -> str:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    group, serial = rng.randint(1, 99), rng.randint(1, 9999)
    if (area, group, serial) in ((78, 5, 1120), (123, 45, 6789), (219, 9, 9999)):
        return ssn(rng, style)
    if style == "":
        return f"{area:03d}{group:02d}{serial:04d}"
    return f"{area:03d}{style}{group:02d}{style}{serial:04d}"


# IBAN: (length, bban builder)
def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _letters(rng: random.Random, n: int) -> str:
    return pick(rng, string.ascii_uppercase, n)


def _alnum(rng: random.Random, n: int) -> str:
    return pick(rng, string.ascii_uppercase + string.digits, n)


def _be_bban(rng):
    first = _digits(rng, 10)
    chk = int(first) % 97 or 97
    return first + f"{chk:02d}"


def _nl_bban(rng):
    bank = rng.choice(["ABNA", "INGB", "RABO", "SNSB", "TRIO", "KNAB"])
    while True:
        acct = _digits(rng, 10)
        if acct[0] != "0" and sum(int(c) * w for c, w in zip(acct, range(10, 0, -1), strict=True)) % 11 == 0:
            return bank + acct


def _es_bban(rng):
    bank, branch, acct = _digits(rng, 4), _digits(rng, 4), _digits(rng, 10)
    w = [1, 2, 4, 8, 5, 10, 9, 7, 3, 6]

    def dc(s):
        v = 11 - sum(int(c) * w[i] for i, c in enumerate(s)) % 11
        return {10: 1, 11: 0}.get(v, v)

    return f"{bank}{branch}{dc('00' + bank + branch)}{dc(acct)}{acct}"


def _fr_bban(rng):
    bank, branch, acct = _digits(rng, 5), _digits(rng, 5), _digits(rng, 11)
    key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(acct)) % 97
    return f"{bank}{branch}{acct}{key:02d}"


IBAN_BBAN = {
    "DE": lambda r: _digits(r, 18),
    "GB": lambda r: r.choice(["NWBK", "BARC", "LOYD", "HBUK", "MIDL", "MONZ"]) + _digits(r, 14),
    "FR": _fr_bban,
    "ES": _es_bban,
    "NL": _nl_bban,
    "BE": _be_bban,
    "IT": lambda r: _letters(r, 1) + _digits(r, 10) + _digits(r, 12),
    "AT": lambda r: _digits(r, 16),
    "CH": lambda r: _digits(r, 5) + _alnum(r, 12),
    "PL": lambda r: _digits(r, 24),
    "SE": lambda r: _digits(r, 20),
    "DK": lambda r: _digits(r, 14),
    "FI": lambda r: _digits(r, 14),
    "IE": lambda r: r.choice(["AIBK", "BOFI", "IPBS"]) + _digits(r, 14),
    "PT": lambda r: _digits(r, 21),
    "CZ": lambda r: _digits(r, 20),
    "NO": lambda r: _digits(r, 11),
    "LU": lambda r: _digits(r, 3) + _alnum(r, 13),
    "HU": lambda r: _digits(r, 24),
    "RO": lambda r: _letters(r, 4) + _alnum(r, 16),
    "GR": lambda r: _digits(r, 7) + _alnum(r, 16),
    "TR": lambda r: _digits(r, 5) + "0" + _alnum(r, 16),
    "SA": lambda r: _digits(r, 2) + _alnum(r, 18),
    "AE": lambda r: _digits(r, 3) + _digits(r, 16),
    "HR": lambda r: _digits(r, 17),
}


def iban_check(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    num = "".join(str(int(c, 36)) for c in rearranged)
    return f"{98 - int(num) % 97:02d}"


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "")
    s = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in s)) % 97 == 1


def iban(rng: random.Random, country: str | None = None, grouped: bool | None = None) -> str:
    country = country or rng.choice(sorted(IBAN_BBAN))
    bban = IBAN_BBAN[country](rng)
    raw = country + iban_check(country, bban) + bban
    if grouped is None:
        grouped = rng.random() < 0.5
    return " ".join(raw[i : i + 4] for i in range(0, len(raw), 4)) if grouped else raw


# IPs --------------------------------------------------------------------------------------

_NON_PUBLIC_V4 = [
    (0, 8),
    (10, 8),
    (100 << 24 | 64 << 16, 10),
    (127, 8),
    (169 << 24 | 254 << 16, 16),
    (172 << 24 | 16 << 16, 12),
    (192 << 24 | 0 << 16 | 0 << 8, 24),
    (192 << 24 | 0 << 16 | 2 << 8, 24),
    (192 << 24 | 168 << 16, 16),
    (198 << 24 | 18 << 16, 15),
    (198 << 24 | 51 << 16 | 100 << 8, 24),
    (203 << 24 | 0 << 16 | 113 << 8, 24),
    (224, 4),
    (240, 4),
]


def _v4_public(v: int) -> bool:
    for base, bits in _NON_PUBLIC_V4:
        if base < 256:
            base <<= 24
        if v >> (32 - bits) == base >> (32 - bits):
            return False
    octets = [(v >> s) & 255 for s in (24, 16, 8, 0)]
    return octets[3] not in (0, 255) and (octets[0], octets[1], octets[2], octets[3]) not in (
        (8, 8, 8, 8),
        (1, 1, 1, 1),
    )


def ipv4_public(rng: random.Random) -> str:
    while True:
        v = rng.getrandbits(32)
        if _v4_public(v):
            return ".".join(str((v >> s) & 255) for s in (24, 16, 8, 0))


_V6_PREFIXES = [
    "2a01:4f8",
    "2600:1f18",
    "2a02:26f0",
    "2606:4700",
    "2001:41d0",
    "2a00:1450",
    "2604:a880",
    "2406:da18",
    "2a03:b0c0",
    "2620:0:2d0",
    "2a05:d014",
    "2400:cb00",
]


def ipv6_public(rng: random.Random) -> str:
    head = rng.choice(_V6_PREFIXES).split(":")
    groups = head + [f"{rng.getrandbits(16):x}" for _ in range(8 - len(head))]
    if rng.random() < 0.6:
        # compress a run of zeros the way tools print addresses
        k = rng.randint(len(head), 5)
        groups[k] = groups[k + 1] = "0"
        return ":".join(groups[:k]) + "::" + ":".join(groups[k + 2 :])
    return ":".join(groups)


# phones --------------------------------------------------------------------------------------


def _d(rng, n, first="123456789"):
    return rng.choice(first) + _digits(rng, n - 1)


def phone(rng: random.Random, country: str) -> str:
    r = rng
    c = country
    if c in ("US", "CA"):
        area = r.choice(
            ["312", "415", "206", "617", "646", "512", "303", "404", "416", "604", "514", "720", "971", "213"]
        )
        exch = str(r.randint(201, 989))
        while exch == "555" or exch[1:] == "11":
            exch = str(r.randint(201, 989))
        line = _digits(r, 4)
        return r.choice(
            [
                f"({area}) {exch}-{line}",
                f"{area}-{exch}-{line}",
                f"{area}.{exch}.{line}",
                f"+1 {area} {exch} {line}",
                f"+1-{area}-{exch}-{line}",
                f"1 ({area}) {exch}-{line}",
                f"+1 ({area}) {exch}-{line}",
            ]
        )
    if c == "GB":
        if r.random() < 0.5:
            m = "7" + r.choice("4589") + _digits(r, 2)
            rest = _digits(r, 6)
            while rest.startswith("900"):
                rest = _digits(r, 6)
            return r.choice([f"0{m} {rest}", f"+44 {m} {rest}", f"+44 (0){m} {rest[:3]} {rest[3:]}"])
        a, b = str(r.randint(3, 8)) + _digits(r, 3), _digits(r, 4)
        return r.choice([f"020 {a} {b}", f"+44 20 {a} {b}", f"(020) {a} {b}"])
    if c == "DE":
        city = r.choice(["30", "40", "89", "69", "221", "211", "711"])
        sub = _d(r, r.randint(6, 8))
        mob = r.choice(["151", "160", "170", "171", "176", "1520"])
        return r.choice(
            [
                f"0{city} {sub}",
                f"+49 {city} {sub}",
                f"+49 (0){city} {sub}",
                f"0{mob} {_d(r, 8)}",
                f"+49 {mob} {_d(r, 8)}",
                f"0{city}/{sub}",
                f"0{city}-{sub}",
            ]
        )
    if c == "FR":
        lead = r.choice("1234567")
        g = [_digits(r, 2) for _ in range(4)]
        return r.choice(
            [
                f"0{lead} {' '.join(g)}",
                f"+33 {lead} {' '.join(g)}",
                f"0{lead}.{'.'.join(g)}",
                f"+33 (0){lead} {' '.join(g)}",
                f"0{lead}{''.join(g)}",
            ]
        )
    if c == "ES":
        lead = r.choice(["6", "7", "91", "93", "95"])
        n = lead + _digits(r, 9 - len(lead))
        return r.choice(
            [f"{n[:3]} {n[3:6]} {n[6:]}", f"+34 {n[:3]} {n[3:6]} {n[6:]}", f"+34 {n[:3]} {n[3:5]} {n[5:7]} {n[7:]}"]
        )
    if c == "IT":
        if r.random() < 0.5:
            m = "3" + r.choice("2345789") + _digits(r, 1)
            return r.choice(
                [
                    f"{m} {_digits(r, 3)} {_digits(r, 4)}",
                    f"+39 {m} {_digits(r, 7)}",
                    f"+39 {m} {_digits(r, 3)} {_digits(r, 4)}",
                ]
            )
        return r.choice(
            [
                f"06 {_digits(r, 4)} {_digits(r, 4)}",
                f"+39 02 {_digits(r, 4)} {_digits(r, 4)}",
                f"011 {_digits(r, 3)} {_digits(r, 4)}",
            ]
        )
    if c == "NL":
        return r.choice(
            [
                f"06-{_d(r, 8)}",
                f"+31 6 {_d(r, 8)}",
                f"020-{_d(r, 7)}",
                f"+31 (0)20 {_d(r, 3)} {_digits(r, 4)}",
                f"06 {_d(r, 2)} {_digits(r, 2)} {_digits(r, 2)} {_digits(r, 2)}",
            ]
        )
    if c == "BE":
        return r.choice(
            [
                f"04{r.choice('789')}{_digits(r, 1)} {_digits(r, 2)} {_digits(r, 2)} {_digits(r, 2)}",
                f"+32 4{r.choice('789')}{_digits(r, 1)} {_digits(r, 2)} {_digits(r, 2)} {_digits(r, 2)}",
                f"+32 2 {_d(r, 3)} {_digits(r, 2)} {_digits(r, 2)}",
            ]
        )
    if c == "CH":
        return r.choice(
            [
                f"07{r.choice('6789')} {_d(r, 3)} {_digits(r, 2)} {_digits(r, 2)}",
                f"+41 7{r.choice('6789')} {_d(r, 3)} {_digits(r, 2)} {_digits(r, 2)}",
                f"044 {_d(r, 3)} {_digits(r, 2)} {_digits(r, 2)}",
            ]
        )
    if c == "AT":
        return r.choice([f"0664 {_d(r, 7)}", f"+43 664 {_d(r, 7)}", f"+43 1 {_d(r, 7)}", f"0676/{_d(r, 7)}"])
    if c == "SE":
        return r.choice(
            [
                f"07{r.choice('0236')}-{_d(r, 3)} {_digits(r, 2)} {_digits(r, 2)}",
                f"+46 7{r.choice('0236')} {_d(r, 3)} {_digits(r, 2)} {_digits(r, 2)}",
                f"08-{_d(r, 3)} {_digits(r, 3)} {_digits(r, 2)}",
            ]
        )
    if c == "NO":
        n = r.choice("49") + _digits(r, 7)
        return r.choice([f"{n[:3]} {n[3:5]} {n[5:]}", f"+47 {n[:3]} {n[3:5]} {n[5:]}", f"+47 {n}"])
    if c == "DK":
        g = [r.choice("2345") + _digits(r, 1)] + [_digits(r, 2) for _ in range(3)]
        return r.choice([" ".join(g), "+45 " + " ".join(g), "+45 " + "".join(g)])
    if c == "PL":
        n = r.choice("5678") + _digits(r, 8)
        return r.choice(
            [
                f"{n[:3]} {n[3:6]} {n[6:]}",
                f"+48 {n[:3]} {n[3:6]} {n[6:]}",
                f"+48 {n[:3]}-{n[3:6]}-{n[6:]}",
                f"22 {_d(r, 3)} {_digits(r, 2)} {_digits(r, 2)}",
            ]
        )
    if c == "PT":
        n = "9" + r.choice("1236") + _digits(r, 7)
        return r.choice(
            [f"{n[:3]} {n[3:6]} {n[6:]}", f"+351 {n[:3]} {n[3:6]} {n[6:]}", f"+351 21 {_d(r, 3)} {_digits(r, 4)}"]
        )
    if c == "IE":
        return r.choice(
            [
                f"08{r.choice('35679')} {_d(r, 3)} {_digits(r, 4)}",
                f"+353 8{r.choice('35679')} {_d(r, 3)} {_digits(r, 4)}",
                f"(01) {_d(r, 3)} {_digits(r, 4)}",
            ]
        )
    if c == "BR":
        ddd = r.choice(["11", "21", "31", "41", "51", "61", "71", "85"])
        return r.choice(
            [
                f"({ddd}) 9{_digits(r, 4)}-{_digits(r, 4)}",
                f"+55 {ddd} 9{_digits(r, 4)}-{_digits(r, 4)}",
                f"+55 ({ddd}) 9{_digits(r, 4)}-{_digits(r, 4)}",
                f"({ddd}) {_d(r, 4, '2345')}-{_digits(r, 4)}",
            ]
        )
    if c == "MX":
        return r.choice(
            [
                f"55 {_d(r, 4)} {_digits(r, 4)}",
                f"+52 55 {_d(r, 4)} {_digits(r, 4)}",
                f"+52 1 33 {_d(r, 4)} {_digits(r, 4)}",
                f"(81) {_d(r, 4)}-{_digits(r, 4)}",
            ]
        )
    if c == "AR":
        return r.choice(
            [
                f"+54 9 11 {_d(r, 4)}-{_digits(r, 4)}",
                f"011 {_d(r, 4)}-{_digits(r, 4)}",
                f"+54 11 {_d(r, 4)}-{_digits(r, 4)}",
            ]
        )
    if c == "IN":
        n = r.choice("6789") + _digits(r, 9)
        return r.choice(
            [
                f"{n[:5]} {n[5:]}",
                f"+91 {n[:5]} {n[5:]}",
                f"+91-{n}",
                f"0{n[:5]} {n[5:]}",
                f"022 {_d(r, 4)} {_digits(r, 4)}",
                f"+91 80 {_d(r, 4)} {_digits(r, 4)}",
            ]
        )
    if c == "CN":
        n = "1" + r.choice("3589") + _digits(r, 9)
        return r.choice(
            [
                f"{n[:3]} {n[3:7]} {n[7:]}",
                f"+86 {n[:3]} {n[3:7]} {n[7:]}",
                f"+86-{n}",
                f"010-{_d(r, 4)} {_digits(r, 4)}",
                f"(021) {_d(r, 4)}-{_digits(r, 4)}",
            ]
        )
    if c == "JP":
        return r.choice(
            [
                f"03-{_d(r, 4)}-{_digits(r, 4)}",
                f"0{r.choice('789')}0-{_d(r, 4)}-{_digits(r, 4)}",
                f"+81 {r.choice('789')}0-{_d(r, 4)}-{_digits(r, 4)}",
                f"+81 3 {_d(r, 4)} {_digits(r, 4)}",
                f"06-{_d(r, 4)}-{_digits(r, 4)}",
            ]
        )
    if c == "KR":
        return r.choice(
            [
                f"010-{_d(r, 4)}-{_digits(r, 4)}",
                f"+82 10-{_d(r, 4)}-{_digits(r, 4)}",
                f"02-{_d(r, 3)}-{_digits(r, 4)}",
                f"+82 2 {_d(r, 4)} {_digits(r, 4)}",
            ]
        )
    if c == "AU":
        return r.choice(
            [
                f"04{_digits(r, 2)} {_digits(r, 3)} {_digits(r, 3)}",
                f"+61 4{_digits(r, 2)} {_digits(r, 3)} {_digits(r, 3)}",
                f"(0{r.choice('2378')}) {_d(r, 4, '3456789')} {_digits(r, 4)}",
                f"+61 {r.choice('2378')} {_d(r, 4, '3456789')} {_digits(r, 4)}",
            ]
        )
    if c == "NZ":
        return r.choice(
            [
                f"021 {_d(r, 3)} {_digits(r, 4)}",
                f"+64 21 {_d(r, 3)} {_digits(r, 4)}",
                f"(09) {_d(r, 3)} {_digits(r, 4)}",
                f"+64 9 {_d(r, 3)} {_digits(r, 4)}",
            ]
        )
    if c == "ZA":
        m = r.choice(["82", "83", "72", "71", "84", "61"])
        return r.choice(
            [
                f"0{m} {_d(r, 3)} {_digits(r, 4)}",
                f"+27 {m} {_d(r, 3)} {_digits(r, 4)}",
                f"+27 21 {_d(r, 3)} {_digits(r, 4)}",
            ]
        )
    if c == "NG":
        m = r.choice(["803", "806", "813", "816", "703", "905", "809"])
        return r.choice(
            [f"0{m} {_d(r, 3)} {_digits(r, 4)}", f"+234 {m} {_d(r, 3)} {_digits(r, 4)}", f"+234{m}{_d(r, 7)}"]
        )
    if c == "KE":
        m = r.choice(["712", "722", "733", "701", "110"])
        return r.choice(
            [f"0{m} {_digits(r, 6)}", f"+254 {m} {_digits(r, 6)}", f"+254-{m}-{_digits(r, 3)}-{_digits(r, 3)}"]
        )
    if c == "EG":
        m = r.choice(["10", "11", "12", "15"])
        return r.choice([f"0{m} {_d(r, 4)} {_digits(r, 4)}", f"+20 {m} {_d(r, 4)} {_digits(r, 4)}"])
    if c == "TR":
        m = "5" + r.choice("0345") + _digits(r, 1)
        return r.choice(
            [
                f"0{m} {_d(r, 3)} {_digits(r, 2)} {_digits(r, 2)}",
                f"+90 {m} {_d(r, 3)} {_digits(r, 2)} {_digits(r, 2)}",
                f"0 ({m}) {_d(r, 3)} {_digits(r, 2)} {_digits(r, 2)}",
            ]
        )
    if c == "RU":
        m = "9" + _digits(r, 2)
        return r.choice(
            [
                f"+7 {m} {_d(r, 3)}-{_digits(r, 2)}-{_digits(r, 2)}",
                f"8 ({m}) {_d(r, 3)}-{_digits(r, 2)}-{_digits(r, 2)}",
                f"+7 (495) {_d(r, 3)}-{_digits(r, 2)}-{_digits(r, 2)}",
            ]
        )
    if c == "UA":
        m = r.choice(["67", "50", "63", "93", "97"])
        return r.choice(
            [
                f"+380 {m} {_d(r, 3)} {_digits(r, 2)} {_digits(r, 2)}",
                f"0{m} {_d(r, 3)} {_digits(r, 4)}",
                f"+380 ({m}) {_d(r, 3)}-{_digits(r, 2)}-{_digits(r, 2)}",
            ]
        )
    if c == "IL":
        m = "5" + r.choice("02348")
        return r.choice(
            [
                f"0{m}-{_d(r, 3)}-{_digits(r, 4)}",
                f"+972 {m}-{_d(r, 3)}-{_digits(r, 4)}",
                f"+972-3-{_d(r, 3)}-{_digits(r, 4)}",
            ]
        )
    if c == "AE":
        m = "5" + r.choice("02568")
        return r.choice(
            [
                f"0{m} {_d(r, 3)} {_digits(r, 4)}",
                f"+971 {m} {_d(r, 3)} {_digits(r, 4)}",
                f"+971 4 {_d(r, 3)} {_digits(r, 4)}",
            ]
        )
    if c == "SG":
        return r.choice(
            [
                f"{r.choice('89')}{_digits(r, 3)} {_digits(r, 4)}",
                f"+65 {r.choice('689')}{_digits(r, 3)} {_digits(r, 4)}",
            ]
        )
    if c == "HK":
        return r.choice(
            [
                f"+852 {r.choice('569')}{_digits(r, 3)} {_digits(r, 4)}",
                f"{r.choice('569')}{_digits(r, 3)} {_digits(r, 4)}",
            ]
        )
    if c == "PH":
        m = "9" + r.choice(["17", "18", "27", "45", "98"])
        return r.choice(
            [
                f"0{m} {_d(r, 3)} {_digits(r, 4)}",
                f"+63 {m} {_d(r, 3)} {_digits(r, 4)}",
                f"(02) 8{_digits(r, 3)} {_digits(r, 4)}",
            ]
        )
    if c == "ID":
        m = "8" + r.choice(["11", "12", "13", "21", "52", "77"])
        return r.choice(
            [
                f"0{m}-{_d(r, 4)}-{_digits(r, 4)}",
                f"+62 {m}-{_d(r, 4)}-{_digits(r, 4)}",
                f"+62 21 {_d(r, 4)} {_digits(r, 4)}",
            ]
        )
    if c == "VN":
        m = "9" + r.choice("0138")
        return r.choice(
            [
                f"0{m} {_d(r, 3)} {_digits(r, 2)} {_digits(r, 2)}",
                f"+84 {m} {_d(r, 3)} {_digits(r, 4)}",
                f"028 {_d(r, 4)} {_digits(r, 4)}",
            ]
        )
    if c == "TH":
        m = r.choice(["81", "89", "62", "95"])
        return r.choice(
            [
                f"0{m} {_d(r, 3)} {_digits(r, 4)}",
                f"+66 {m} {_d(r, 3)} {_digits(r, 4)}",
                f"02-{_d(r, 3)}-{_digits(r, 4)}",
            ]
        )
    raise KeyError(country)


PHONE_COUNTRIES = (
    "US CA GB DE FR ES IT NL BE CH AT SE NO DK PL PT IE BR MX AR IN CN JP KR AU NZ ZA NG KE "
    "EG TR RU UA IL AE SG HK PH ID VN TH"
).split()
