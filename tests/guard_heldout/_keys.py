"""Private and public key material, built from the set's seed in pure Python.

Every key is derived from a seeded ``random.Random``, so it belongs to nobody, yet it
is well formed: RSA keys have real primes and consistent CRT values, EC and Ed25519
public points are computed from the private scalar, OpenSSH and PuTTY files carry the
right framing (and PuTTY's MAC), OpenPGP armour carries its CRC-24.  Encrypted forms
hold random ciphertext of the right length (nothing here can decrypt them).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import struct
from dataclasses import dataclass

# -- DER ---------------------------------------------------------------------------


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def der_int(v: int) -> bytes:
    return tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big"))


def der_seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def der_oid(dotted: str) -> bytes:
    parts = [int(x) for x in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out.extend(reversed(chunk))
    return tlv(0x06, bytes(out))


DER_NULL = b"\x05\x00"


def der_octets(b: bytes) -> bytes:
    return tlv(0x04, b)


def der_bits(b: bytes) -> bytes:
    return tlv(0x03, b"\x00" + b)


def pem(label: str, der: bytes, headers: str = "") -> str:
    b64 = base64.b64encode(der).decode()
    body = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN {label}-----\n{headers}{body}\n-----END {label}-----"


OID_RSA = "1.2.840.113549.1.1.1"
OID_SHA256_RSA = "1.2.840.113549.1.1.11"
OID_EC = "1.2.840.10045.2.1"
OID_P256 = "1.2.840.10045.3.1.7"
OID_ED25519 = "1.3.101.112"

# -- RSA ---------------------------------------------------------------------------

_SMALL_PRIMES = [p for p in range(3, 3000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _probable_prime(n: int, rng: random.Random, rounds: int = 20) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(rng: random.Random, bits: int) -> int:
    while True:
        c = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if any(c % p == 0 for p in _SMALL_PRIMES):
            continue
        if _probable_prime(c, rng):
            return c


@dataclass(frozen=True)
class RSAKey:
    n: int
    e: int
    d: int
    p: int
    q: int

    @property
    def dp(self) -> int:
        return self.d % (self.p - 1)

    @property
    def dq(self) -> int:
        return self.d % (self.q - 1)

    @property
    def qinv(self) -> int:
        return pow(self.q, -1, self.p)


def rsa_key(rng: random.Random, bits: int = 2048) -> RSAKey:
    e = 65537
    while True:
        p, q = _prime(rng, bits // 2), _prime(rng, bits // 2)
        if p == q:
            continue
        if p < q:
            p, q = q, p
        phi = (p - 1) * (q - 1)
        try:
            d = pow(e, -1, phi)
        except ValueError:
            continue
        return RSAKey(p * q, e, d, p, q)


def rsa_pkcs1(k: RSAKey) -> bytes:
    return der_seq(*(der_int(v) for v in (0, k.n, k.e, k.d, k.p, k.q, k.dp, k.dq, k.qinv)))


def rsa_pkcs8(k: RSAKey) -> bytes:
    return der_seq(der_int(0), der_seq(der_oid(OID_RSA), DER_NULL), der_octets(rsa_pkcs1(k)))


def rsa_spki(k: RSAKey) -> bytes:
    return der_seq(der_seq(der_oid(OID_RSA), DER_NULL), der_bits(der_seq(der_int(k.n), der_int(k.e))))


# -- P-256 -------------------------------------------------------------------------

_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)


def _ec_add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and (a[1] + b[1]) % _P == 0:
        return None
    if a == b:
        lam = (3 * a[0] * a[0] - 3) * pow(2 * a[1], -1, _P) % _P
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], -1, _P) % _P
    x = (lam * lam - a[0] - b[0]) % _P
    return x, (lam * (a[0] - x) - a[1]) % _P


def _ec_mul(k: int, pt):
    acc = None
    while k:
        if k & 1:
            acc = _ec_add(acc, pt)
        pt = _ec_add(pt, pt)
        k >>= 1
    return acc


@dataclass(frozen=True)
class ECKey:
    d: int
    x: int
    y: int

    @property
    def point(self) -> bytes:
        return b"\x04" + self.x.to_bytes(32, "big") + self.y.to_bytes(32, "big")


def ec_key(rng: random.Random) -> ECKey:
    d = rng.randrange(1, _N)
    x, y = _ec_mul(d, _G)
    return ECKey(d, x, y)


def ec_sec1(k: ECKey) -> bytes:
    return der_seq(
        der_int(1),
        der_octets(k.d.to_bytes(32, "big")),
        tlv(0xA0, der_oid(OID_P256)),
        tlv(0xA1, der_bits(k.point)),
    )


def ec_pkcs8(k: ECKey) -> bytes:
    inner = der_seq(der_int(1), der_octets(k.d.to_bytes(32, "big")), tlv(0xA1, der_bits(k.point)))
    return der_seq(der_int(0), der_seq(der_oid(OID_EC), der_oid(OID_P256)), der_octets(inner))


def ec_spki(k: ECKey) -> bytes:
    return der_seq(der_seq(der_oid(OID_EC), der_oid(OID_P256)), der_bits(k.point))


# -- Ed25519 (RFC 8032 arithmetic) -------------------------------------------------

_Q = 2**255 - 19
_D = -121665 * pow(121666, -1, _Q) % _Q
_SQRT_M1 = pow(2, (_Q - 1) // 4, _Q)


def _ed_add(a, b):
    A = (a[1] - a[0]) * (b[1] - b[0]) % _Q
    B = (a[1] + a[0]) * (b[1] + b[0]) % _Q
    C = 2 * a[3] * b[3] * _D % _Q
    D = 2 * a[2] * b[2] % _Q
    E, F, G, H = B - A, D - C, D + C, B + A
    return E * F % _Q, G * H % _Q, F * G % _Q, E * H % _Q


def _ed_mul(s: int, pt):
    acc = (0, 1, 1, 0)
    while s:
        if s & 1:
            acc = _ed_add(acc, pt)
        pt = _ed_add(pt, pt)
        s >>= 1
    return acc


def _ed_base():
    y = 4 * pow(5, -1, _Q) % _Q
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, _Q)
    x = pow(x2, (_Q + 3) // 8, _Q)
    if (x * x - x2) % _Q:
        x = x * _SQRT_M1 % _Q
    if x & 1:
        x = _Q - x
    return x, y, 1, x * y % _Q


_EDB = _ed_base()


@dataclass(frozen=True)
class EdKey:
    seed: bytes
    public: bytes


def ed_key(rng: random.Random) -> EdKey:
    seed = rng.randbytes(32)
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    X, Y, Z, _ = _ed_mul(a, _EDB)
    zi = pow(Z, -1, _Q)
    x, y = X * zi % _Q, Y * zi % _Q
    return EdKey(seed, (y | ((x & 1) << 255)).to_bytes(32, "little"))


def ed_pkcs8(k: EdKey) -> bytes:
    return der_seq(der_int(0), der_seq(der_oid(OID_ED25519)), der_octets(der_octets(k.seed)))


def ed_spki(k: EdKey) -> bytes:
    return der_seq(der_seq(der_oid(OID_ED25519)), der_bits(k.public))


# -- SSH wire format ---------------------------------------------------------------


def ssh_str(b: bytes | str) -> bytes:
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">I", len(b)) + b


def ssh_mpint(v: int) -> bytes:
    return ssh_str(v.to_bytes((v.bit_length() + 8) // 8, "big") if v else b"")


def ssh_pub_blob(k) -> bytes:
    if isinstance(k, RSAKey):
        return ssh_str("ssh-rsa") + ssh_mpint(k.e) + ssh_mpint(k.n)
    if isinstance(k, EdKey):
        return ssh_str("ssh-ed25519") + ssh_str(k.public)
    raise TypeError(k)


def ssh_public_line(k, comment: str) -> str:
    kind = "ssh-rsa" if isinstance(k, RSAKey) else "ssh-ed25519"
    return f"{kind} {base64.b64encode(ssh_pub_blob(k)).decode()} {comment}"


def _wrap(s: str, width: int) -> str:
    return "\n".join(s[i : i + width] for i in range(0, len(s), width))


def openssh_private(k, comment: str, rng: random.Random, encrypted: bool = False) -> str:
    check = rng.getrandbits(32)
    if isinstance(k, RSAKey):
        body = ssh_str("ssh-rsa") + b"".join(ssh_mpint(v) for v in (k.n, k.e, k.d, k.qinv, k.p, k.q))
    else:
        body = ssh_str("ssh-ed25519") + ssh_str(k.public) + ssh_str(k.seed + k.public)
    priv = struct.pack(">II", check, check) + body + ssh_str(comment)
    block = 16 if encrypted else 8
    i = 1
    while len(priv) % block:
        priv += bytes([i])
        i += 1
    if encrypted:
        head = ssh_str("aes256-ctr") + ssh_str("bcrypt") + ssh_str(ssh_str(rng.randbytes(16)) + struct.pack(">I", 16))
        priv = rng.randbytes(len(priv))  # aes256-ctr ciphertext: same length, no tag
    else:
        head = ssh_str("none") + ssh_str("none") + ssh_str(b"")
    raw = b"openssh-key-v1\x00" + head + struct.pack(">I", 1) + ssh_str(ssh_pub_blob(k)) + ssh_str(priv)
    b64 = base64.b64encode(raw).decode()
    return f"-----BEGIN OPENSSH PRIVATE KEY-----\n{_wrap(b64, 70)}\n-----END OPENSSH PRIVATE KEY-----"


def putty_ppk(k: RSAKey, comment: str, version: int = 3) -> str:
    pub = ssh_pub_blob(k)
    priv = ssh_mpint(k.d) + ssh_mpint(k.p) + ssh_mpint(k.q) + ssh_mpint(k.qinv)
    # Unencrypted files pad the private blob only when a cipher needs it: none here.
    mac_data = ssh_str("ssh-rsa") + ssh_str("none") + ssh_str(comment) + ssh_str(pub) + ssh_str(priv)
    if version == 3:
        mac = hmac.new(b"", mac_data, hashlib.sha256).hexdigest()
    else:
        key = hashlib.sha1(b"putty-private-key-file-mac-key").digest()
        mac = hmac.new(key, mac_data, hashlib.sha1).hexdigest()
    pub_b64 = _wrap(base64.b64encode(pub).decode(), 64)
    priv_b64 = _wrap(base64.b64encode(priv).decode(), 64)
    return (
        f"PuTTY-User-Key-File-{version}: ssh-rsa\n"
        f"Encryption: none\n"
        f"Comment: {comment}\n"
        f"Public-Lines: {pub_b64.count(chr(10)) + 1}\n{pub_b64}\n"
        f"Private-Lines: {priv_b64.count(chr(10)) + 1}\n{priv_b64}\n"
        f"Private-MAC: {mac}"
    )


# -- encrypted PEM forms -------------------------------------------------------------


def encrypted_pkcs8(k, rng: random.Random) -> str:
    plain = rsa_pkcs8(k) if isinstance(k, RSAKey) else ec_pkcs8(k)
    clen = (len(plain) // 16 + 1) * 16
    params = der_seq(
        der_oid("1.2.840.113549.1.5.13"),
        der_seq(
            der_seq(
                der_oid("1.2.840.113549.1.5.12"),
                der_seq(der_octets(rng.randbytes(16)), der_int(2048), der_seq(der_oid("1.2.840.113549.2.9"), DER_NULL)),
            ),
            der_seq(der_oid("2.16.840.1.101.3.4.1.42"), der_octets(rng.randbytes(16))),
        ),
    )
    return pem("ENCRYPTED PRIVATE KEY", der_seq(params, der_octets(rng.randbytes(clen))))


def encrypted_legacy_pem(k: RSAKey, rng: random.Random) -> str:
    plain = rsa_pkcs1(k)
    clen = (len(plain) // 16 + 1) * 16
    iv = rng.randbytes(16).hex().upper()
    headers = f"Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,{iv}\n\n"
    return pem("RSA PRIVATE KEY", rng.randbytes(clen), headers)


# -- OpenPGP -------------------------------------------------------------------------


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def _mpi(b: bytes) -> bytes:
    v = int.from_bytes(b, "big")
    return struct.pack(">H", v.bit_length()) + b.lstrip(b"\x00")


def _packet(tag: int, body: bytes) -> bytes:
    # new-format header, two-octet length when needed
    n = len(body)
    if n < 192:
        ln = bytes([n])
    else:
        n2 = n - 192
        ln = bytes([(n2 >> 8) + 192, n2 & 0xFF])
    return bytes([0xC0 | tag]) + ln + body


def pgp_private_block(k: EdKey, uid: str, created: int, armor: bool = True) -> str:
    oid = bytes.fromhex("2B06010401DA470F01")
    public = struct.pack(">BI", 4, created) + bytes([22, len(oid)]) + oid + _mpi(b"\x40" + k.public)
    secret_mpi = _mpi(k.seed)
    cksum = sum(secret_mpi) & 0xFFFF
    seckey = public + b"\x00" + secret_mpi + struct.pack(">H", cksum)
    raw = _packet(5, seckey) + _packet(13, uid.encode())
    b64 = _wrap(base64.b64encode(raw).decode(), 64)
    crc = base64.b64encode(_crc24(raw).to_bytes(3, "big")).decode()
    return f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{b64}\n={crc}\n-----END PGP PRIVATE KEY BLOCK-----"


def pgp_public_block(k: EdKey, uid: str, created: int) -> str:
    oid = bytes.fromhex("2B06010401DA470F01")
    public = struct.pack(">BI", 4, created) + bytes([22, len(oid)]) + oid + _mpi(b"\x40" + k.public)
    raw = _packet(6, public) + _packet(13, uid.encode())
    b64 = _wrap(base64.b64encode(raw).decode(), 64)
    crc = base64.b64encode(_crc24(raw).to_bytes(3, "big")).decode()
    return f"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{b64}\n={crc}\n-----END PGP PUBLIC KEY BLOCK-----"


# -- JWK -------------------------------------------------------------------------------


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _ib(v: int, size: int | None = None) -> bytes:
    return v.to_bytes(size or (v.bit_length() + 7) // 8, "big")


def jwk_private(k, kid: str) -> dict:
    if isinstance(k, RSAKey):
        return {
            "kty": "RSA",
            "kid": kid,
            "use": "sig",
            "alg": "RS256",
            "n": b64u(_ib(k.n)),
            "e": "AQAB",
            "d": b64u(_ib(k.d)),
            "p": b64u(_ib(k.p)),
            "q": b64u(_ib(k.q)),
            "dp": b64u(_ib(k.dp)),
            "dq": b64u(_ib(k.dq)),
            "qi": b64u(_ib(k.qinv)),
        }
    if isinstance(k, ECKey):
        return {
            "kty": "EC",
            "crv": "P-256",
            "kid": kid,
            "x": b64u(_ib(k.x, 32)),
            "y": b64u(_ib(k.y, 32)),
            "d": b64u(_ib(k.d, 32)),
        }
    return {"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64u(k.public), "d": b64u(k.seed)}


def jwk_public(k, kid: str) -> dict:
    full = jwk_private(k, kid)
    return {a: b for a, b in full.items() if a not in ("d", "p", "q", "dp", "dq", "qi")}


# -- X.509 (benign public material) ------------------------------------------------------


def _name(cn: str, org: str) -> bytes:
    def rdn(oid: str, val: str) -> bytes:
        return tlv(0x31, der_seq(der_oid(oid), tlv(0x0C, val.encode())))

    return der_seq(rdn("2.5.4.6", "US"), rdn("2.5.4.10", org), rdn("2.5.4.3", cn))


def certificate(k: RSAKey, cn: str, org: str, rng: random.Random, not_before: str, not_after: str) -> str:
    """A self-signed-shaped certificate; the signature is random bytes of the right size."""
    alg = der_seq(der_oid(OID_SHA256_RSA), DER_NULL)
    validity = der_seq(tlv(0x17, not_before.encode()), tlv(0x17, not_after.encode()))
    tbs = der_seq(
        tlv(0xA0, der_int(2)),
        der_int(rng.getrandbits(120) | (1 << 119)),
        alg,
        _name(cn, org),
        validity,
        _name(cn, org),
        rsa_spki(k),
    )
    sig = rng.randbytes((k.n.bit_length() + 7) // 8)
    return pem("CERTIFICATE", der_seq(tbs, alg, der_bits(sig)))
