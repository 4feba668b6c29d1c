"""Rewrite the held-out set's data files and check them.

    python -m tests.guard_heldout.make

Deterministic: every builder draws from its own ``random.Random`` with a fixed string
seed, so the files are byte-identical from run to run.
"""

from __future__ import annotations

import base64
import binascii
import collections
import json
import random
import re
import sys

from . import DATA, FILES, _benign_misc, _benign_security, _benign_values, _credentials, _injection, _pii, load
from . import _fake as F
from ._common import CATEGORIES, PLACES, Ids
from ._cred_forms import KeyPool

MAX_BYTES = 15 * 1024 * 1024


def build_benign() -> list[dict]:
    rng = random.Random("heldout-benign-2026-12-08")
    ids = Ids("ben")
    pool = KeyPool("heldout-benign-rsa-2026-12-08")
    return _benign_security.build(rng, ids) + _benign_values.build(rng, ids, pool) + _benign_misc.build(rng, ids)


def write(records_by_file: dict[str, list[dict]]) -> None:
    DATA.mkdir(exist_ok=True)
    for name, recs in records_by_file.items():
        with (DATA / name).open("w", encoding="utf-8", newline="\n") as fh:
            for r in recs:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")


# -- self-check ----------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\d.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\d.])")


def _gh_checksum_ok(tok: str) -> bool:
    body, check = tok.split("_", 1)[1][:-6], tok[-6:]
    v = 0
    for ch in check:
        v = v * 62 + F.B62.index(ch)
    return v == binascii.crc32(body.encode())


def check(records: list[dict]) -> None:
    ids = [r["id"] for r in records]
    dup = [i for i, n in collections.Counter(ids).items() if n > 1]
    assert not dup, f"duplicate ids: {dup[:5]}"
    texts = collections.Counter(r["text"] for r in records)
    same = [t[:60] for t, n in texts.items() if n > 1]
    assert not same, f"identical documents: {same[:3]}"
    for r in records:
        assert set(r) == {"id", "place", "kind", "category", "subcategory", "text", "value"}, r["id"]
        assert r["place"] in PLACES and r["category"] in CATEGORIES, r["id"]
        assert r["kind"] and r["text"], r["id"]
        if r["category"] in ("credential", "pii"):
            assert r["value"] and r["value"] in r["text"], f"{r['id']}: value not in text"
        else:
            assert r["value"] is None, r["id"]
        if r["place"] == "tool_definition":
            json.loads(r["text"])
        v = r["value"] or ""
        if r["subcategory"] == "github" and not v.startswith("github_pat_"):
            assert _gh_checksum_ok(v), r["id"]
        if r["subcategory"] == "npm":
            assert _gh_checksum_ok(v), r["id"]
        if r["subcategory"] == "card":
            assert F.luhn_ok(v), r["id"]
        if r["subcategory"] == "iban":
            assert F.iban_ok(v), r["id"]
        if r["subcategory"] == "pypi":
            raw = base64.urlsafe_b64decode(v[5:] + "=" * (-len(v[5:]) % 4))
            assert raw[:11] == b"\x02\x01\x08pypi.org", r["id"]
        if r["category"] is None and r["subcategory"] != "version_string":
            # benign text must not carry a routable IPv4 address by accident
            for m in _IPV4.finditer(r["text"]):
                octets = [int(x) for x in m.groups()]
                if max(octets) <= 255:
                    n = int.from_bytes(bytes(octets), "big")
                    assert not F._v4_public(n), f"{r['id']}: public address {m.group(0)}"
    size = sum((DATA / f).stat().st_size for f in FILES)
    assert size < MAX_BYTES, size

    print(f"{len(records)} records, {size / 1e6:.2f} MB")
    by_cat = collections.Counter(str(r["category"]) for r in records)
    by_sub = collections.Counter((str(r["category"]), str(r["subcategory"])) for r in records)
    by_place = collections.Counter((str(r["category"]), r["place"]) for r in records)
    for cat in ("credential", "pii", "injection", "None"):
        places = ", ".join(f"{p} {n}" for (c, p), n in sorted(by_place.items()) if c == cat)
        print(f"\n{cat}: {by_cat[cat]}  ({places})")
        for (c, s), n in sorted(by_sub.items(), key=lambda kv: (-kv[1], kv[0])):
            if c == cat:
                print(f"  {s:<22} {n}")
    langs = sorted({r["id"].split("-")[2] for r in records if r["subcategory"] == "multilingual"})
    print(f"\nmultilingual languages ({len(langs)}): {' '.join(langs)}")
    sizes = [len(r["text"].encode()) for r in records]
    print(f"documents over 5 KB: {sum(s > 5 * 1024 for s in sizes)}, largest {max(sizes) / 1024:.1f} KB")


def main() -> int:
    files = {
        "credential.jsonl": _credentials.build(),
        "pii.jsonl": _pii.build(),
        "injection.jsonl": _injection.build(),
        "benign.jsonl": build_benign(),
    }
    write(files)
    check(load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
