"""Benign hard negatives that look like values: placeholders and masked secrets, hashes,
ids, public keys, documented dummy fixtures, non-public addresses, versions, numbers
that resemble phones or cards, base64 blobs, minified code, lockfiles."""

from __future__ import annotations

import base64
import json
import random
import struct
import zlib

from . import _keys as K
from ._common import Ids, numbered, record
from ._fake import ALNUM, B64URL, HEX, pick, uid
from ._filler import PROJECTS, private_ip

# -- placeholders and masked values ------------------------------------------------------------


def _placeholders(rng: random.Random) -> list[tuple[str, str]]:
    proj = rng.choice(PROJECTS)
    return [
        (
            ".env.example",
            "APP_ENV=development\nGITHUB_TOKEN=\nOPENAI_API_KEY=sk-...\nDATABASE_URL=postgres://user:password@localhost:5432/app\nSTRIPE_SECRET_KEY=sk_live_xxxxxxxxxxxxxxxxxxxxxxxx\n",
        ),
        (
            "README (setup section)",
            "## Configuration\n\n```bash\nexport OPENAI_API_KEY=<your-api-key>\nexport GITHUB_TOKEN=<a token with repo scope>\n```\n\nNever commit real keys; CI reads them from repository secrets.\n",
        ),
        (
            "GitHub Actions workflow",
            "      - run: npm publish\n        env:\n          NODE_AUTH_TOKEN: ${{ secrets.NPM_TOKEN }}\n      - run: ./deploy.sh\n        env:\n          AWS_ACCESS_KEY_ID: ${{ secrets.AWS_ACCESS_KEY_ID }}\n          AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}\n",
        ),
        (
            "docker-compose.yml",
            "services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: ${DB_PASSWORD:?set DB_PASSWORD in .env}\n      POSTGRES_USER: app\n",
        ),
        (
            "kubernetes Deployment (env)",
            "          env:\n            - name: DATABASE_PASSWORD\n              valueFrom:\n                secretKeyRef:\n                  name: app-db\n                  key: password\n            - name: API_TOKEN\n              valueFrom:\n                secretKeyRef: {name: app-api, key: token}\n",
        ),
        (
            "gh auth status output",
            "github.com\n  ✓ Logged in to github.com account mkowal (keyring)\n  - Active account: true\n  - Git operations protocol: https\n  - Token: gho_************************************\n  - Token scopes: 'gist', 'read:org', 'repo', 'workflow'\n",
        ),
        (
            "aws configure list output",
            "      Name                    Value             Type    Location\n      ----                    -----             ----    --------\n   profile                <not set>             None    None\naccess_key     ****************7QXM shared-credentials-file\nsecret_key     ****************h2Zk shared-credentials-file\n    region                eu-west-1      config-file    ~/.aws/config\n",
        ),
        (
            "npm config list output",
            '; "user" config from /home/dev/.npmrc\n\n//registry.npmjs.org/:_authToken = (protected)\nsave-exact = true\n\n; node bin location = /usr/local/bin/node\n',
        ),
        (
            "CI job log (masked)",
            '2026-10-02T10:11:12.0000000Z + curl -sf -H \'Authorization: Bearer ***\' https://api.internal/deploy\n2026-10-02T10:11:13.0000000Z {"status":"queued"}\n',
        ),
        (
            "application log (redacted)",
            "2026-10-02T10:11:12.411Z DEBUG [http.client] POST /v1/charges headers={'Authorization': '[REDACTED]', 'Idempotency-Key': '"
            + uid(rng)
            + "'}\n",
        ),
        (
            "terraform plan output",
            '  # aws_db_instance.main will be updated in-place\n  ~ resource "aws_db_instance" "main" {\n        id       = "app-prod"\n      ~ password = (sensitive value)\n        # (42 unchanged attributes hidden)\n    }\n',
        ),
        (
            "billing page (HTML)",
            '<div class="card">Visa •••• 4821 <span class="exp">exp 08/27</span></div>\n<div class="card">Mastercard **** **** **** 0017</div>\n',
        ),
        (
            "support tool output",
            "Customer: Amelia K.\nSSN on file: ***-**-4417\nPhone: +44 7*** ***812\nEmail: a*****@g****.com\n",
        ),
        (
            "docs page (deploy keys)",
            "Paste your key into `deploy/key.pem`:\n\n```\n-----BEGIN OPENSSH PRIVATE KEY-----\n<your private key here>\n-----END OPENSSH PRIVATE KEY-----\n```\n",
        ),
        (
            "JSON config template",
            json.dumps(
                {"apiKey": "YOUR_API_KEY_HERE", "apiSecret": "<replace-me>", "endpoint": "https://api.example.com/v1"},
                indent=2,
            ),
        ),
        (
            "python source",
            numbered(
                'import os\n\nfrom openai import OpenAI\n\nclient = OpenAI(api_key=os.environ["OPENAI_API_KEY"])\ntoken = os.getenv("GITHUB_TOKEN", "")\nif not token:\n    raise SystemExit("set GITHUB_TOKEN first")\n'
            ),
        ),
        (
            "docs page",
            "Tokens look like `ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX` (classic) or `github_pat_...` (fine-grained). Keys for the API start with `sk-proj-` followed by a long random string.\n",
        ),
        (
            "1Password env file",
            "DATABASE_PASSWORD=op://Engineering/app-db/password\nSTRIPE_SECRET_KEY=op://Engineering/stripe/secret_key\nSENTRY_DSN=op://Engineering/sentry/dsn\n",
        ),
        (
            "SOPS-encrypted secrets file",
            "db_password: ENC[AES256_GCM,data:"
            + base64.b64encode(rng.randbytes(18)).decode()
            + ",iv:"
            + base64.b64encode(rng.randbytes(32)).decode()
            + ",tag:"
            + base64.b64encode(rng.randbytes(16)).decode()
            + ",type:str]\nsops:\n    kms: []\n    age:\n        - recipient: age1"
            + pick(rng, "qpzry9x8gf2tvdw0s3jn54khce6mua7l", 58)
            + '\n    lastmodified: "2026-10-01T09:12:44Z"\n    version: 3.9.0\n',
        ),
        ("Ansible vault file", "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(pick(rng, HEX, 80) for _ in range(6)) + "\n"),
        (
            "SealedSecret manifest",
            "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: app-db\nspec:\n  encryptedData:\n    password: Ag"
            + base64.b64encode(rng.randbytes(300)).decode()
            + "\n",
        ),
        (
            "Postman environment",
            json.dumps(
                {
                    "name": "staging",
                    "values": [
                        {"key": "baseUrl", "value": "https://staging.internal"},
                        {"key": "apiKey", "value": "{{vault:api-key}}", "enabled": True},
                    ],
                },
                indent=2,
            ),
        ),
        (
            "shell docs",
            'Log in without putting the password on the command line:\n\n```bash\necho "$DOCKER_PASSWORD" | docker login -u "$DOCKER_USER" --password-stdin\nmysql -u root -p   # prompts for the password\n```\n',
        ),
        (
            "Vault usage docs",
            'Read the token from Vault at runtime:\n\n```bash\nexport GITHUB_TOKEN="$(vault kv get -field=token secret/ci/github)"\n```\n',
        ),
        (
            "curl docs",
            '```bash\ncurl -H "Authorization: Bearer $API_TOKEN" https://api.internal/v2/me\ncurl -u "$USER:$PASSWORD" https://jenkins.internal/api/json\n```\n',
        ),
        (
            "vercel env ls output",
            f"> Environment Variables found for {proj} [412ms]\n\n name                  value          environments\n DATABASE_URL          Encrypted      Production, Preview\n STRIPE_SECRET_KEY     Encrypted      Production\n",
        ),
    ]


# -- hashes and ids ---------------------------------------------------------------------------------------------


def _hashes(rng: random.Random) -> list[tuple[str, str]]:
    h = lambda n: pick(rng, HEX, n)  # noqa: E731
    sri = lambda: base64.b64encode(rng.randbytes(64)).decode()  # noqa: E731
    return [
        (
            "sha256sum output",
            "\n".join(
                f"{h(64)}  dist/{rng.choice(PROJECTS)}-{rng.randint(1, 4)}.{rng.randint(0, 9)}.0-{t}"
                for t in ["py3-none-any.whl", "tar.gz", "linux-amd64.tar.gz"]
            )
            + "\n",
        ),
        (
            "git log --oneline",
            "\n".join(
                f"{h(7)} {m}"
                for m in [
                    "fix: close pool on shutdown",
                    "docs: explain leases",
                    "chore(deps): bump httpx",
                    "test: cover the empty export",
                    "refactor: split the scheduler",
                ]
            )
            + "\n",
        ),
        (
            "Docker image digest",
            f"REPOSITORY                TAG       DIGEST                                                                    IMAGE ID       SIZE\nregistry.internal/api     2.14.0    sha256:{h(64)}   {h(12)}   184MB\n",
        ),
        (
            "go.sum excerpt",
            "\n".join(
                f"github.com/{m} v{rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)} h1:{base64.b64encode(rng.randbytes(32)).decode()}"
                for m in ["google/uuid", "stretchr/testify", "spf13/cobra", "rs/zerolog"]
            )
            + "\n",
        ),
        (
            "HTML with SRI",
            f'<script src="https://cdn.jsdelivr.net/npm/htmx.org@2.0.3/dist/htmx.min.js" integrity="sha384-{base64.b64encode(rng.randbytes(48)).decode()}" crossorigin="anonymous"></script>\n',
        ),
        (
            "pip requirements with hashes",
            "\n".join(
                f"{p}=={v} \\\n    --hash=sha256:{h(64)}"
                for p, v in [("httpx", "0.27.2"), ("anyio", "4.6.2"), ("idna", "3.10")]
            )
            + "\n",
        ),
        (
            "git ls-remote output",
            "\n".join(f"{h(40)}\trefs/heads/{b}" for b in ["main", "release/2.14", "feat/leases"]) + "\n",
        ),
        (
            "HTTP response headers",
            f'HTTP/2 200\ncontent-type: application/json\netag: W/"{h(32)}"\nx-request-id: {uid(rng)}\ncache-control: max-age=60\n',
        ),
        ("md5sum output", "\n".join(f"{h(32)}  backups/db-2026-10-{d:02d}.sql.gz" for d in range(1, 5)) + "\n"),
        (
            "package-lock excerpt",
            json.dumps(
                {
                    "node_modules/ms": {
                        "version": "2.1.3",
                        "resolved": "https://registry.npmjs.org/ms/-/ms-2.1.3.tgz",
                        "integrity": f"sha512-{sri()}",
                    }
                },
                indent=2,
            ),
        ),
        (
            "Django user fixture",
            json.dumps(
                [
                    {
                        "model": "auth.user",
                        "pk": 1,
                        "fields": {
                            "username": "admin",
                            "password": f"pbkdf2_sha256$870000${pick(rng, ALNUM, 22)}${base64.b64encode(rng.randbytes(32)).decode()}",
                            "is_superuser": True,
                        },
                    }
                ],
                indent=2,
            ),
        ),
        (
            "git cat-file output",
            f"tree {h(40)}\nparent {h(40)}\nauthor mkowal 1791234567 +0200\ncommitter mkowal 1791234567 +0200\n\nscheduler: release leases on SIGTERM\n",
        ),
        (
            "Cargo.lock excerpt",
            "\n".join(
                f'[[package]]\nname = "{n}"\nversion = "{v}"\nsource = "registry+https://github.com/rust-lang/crates.io-index"\nchecksum = "{h(64)}"\n'
                for n, v in [("serde", "1.0.214"), ("tokio", "1.41.0")]
            ),
        ),
        (
            "helm dependency lock",
            f'dependencies:\n- name: postgresql\n  repository: oci://registry-1.docker.io/bitnamicharts\n  version: 16.2.1\ndigest: sha256:{h(64)}\ngenerated: "2026-10-01T09:12:44Z"\n',
        ),
    ]


def _ids(rng: random.Random) -> list[tuple[str, str]]:
    return [
        (
            "kubectl get pod -o yaml (metadata)",
            f'metadata:\n  name: api-7d9f8c6b5-{pick(rng, "bcdfghjklmnpqrstvwxz2456789", 5)}\n  namespace: prod\n  uid: {uid(rng)}\n  resourceVersion: "{rng.randint(10**7, 10**8)}"\n',
        ),
        (
            "trace export (JSON)",
            json.dumps(
                {
                    "traceId": pick(rng, HEX, 32),
                    "spans": [{"spanId": pick(rng, HEX, 16), "name": "GET /v2/orders", "durationMs": 41}],
                },
                indent=2,
            ),
        ),
        (
            "API JSON response (payment objects)",
            json.dumps(
                {
                    "id": f"pi_3{pick(rng, ALNUM, 23)}",
                    "object": "payment_intent",
                    "customer": f"cus_{pick(rng, ALNUM, 14)}",
                    "latest_charge": f"ch_3{pick(rng, ALNUM, 23)}",
                    "status": "succeeded",
                },
                indent=2,
            ),
        ),
        (
            "frontend config (publishable key)",
            f'export const stripePublishableKey = "pk_live_51{pick(rng, ALNUM, 97)}";\nexport const sentryEnvironment = "production";\n',
        ),
        (
            "MongoDB shell output",
            "[\n"
            + ",\n".join(f"  {{ _id: ObjectId('{pick(rng, HEX, 24)}'), status: 'shipped' }}" for _ in range(3))
            + "\n]\n",
        ),
        (
            "Slack API JSON",
            json.dumps(
                {
                    "ok": True,
                    "channel": f"C0{pick(rng, 'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789', 9)}",
                    "ts": f"1791{rng.randint(100000, 999999)}.{rng.randint(100000, 999999)}",
                    "message": {
                        "user": f"U0{pick(rng, 'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789', 9)}",
                        "text": "deploy finished",
                    },
                },
                indent=2,
            ),
        ),
        (
            "AWS CLI output (ARNs)",
            json.dumps(
                {
                    "Roles": [
                        {
                            "RoleName": "ci-deployer",
                            "RoleId": f"AROA{pick(rng, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 17)}",
                            "Arn": f"arn:aws:iam::{rng.randint(10**11, 10**12 - 1)}:role/ci-deployer",
                        }
                    ]
                },
                indent=4,
            ),
        ),
        (
            "Sentry issue list",
            "\n".join(
                f"{pick(rng, HEX, 32)}  {t}"
                for t in ["KeyError: 'tenant_id'", "TimeoutError in export", "IntegrityError on ledger insert"]
            )
            + "\n",
        ),
        (
            "database rows (ULIDs)",
            "id                          | state\n"
            + "\n".join(f"01J{pick(rng, '0123456789ABCDEFGHJKMNPQRSTVWXYZ', 23)} | done" for _ in range(4))
            + "\n",
        ),
        (
            "GitHub GraphQL response",
            json.dumps(
                {
                    "data": {
                        "repository": {
                            "id": f"R_kgDO{pick(rng, B64URL, 8)}",
                            "pullRequests": {
                                "nodes": [{"id": f"PR_kwDO{pick(rng, B64URL, 18)}", "number": rng.randint(1, 900)}]
                            },
                        }
                    }
                },
                indent=2,
            ),
        ),
    ]


# -- public keys -----------------------------------------------------------------------------------------------


def _public_keys(rng: random.Random, pool) -> list[tuple[str, str]]:
    rsa = pool.rsa()
    ed, ec = K.ed_key(rng), K.ec_key(rng)
    who = rng.choice(["mkowal@laptop", "deploy@ci", "tnakamura@mbp", "ops@bastion"])
    return [
        ("authorized_keys", f"{K.ssh_public_line(ed, who)}\n{K.ssh_public_line(rsa, 'backup@nas')}\n"),
        (
            "known_hosts",
            f"|1|{base64.b64encode(rng.randbytes(20)).decode()}|{base64.b64encode(rng.randbytes(20)).decode()} {K.ssh_public_line(ed, '').strip()}\ngithub.com {K.ssh_public_line(K.ed_key(rng), '').strip()}\n",
        ),
        ("PEM public key", K.pem("PUBLIC KEY", K.rsa_spki(rsa)) + "\n"),
        ("PEM public key (EC)", K.pem("PUBLIC KEY", K.ec_spki(ec)) + "\n"),
        (
            "openssl s_client output",
            "CONNECTED(00000003)\n---\nCertificate chain\n 0 s:CN = api.internal\n   i:CN = Internal CA\n"
            + K.certificate(rsa, "api.internal", "Internal CA", rng, "260101000000Z", "270101000000Z")
            + "\n---\nServer certificate\nsubject=CN = api.internal\n",
        ),
        (
            "JWKS endpoint response",
            json.dumps(
                {"keys": [K.jwk_public(rsa, pick(rng, B64URL, 16)), K.jwk_public(ec, pick(rng, B64URL, 16))]}, indent=2
            ),
        ),
        (
            "GPG public key",
            K.pgp_public_block(ed, "Release Signing Key", 1700000000 + rng.randint(0, 5 * 10**7)) + "\n",
        ),
        (
            "WireGuard peer config",
            f"[Peer]\n# laptop\nPublicKey = {base64.b64encode(rng.randbytes(32)).decode()}\nAllowedIPs = 10.8.0.{rng.randint(2, 250)}/32\nPersistentKeepalive = 25\n",
        ),
        (
            "ssh-keygen -lf output",
            f"256 SHA256:{base64.b64encode(rng.randbytes(32)).decode().rstrip('=')} {who} (ED25519)\n3072 SHA256:{base64.b64encode(rng.randbytes(32)).decode().rstrip('=')} backup@nas (RSA)\n",
        ),
        (
            "GitHub deploy keys API response",
            json.dumps(
                [
                    {
                        "id": rng.randint(10**7, 10**8),
                        "key": K.ssh_public_line(ed, "").strip(),
                        "title": "ci-readonly",
                        "read_only": True,
                        "created_at": "2026-04-02T11:00:00Z",
                    }
                ],
                indent=2,
            ),
        ),
        (
            "certificate file",
            K.certificate(rsa, "*.internal", "Internal CA", rng, "260301000000Z", "280301000000Z") + "\n",
        ),
        ("PEM public key (Ed25519)", K.pem("PUBLIC KEY", K.ed_spki(ed)) + "\n"),
    ]


# -- dummy fixtures --------------------------------------------------------------------------------------------

DUMMY = [
    (
        "python test (AWS docs example keys)",
        numbered(
            'import boto3\nfrom moto import mock_aws\n\n\n@mock_aws\ndef test_upload():\n    s3 = boto3.client(\n        "s3",\n        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",\n        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",\n        region_name="us-east-1",\n    )\n    s3.create_bucket(Bucket="test")\n'
        ),
    ),
    (
        "docs page (AWS credentials file)",
        "```ini\n[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n```\n\nReplace the example values with your own keys.\n",
    ),
    (
        "python test (Stripe test cards)",
        numbered(
            'TEST_CARDS = {\n    "visa": "4242 4242 4242 4242",\n    "visa_debit": "4000 0566 5566 5556",\n    "mastercard": "5555 5555 5555 4444",\n    "amex": "3782 822463 10005",\n}\n\n\n@pytest.mark.parametrize("brand,number", TEST_CARDS.items())\ndef test_masking(brand, number):\n    assert mask(number).endswith(number[-4:])\n'
        ),
    ),
    (
        "checkout docs",
        "Use card number **4242 4242 4242 4242** with any future expiry and any CVC to simulate a successful payment in test mode. **4000 0000 0000 0002** simulates a decline.\n",
    ),
    (
        "JWT docs example",
        "A token looks like this:\n\n```\neyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c\n```\n\nPaste it into a decoder to see the header and payload.\n",
    ),
    (
        "seed data (fictional numbers)",
        "name,phone\nTest User,(312) 555-0134\nQA Account,+1 212 555 0199\nDemo Shop,555-0100\n",
    ),
    (
        "IBAN validator tests",
        numbered(
            'VALID = ["GB82 WEST 1234 5698 7654 32", "DE89 3704 0044 0532 0130 00"]\nINVALID = ["GB82 WEST 1234 5698 7654 33"]\n\n\n@pytest.mark.parametrize("iban", VALID)\ndef test_valid(iban):\n    assert is_valid_iban(iban)\n'
        ),
    ),
    (
        "SSN validator tests",
        numbered(
            '# 078-05-1120 was printed on a sample card in 1938 and is invalid; 000/666/9xx areas never issue.\nINVALID = ["078-05-1120", "000-12-3456", "666-12-3456", "123-45-6789"]\n\n\ndef test_rejects_known_invalid():\n    for s in INVALID:\n        assert not is_plausible_ssn(s)\n'
        ),
    ),
    (
        "python test (fixture user)",
        numbered(
            '@pytest.fixture\ndef user(db):\n    return User.objects.create_user(\n        username="alice",\n        email="alice@example.com",\n        password="test-password-not-secret",\n    )\n'
        ),
    ),
    (
        "docs page (email examples)",
        "Invitations are sent from `noreply@example.org`. In the examples below, replace `user@example.com` with the invitee's address.\n",
    ),
    (
        "Twilio test docs",
        "Use the magic number **+15005550006** as the `From` value to simulate a valid sender in test credentials mode.\n",
    ),
    (
        "conftest.py",
        numbered(
            'import pytest\n\n\n@pytest.fixture\ndef api_headers():\n    return {"Authorization": "Bearer test-token", "X-Api-Key": "dummy-key-for-tests"}\n'
        ),
    ),
    (
        "docs page (IP examples)",
        "Allow the office range, for example `203.0.113.0/24`, and the VPN exit `198.51.100.7`. Addresses in `192.0.2.0/24` are reserved for documentation.\n",
    ),
    (
        "OpenAPI example",
        'components:\n  examples:\n    Customer:\n      value:\n        name: Jane Doe\n        email: jane.doe@example.com\n        phone: "+1-555-0123"\n',
    ),
]


# -- non-public addresses -------------------------------------------------------------------------------------


def _private_addrs(rng: random.Random) -> list[tuple[str, str]]:
    p = lambda: private_ip(rng)  # noqa: E731
    net, host = f"{rng.randint(0, 255)}.{rng.randint(0, 255)}", rng.randint(2, 254)
    return [
        (
            "ip addr output",
            f"1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n    inet 127.0.0.1/8 scope host lo\n    inet6 ::1/128 scope host\n2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\n    inet 10.{net}.{host}/24 brd 10.{net}.255 scope global eth0\n    inet6 fe80::{pick(rng, HEX, 4)}:{pick(rng, HEX, 4)}:fe{pick(rng, HEX, 2)}:{pick(rng, HEX, 4)}/64 scope link\n",
        ),
        (
            "docker network inspect",
            json.dumps(
                [
                    {
                        "Name": "app_default",
                        "IPAM": {"Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]},
                        "Containers": {
                            pick(rng, HEX, 12): {"Name": "app-db-1", "IPv4Address": f"172.18.0.{rng.randint(2, 20)}/16"}
                        },
                    }
                ],
                indent=2,
            ),
        ),
        (
            "kubectl get pods -o wide",
            "NAME                   READY   STATUS    IP            NODE\n"
            + "\n".join(
                f"api-{pick(rng, 'bcdfghjkl2456789', 5)}    1/1     Running   10.244.{rng.randint(0, 9)}.{rng.randint(2, 250)}   node-{i}"
                for i in range(3)
            )
            + "\n",
        ),
        ("/etc/hosts", f"127.0.0.1 localhost\n::1 localhost ip6-localhost\n{p()} db.internal\n{p()} cache.internal\n"),
        (
            "nginx upstream config",
            f"upstream api {{\n    server {p()}:8000 max_fails=3;\n    server {p()}:8000 max_fails=3;\n    keepalive 32;\n}}\n",
        ),
        (
            "terraform VPC",
            'resource "aws_vpc" "main" {\n  cidr_block = "10.20.0.0/16"\n}\n\nresource "aws_subnet" "private_a" {\n  vpc_id     = aws_vpc.main.id\n  cidr_block = "10.20.1.0/24"\n}\n',
        ),
        (
            "shell session (instance metadata)",
            "$ curl -s http://169.254.169.254/latest/meta-data/local-ipv4\n" + p() + "\n",
        ),
        (
            "route -n output",
            "Kernel IP routing table\nDestination     Gateway         Genmask         Flags Metric Ref    Use Iface\n0.0.0.0         192.168.1.1     0.0.0.0         UG    100    0        0 eth0\n192.168.1.0     0.0.0.0         255.255.255.0   U     100    0        0 eth0\n",
        ),
        (
            "ss -tlnp output",
            "State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process\nLISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*\nLISTEN 0      511          0.0.0.0:80         0.0.0.0:*\nLISTEN 0      4096             [::]:22            [::]:*\n",
        ),
        (
            "tailscale status",
            "\n".join(
                f"100.{rng.randint(64, 127)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}  {h:<12} mkowal@  linux   -"
                for h in ["laptop", "nas", "build-box"]
            )
            + "\n",
        ),
        (
            "IPv6 docs",
            "Examples use the documentation prefix `2001:db8::/32`, e.g. `2001:db8:85a3::8a2e:370:7334`. Unique local addresses such as `fd12:3456:789a::1` never route on the internet.\n",
        ),
        (
            "docker compose ps",
            "NAME       IMAGE         PORTS\napp-web-1  web:dev       0.0.0.0:8080->8080/tcp, [::]:8080->8080/tcp\napp-db-1   postgres:16   127.0.0.1:5432->5432/tcp\n",
        ),
        (
            "mDNS / multicast config",
            "avahi:\n  interfaces: [eth0]\n  multicast: 224.0.0.251\nssdp:\n  address: 239.255.255.250:1900\n",
        ),
    ]


VERSIONS = [
    (
        "pip freeze",
        "anyio==4.6.2\ncertifi==2024.8.30\nh11==0.14.0\nhttpcore==1.0.6\nhttpx==0.27.2\nidna==3.10\npywin32==306\nsetuptools==75.1.0.0\n",
    ),
    (
        "systeminfo output",
        "OS Name:                   Microsoft Windows 11 Pro\nOS Version:                10.0.22631 N/A Build 22631\nBIOS Version:              LENOVO N3EET52W (1.33 ), 3/14/2024\n.NET CLR:                  4.0.30319.42000\n",
    ),
    (
        "user agent strings",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.86 Safari/537.36\nMozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\n",
    ),
    (
        "snmpwalk output",
        "SNMPv2-MIB::sysDescr.0 = STRING: Linux edge-01 6.8.0-45-generic\n.1.3.6.1.2.1.1.3.0 = Timeticks: (48112233) 5 days, 13:38:42.33\n.1.3.6.1.4.1.2021.10.1.3.1 = STRING: 0.21\n",
    ),
    (
        "java -version",
        'openjdk version "17.0.9" 2023-10-17\nOpenJDK Runtime Environment Temurin-17.0.9+9 (build 17.0.9+9)\nOpenJDK 64-Bit Server VM Temurin-17.0.9+9 (build 17.0.9+9, mixed mode, sharing)\n',
    ),
    (
        "uname -a",
        "Linux build-box 6.8.0-45-generic #45-Ubuntu SMP PREEMPT_DYNAMIC Fri Aug 30 12:02:04 UTC 2024 x86_64 x86_64 x86_64 GNU/Linux\n",
    ),
    ("AssemblyInfo.cs", '[assembly: AssemblyVersion("3.14.2.0")]\n[assembly: AssemblyFileVersion("3.14.2.1187")]\n'),
    (
        "Android build.gradle",
        'android {\n    defaultConfig {\n        versionCode 41020\n        versionName "4.10.2.0"\n    }\n}\n',
    ),
    (
        "openssl x509 -text excerpt",
        "        Signature Algorithm: sha256WithRSAEncryption (1.2.840.113549.1.1.11)\n        X509v3 extensions:\n            X509v3 Certificate Policies:\n                Policy: 2.23.140.1.2.1\n",
    ),
    (
        "docker version",
        "Client: Docker Engine - Community\n Version:           27.3.1\n API version:       1.47\n Go version:        go1.22.7\n Git commit:        ce12230\n",
    ),
]


def _numbers(rng: random.Random) -> list[tuple[str, str]]:
    imei = _luhn15(rng, "35" + str(rng.randint(100000, 999999)))
    return [
        (
            "orders CSV",
            "order_id,created,total\n"
            + "\n".join(
                f"ORD-2026-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)},2026-10-{d:02d} 14:{rng.randint(10, 59)},{rng.randint(10, 900)}.{rng.randint(10, 99)}"
                for d in range(1, 5)
            )
            + "\n",
        ),
        (
            "invoice list",
            "\n".join(
                f"INV-2026-{rng.randint(100000, 999999)}  due 2026-11-{rng.randint(1, 28):02d}  EUR {rng.randint(100, 9000)}.00"
                for _ in range(3)
            )
            + "\n",
        ),
        (
            "shipment tracking",
            f"Tracking: 1Z{pick(rng, 'ABCDEFGHJKLMNPRSTVWXYZ0123456789', 16)}\nShipped: 2026-10-{rng.randint(1, 28):02d}\nWeight: 2.4 kg\n",
        ),
        (
            "book metadata",
            f"ISBN-13: 978-{rng.randint(0, 1)}-{rng.randint(100, 999)}-{rng.randint(10000, 99999)}-{rng.randint(0, 9)}\nPages: 412\nPublished: 2024-03-15\n",
        ),
        ("device inventory", f"device,model,imei,os\nphone-qa-07,Pixel 8,{imei},Android 15\n"),
        (
            "epoch timestamps",
            "\n".join(
                f"{1790000000 + rng.randint(0, 10**7)} job={rng.choice(['export', 'compact', 'sync'])} status=ok"
                for _ in range(4)
            )
            + "\n",
        ),
        (
            "Discord message ids",
            "\n".join(f"{rng.randint(10**18, 2 * 10**18)}  #general  pinned" for _ in range(3)) + "\n",
        ),
        (
            "build metadata",
            f"build: 2026.10.12-{rng.randint(1000, 9999)}\nrun: {rng.randint(10**9, 10**10)}\nartifact: web-{rng.randint(100, 999)}-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}.zip\n",
        ),
        (
            "Kubernetes service",
            "spec:\n  type: NodePort\n  ports:\n    - port: 80\n      nodePort: 30080\n# allowed range 30000-32767\n",
        ),
        (
            "coordinates",
            f"lat,lon\n52.{rng.randint(100000, 999999)},4.{rng.randint(100000, 999999)}\n-33.{rng.randint(100000, 999999)},151.{rng.randint(100000, 999999)}\n",
        ),
        ("Windows event log", "Event ID: 4625\nError code: 0x80070005\nLogon Type: 3\nProcess ID: 0x1f4\n"),
        (
            "git blame line ranges",
            f"See src/export.py L{rng.randint(100, 200)}-L{rng.randint(201, 260)} and tests/test_export.py L12-L48.\n",
        ),
        ("CVE list", "CVE-2024-3094 (xz), CVE-2023-44487 (HTTP/2 rapid reset), CVE-2021-44228 (log4shell)\n"),
        (
            "AWS account table",
            f"account_id   | name\n{rng.randint(10**11, 10**12 - 1)} | prod\n{rng.randint(10**11, 10**12 - 1)} | staging\n",
        ),
        ("date formats", "2026-10-12, 12/10/2026, 10-12-2026, 2026.10.12, 12.10.2026 14:30:05\n"),
        (
            "metrics counts",
            "\n".join(f"{m}: {rng.randint(10**6, 10**9)}" for m in ["requests_total", "bytes_out", "cache_hits"])
            + "\n",
        ),
        ("EAN barcodes", "\n".join(f"{_ean13(rng)}  SKU-{rng.randint(1000, 9999)}" for _ in range(3)) + "\n"),
        (
            "support ticket ids",
            f"Related: #{rng.randint(10**6, 10**7)}, case {rng.randint(100, 999)}-{rng.randint(100, 999)}-{rng.randint(1000, 9999)} (internal queue id)\n",
        ),
    ]


def _luhn15(rng, prefix):
    from ._fake import luhn_complete

    return luhn_complete(prefix, 15, rng)


def _ean13(rng):
    d = [rng.randrange(10) for _ in range(12)]
    s = sum(x * (3 if i % 2 else 1) for i, x in enumerate(d))
    return "".join(map(str, d)) + str((10 - s % 10) % 10)


# -- blobs, minified code, lockfiles ---------------------------------------------------------------------------


def _png(rng, w=8, h=8) -> bytes:
    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(rng.randrange(256) for _ in range(w * 3)) for _ in range(h))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _blobs(rng: random.Random) -> list[tuple[str, str]]:
    png = base64.b64encode(_png(rng, rng.randint(8, 24), rng.randint(8, 24))).decode()
    readme = base64.b64encode(
        f"# {rng.choice(PROJECTS)}\n\nA small job scheduler.\n\n## Install\n\npip install it.\n".encode()
    ).decode()
    svg = base64.b64encode(
        b'<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><circle cx="8" cy="8" r="7" fill="#2a7"/></svg>'
    ).decode()
    gz = base64.b64encode(
        zlib.compress(json.dumps({"features": {"exports": True}, "limits": {"rpm": 600}}).encode())
    ).decode()
    return [
        (
            "CSS with inline image",
            f'.logo {{\n  background-image: url("data:image/png;base64,{png}");\n  width: 24px;\n}}\n',
        ),
        (
            "Jupyter notebook output",
            json.dumps(
                {
                    "output_type": "display_data",
                    "data": {"image/png": png, "text/plain": ["<Figure size 640x480 with 1 Axes>"]},
                    "metadata": {},
                },
                indent=1,
            ),
        ),
        (
            "GitHub contents API response",
            json.dumps(
                {
                    "name": "README.md",
                    "path": "README.md",
                    "sha": pick(rng, HEX, 40),
                    "size": 71,
                    "encoding": "base64",
                    "content": readme,
                },
                indent=2,
            ),
        ),
        ("HTML with inline SVG icon", f'<link rel="icon" href="data:image/svg+xml;base64,{svg}">\n'),
        (
            "CSS with inline font",
            '@font-face {\n  font-family: "Inter";\n  src: url("data:font/woff2;base64,d09GMgABAAAAA'
            + base64.b64encode(rng.randbytes(420)).decode()
            + '") format("woff2");\n}\n',
        ),
        (
            "source map excerpt",
            json.dumps(
                {
                    "version": 3,
                    "file": "app.min.js",
                    "sources": ["src/app.ts"],
                    "names": ["render", "state"],
                    "mappings": ";".join(
                        ",".join(pick(rng, "ACDEGIKMOQSUWYgikmoqsuwy", rng.randint(4, 8)) for _ in range(6))
                        for _ in range(20)
                    ),
                },
                indent=1,
            ),
        ),
        (
            "kubectl get configmap -o yaml",
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flags\nbinaryData:\n  flags.json.z: {gz}\n",
        ),
        (
            "email MIME part",
            'Content-Type: text/csv; name="weekly.csv"\nContent-Transfer-Encoding: base64\n\n'
            + base64.encodebytes(b"week,orders,returns\n41,1820,33\n42,1904,29\n").decode(),
        ),
    ]


_JS_SRC = [
    "function debounce(fn, wait) { let timer; return function (...args) { clearTimeout(timer); timer = setTimeout(() => fn.apply(this, args), wait); }; }",
    "export function formatPrice(amount, currency) { return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(amount / 100); }",
    "function render(state) { const root = document.getElementById('app'); root.innerHTML = ''; for (const item of state.items) { const li = document.createElement('li'); li.textContent = item.name; root.appendChild(li); } }",
    "async function load(url) { const res = await fetch(url, { headers: { Accept: 'application/json' } }); if (!res.ok) throw new Error('HTTP ' + res.status); return res.json(); }",
    "function clamp(v, lo, hi) { return Math.max(lo, Math.min(hi, v)); }",
]


def _minified(rng: random.Random) -> str:
    names = iter("abcdefghijklmnopqrstuvwxyz")
    parts = []
    for src in rng.sample(_JS_SRC, len(_JS_SRC)):
        s = (
            src.replace("function ", "function ")
            .replace(" {", "{")
            .replace("{ ", "{")
            .replace(" }", "}")
            .replace("; ", ";")
            .replace(", ", ",")
            .replace(" = ", "=")
            .replace(" => ", "=>")
            .replace(" + ", "+")
        )
        for long in ("state", "amount", "currency", "timer", "args", "root", "item", "res", "wait", "url"):
            s = s.replace(long, next(names, "z"))
        parts.append(s)
    header = f"/*! {rng.choice(PROJECTS)} v{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)} | MIT */"
    runtime = (
        '(()=>{"use strict";var e={'
        + ",".join(
            f"{rng.randint(100, 999)}:(e,t,n)=>{{n.d(t,{{Z:()=>o}});var o=function(){{return {rng.randint(0, 99)}}}}}"
            for _ in range(rng.randint(20, 60))
        )
        + "},t={};function n(r){var o=t[r];if(void 0!==o)return o.exports;var i=t[r]={exports:{}};return e[r](i,i.exports,n),i.exports}})();"
    )
    return header + "\n" + runtime + ";".join(parts) + "\n//# sourceMappingURL=app.min.js.map\n"


def _lockfile(rng: random.Random, i: int) -> tuple[str, str]:
    sri = lambda: "sha512-" + base64.b64encode(rng.randbytes(64)).decode()  # noqa: E731
    kind = i % 5
    if kind == 0:
        pkgs = {"": {"name": rng.choice(PROJECTS), "version": "1.0.0"}}
        for n in ["react", "react-dom", "scheduler", "loose-envify", "js-tokens", "zod", "clsx", "date-fns"]:
            v = f"{rng.randint(0, 18)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
            pkgs[f"node_modules/{n}"] = {
                "version": v,
                "resolved": f"https://registry.npmjs.org/{n}/-/{n}-{v}.tgz",
                "integrity": sri(),
                "license": "MIT",
            }
        return "package-lock.json", json.dumps(
            {"name": pkgs[""]["name"], "lockfileVersion": 3, "requires": True, "packages": pkgs}, indent=2
        )
    if kind == 1:
        return "yarn.lock", "\n".join(
            f'"{n}@^{v}":\n  version "{v}"\n  resolved "https://registry.yarnpkg.com/{n}/-/{n}-{v}.tgz#{pick(rng, HEX, 40)}"\n  integrity {sri()}\n'
            for n, v in [("ms", "2.1.3"), ("debug", "4.3.7"), ("semver", "7.6.3"), ("lru-cache", "10.4.3")]
        )
    if kind == 2:
        return "poetry.lock", "\n".join(
            f'[[package]]\nname = "{n}"\nversion = "{v}"\noptional = false\npython-versions = ">=3.8"\nfiles = [\n    {{file = "{n}-{v}-py3-none-any.whl", hash = "sha256:{pick(rng, HEX, 64)}"}},\n    {{file = "{n}-{v}.tar.gz", hash = "sha256:{pick(rng, HEX, 64)}"}},\n]\n'
            for n, v in [("httpx", "0.27.2"), ("anyio", "4.6.2"), ("sniffio", "1.3.1")]
        )
    if kind == 3:
        return "go.sum", "\n".join(
            f"{m} {v} h1:{base64.b64encode(rng.randbytes(32)).decode()}\n{m} {v}/go.mod h1:{base64.b64encode(rng.randbytes(32)).decode()}"
            for m, v in [
                ("github.com/google/uuid", "v1.6.0"),
                ("golang.org/x/sync", "v0.8.0"),
                ("github.com/spf13/pflag", "v1.0.5"),
            ]
        ) + "\n"
    return "Pipfile.lock", json.dumps(
        {
            "_meta": {"hash": {"sha256": pick(rng, HEX, 64)}, "pipfile-spec": 6},
            "default": {
                n: {"hashes": [f"sha256:{pick(rng, HEX, 64)}", f"sha256:{pick(rng, HEX, 64)}"], "version": f"=={v}"}
                for n, v in [("requests", "2.32.3"), ("urllib3", "2.2.3")]
            },
        },
        indent=4,
    )


_LEADS = [
    "here's what I have:",
    "this is what the file looks like:",
    "output from my machine:",
    "pasting this for context:",
]


def _vary(kind: str, text: str, round_: int) -> tuple[str, str, str]:
    """Later rounds show the same kind of document the way another tool, or the user, would."""
    if round_ % 3 == 1 and not text.startswith("     1\t"):
        return "tool_result", f"{kind} (file read)", numbered(text)
    if round_ % 3 == 1:
        return "tool_result", f"{kind} (pasted)", text.replace("\t", "  ")
    if round_ % 3 == 2:
        lead = _LEADS[len(text) % len(_LEADS)]
        return "user", f"chat message (pasted {kind})", f"{lead}\n\n```\n{text.rstrip()}\n```"
    return "tool_result", kind, text


def build(rng: random.Random, ids: Ids, pool) -> list[dict]:
    out = []

    def add(sub, kind, text, round_=0):
        place, kind, text = _vary(kind, text, round_)
        out.append(record(ids(sub), place, kind, None, sub, text))

    for r in range(2):
        for kind, text in _placeholders(rng):
            add("placeholder", kind, text, r)
    for r in range(2):
        for kind, text in _hashes(rng):
            add("hash", kind, text, r)
    for r in range(2):
        for kind, text in _ids(rng):
            add("identifier", kind, text, r)
    for r in range(3):
        for kind, text in _public_keys(rng, pool):
            add("public_key", kind, text, r)
    for r in range(2):
        for kind, text in DUMMY:
            add("dummy_fixture", kind, text, r)
    for r in range(3):
        for kind, text in _private_addrs(rng):
            add("private_ip", kind, text, r)
    for r in range(2):
        for kind, text in VERSIONS:
            add("version_string", kind, text, r)
    for r in range(2):
        for kind, text in _numbers(rng):
            add("number_lookalike", kind, text, r)
    for r in range(2):
        for kind, text in _blobs(rng):
            add("base64_blob", kind, text, r)
    for _ in range(10):
        add("minified_js", "minified JavaScript bundle", _minified(rng))
    for i in range(15):
        kind, text = _lockfile(rng, i)
        add("lockfile", kind, text, i // 5)
    return out
