"""Validators for personal data: checksums (cards, IBANs) and numbering plans (SSNs,
phone numbers), and the look of a real address (email) rather than an example.

Well-known test values (the card networks' and payment providers' test numbers, the
IBANs bank documentation uses, the SSNs printed in advertisements) are format-valid
but public: they are rejected. Registered by name in `aiogw.guards.validators`.
"""

from __future__ import annotations

import ipaddress
import re

from aiogw.guards.credential_validators import has_run

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
    if len(set(d[1:])) <= 2 or has_run(d[-7:], 6):
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




# Public addresses that are services, not anyone's: the big public DNS resolvers.
_SERVICE_ADDRESSES = frozenset((
    "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "149.112.112.112", "208.67.222.222",
    "208.67.220.220", "2001:4860:4860::8888", "2001:4860:4860::8844", "2606:4700:4700::1111",
    "2606:4700:4700::1001",
))


def public_ip(text: str) -> bool:
    """A public IPv4 or IPv6 address: one that routes on the internet (not private,
    loopback, link-local, shared/CGNAT, documentation, multicast or reserved), not a
    public DNS resolver's, and for IPv4 not a version-like quad whose parts are all
    single digits (1.2.3.4, 2.0.1.0)."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if not address.is_global or address.is_multicast or str(address) in _SERVICE_ADDRESSES:
        return False
    if address.version == 4:
        return not all(len(part) == 1 for part in text.split("."))
    # An IPv4 address inside IPv6 (::ffff:a.b.c.d, 6to4, Teredo) is judged as IPv4
    # where it carries one; what is left must be a real global unicast address.
    return address.ipv4_mapped is None and address.sixtofour is None and address.teredo is None
