"""A held-out evaluation set for aiogw's guards.

Written 2026-12-08 by a helper session working apart from the guards: it never read
``aiogw/guards/``, the guard corpus, the guard tests or the quality bench, and never ran
a guard while writing.  Every document was written for this set (no payload text copied
from public collections); secrets are fake but format-valid, personal data is invented.

THE RULE: this set measures how the guards generalise.  It is never used to tune,
add or test patterns.  Read its score; do not read its records to fix a miss.  Once a
record has been used to change a guard, the set no longer measures anything and must be
regenerated from a new seed by someone who has not seen the guards.

``python -m tests.guard_heldout.make`` rewrites ``data/*.jsonl`` deterministically
(fixed seeds) and runs a self-check.  ``load()`` returns the records.

Each record is a dict:

``id``
    unique, ``<cred|pii|inj|ben>-<subcategory>-<n>``.
``place``
    where the text sits in a request: ``"tool_result"``, ``"user"``, ``"system"``
    or ``"tool_definition"`` (the JSON of one tool, or a list of tools).
``kind``
    a short description of the carrier: ".env file", "kubectl logs", "README", ...
``category``
    ``"credential"``, ``"pii"``, ``"injection"``, or ``None`` for benign text that a
    guard must NOT flag (hard negatives: quoted attacks, placeholders, public keys...).
``subcategory``
    for credentials the service or form (``github``, ``aws``, ``private_key``,
    ``password``, ``bearer``, ``basic``, ``jwt`` ...); for PII the type (``phone``,
    ``ip_address``, ``card``, ``email``, ``iban``, ``ssn``); for injections the family
    (``override``, ``covert``, ``role_hijack``, ``command_exec``, ``template_spoof``,
    ``authority``, ``exfiltration``, one per obfuscation, ``multilingual``, ``buried``);
    for benign records the kind of hard negative (``quoted_injection``, ``placeholder``,
    ``public_key``, ``private_ip`` ...).
``text``
    the whole document as the model would receive it.
``value``
    for credentials and PII, the exact planted substring of ``text`` (for a PEM key the
    whole block as it appears, indentation included; for a JWK its ``d``; for an AWS
    pair the secret key, or the key id when only that is meant); ``None`` otherwise.
    Multilingual injection ids carry the language: ``inj-multilingual-fr-001``.
"""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).with_name("data")
FILES = ("credential.jsonl", "pii.jsonl", "injection.jsonl", "benign.jsonl")


def load() -> list[dict]:
    """Every record, in file order (credential, pii, injection, benign)."""
    out: list[dict] = []
    for name in FILES:
        with (DATA / name).open(encoding="utf-8") as fh:
            out.extend(json.loads(line) for line in fh if line.strip())
    return out
