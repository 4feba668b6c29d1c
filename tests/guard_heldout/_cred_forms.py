"""Credential records by form: private keys, JWTs, passwords, bearer and basic auth,
and tokens buried in long documents."""

from __future__ import annotations

import base64
import json
import random

from . import _fake as F
from . import _filler as L
from . import _keys as K
from ._common import Ids, numbered, record
from ._fake import HEX, pick, uid
from ._filler import private_ip


class KeyPool:
    """RSA keys are slow to make, so they come from one seeded stream, made on demand."""

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(seed)

    def rsa(self, bits: int = 2048) -> K.RSAKey:
        return K.rsa_key(self.rng, bits)

    def pem_pkcs8(self, rng: random.Random) -> str:
        return K.pem("PRIVATE KEY", K.rsa_pkcs8(self.rsa()))


def _span(text: str, begin: str, end_marker: str) -> str:
    a = text.index(begin)
    b = text.index(end_marker, a)
    b = text.index("-----", b + len(end_marker) - 5) + 5 if end_marker.startswith("-----END") else b + len(end_marker)
    return text[a:b]


# -- private keys ------------------------------------------------------------------------------


def _key_material(i: int, rng: random.Random, pool: KeyPool) -> tuple[str, str]:
    """(label, armoured text) for the i-th private key record."""
    forms = [
        "pkcs1",
        "pkcs8_rsa",
        "openssh_ed",
        "sec1",
        "pkcs1",
        "openssh_ed",
        "pkcs8_ec",
        "enc_pkcs8",
        "legacy_enc",
        "openssh_rsa",
        "ppk3",
        "jwk_rsa",
        "pgp",
        "pkcs1",
        "pkcs8_rsa",
        "openssh_ed",
        "sec1",
        "pkcs8_ed",
        "enc_pkcs8",
        "openssh_enc",
        "ppk2",
        "jwk_ec",
        "legacy_enc",
        "pkcs1",
        "pkcs8_rsa",
        "openssh_ed",
        "sec1",
        "jwk_okp",
        "pgp",
        "openssh_rsa",
        "enc_pkcs8",
        "pkcs1",
        "pkcs8_rsa",
        "openssh_enc",
        "ppk3",
        "legacy_enc",
        "sec1",
        "openssh_ed",
        "pkcs1",
        "pkcs8_rsa",
        "pkcs8_ec",
    ]
    f = forms[i % len(forms)]
    comment = rng.choice(["deploy@ci", "mkowal@laptop", "build-agent-3", "root@bastion", "tnakamura@mbp", ""])
    if f == "pkcs1":
        return f, K.pem("RSA PRIVATE KEY", K.rsa_pkcs1(pool.rsa(rng.choice([2048, 2048, 3072]))))
    if f == "pkcs8_rsa":
        return f, K.pem("PRIVATE KEY", K.rsa_pkcs8(pool.rsa()))
    if f == "pkcs8_ec":
        return f, K.pem("PRIVATE KEY", K.ec_pkcs8(K.ec_key(rng)))
    if f == "pkcs8_ed":
        return f, K.pem("PRIVATE KEY", K.ed_pkcs8(K.ed_key(rng)))
    if f == "sec1":
        return f, K.pem("EC PRIVATE KEY", K.ec_sec1(K.ec_key(rng)))
    if f == "enc_pkcs8":
        return f, K.encrypted_pkcs8(pool.rsa() if rng.random() < 0.6 else K.ec_key(rng), rng)
    if f == "legacy_enc":
        return f, K.encrypted_legacy_pem(pool.rsa(), rng)
    if f == "openssh_ed":
        return f, K.openssh_private(K.ed_key(rng), comment, rng)
    if f == "openssh_rsa":
        return f, K.openssh_private(pool.rsa(3072), comment, rng)
    if f == "openssh_enc":
        return f, K.openssh_private(K.ed_key(rng), comment, rng, encrypted=True)
    if f in ("ppk3", "ppk2"):
        return f, K.putty_ppk(
            pool.rsa(), f"rsa-key-2026{rng.randint(1, 11):02d}{rng.randint(1, 28):02d}", 3 if f == "ppk3" else 2
        )
    if f.startswith("jwk"):
        k = pool.rsa() if f == "jwk_rsa" else K.ec_key(rng) if f == "jwk_ec" else K.ed_key(rng)
        return f, json.dumps(K.jwk_private(k, pick(rng, F.B64URL, 16)), indent=2)
    return f, K.pgp_private_block(
        K.ed_key(rng),
        rng.choice(["Release Signing Key", "CI Packages", "Backups 2026"]),
        1700000000 + rng.randint(0, 50_000_000),
    )


def _key_carrier(rng: random.Random, label: str, armoured: str, i: int) -> tuple[str, str, str, str]:
    """(place, kind, text, value)."""
    if label.startswith("jwk"):
        jwk = json.loads(armoured)
        form = i % 3
        if form == 0:
            text = armoured
            kind = "JWK file"
        elif form == 1:
            text = json.dumps({"keys": [jwk]}, indent=2)
            kind = "JWKS file"
        else:
            text = f"$ cat config/signing-key.json\n{armoured}\n"
            kind = "shell session"
        return "tool_result", kind, text, jwk["d"]
    if label.startswith("ppk"):
        name = rng.choice(["bastion", "deploy", "prod-db-tunnel"])
        text = f"$ type C:\\Users\\dev\\.ssh\\{name}.ppk\n{armoured}\n" if i % 2 else armoured + "\n"
        return "tool_result", "PuTTY key file" if not i % 2 else "shell session", text, armoured
    if label == "pgp":
        text = f"$ gpg --armor --export-secret-keys {pick(rng, HEX.upper(), 16)}\n{armoured}\n"
        return "tool_result", "shell session", text, armoured
    form = i % 9
    if form == 0:
        name = {"openssh_ed": "id_ed25519", "openssh_enc": "id_ed25519", "openssh_rsa": "id_rsa"}.get(
            label
        ) or rng.choice(["server.key", "deploy.pem", "tls.key"])
        text = f"$ cat ~/.ssh/{name}\n{armoured}\n"
        kind = "shell session"
    elif form == 1:
        text = numbered(armoured + "\n")
        return "tool_result", "file read (private key)", text, text
    elif form == 2:
        body = "\n".join("    " + ln for ln in armoured.splitlines())
        text = f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: ingress-tls\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n    -----BEGIN CERTIFICATE-----\n    MIIC...(truncated)\n    -----END CERTIFICATE-----\n  tls.key: |\n{body}\n"
        kind = "kubernetes Secret manifest"
        return "tool_result", kind, text, body.strip()
    elif form == 3:
        esc = json.dumps(armoured + "\n")[1:-1]
        text = f'GITHUB_APP_ID={rng.randint(100000, 999999)}\nGITHUB_APP_PRIVATE_KEY="{esc}"\nWEBHOOK_PATH=/api/github/webhooks\n'
        return "tool_result", ".env file", text, esc
    elif form == 4:
        text = f"can you check why paramiko rejects this key? it loads fine in ssh\n\n```\n{armoured}\n```"
        return "user", "chat message", text, armoured
    elif form == 5:
        esc = json.dumps(armoured + "\n")[1:-1]
        state = {
            "version": 4,
            "terraform_version": "1.9.5",
            "resources": [
                {
                    "mode": "managed",
                    "type": "tls_private_key",
                    "name": "deploy",
                    "instances": [
                        {
                            "attributes": {
                                "algorithm": "RSA",
                                "private_key_pem": armoured + "\n",
                                "public_key_fingerprint_md5": ":".join(pick(rng, HEX, 2) for _ in range(16)),
                            }
                        }
                    ],
                }
            ],
        }
        text = json.dumps(state, indent=2)
        return "tool_result", "terraform.tfstate", text, esc
    elif form == 6:
        text = (
            f"diff --git a/deploy/keys/{rng.choice(['bastion', 'ci'])}.key b/deploy/keys/{rng.choice(['bastion', 'ci'])}.key\nnew file mode 100600\nindex 0000000..{pick(rng, HEX, 7)}\n--- /dev/null\n+++ b/deploy/keys/ci.key\n@@ -0,0 +1,{armoured.count(chr(10)) + 1} @@\n"
            + "\n".join("+" + ln for ln in armoured.splitlines())
            + "\n"
        )
        value = "\n".join("+" + ln for ln in armoured.splitlines())
        return "tool_result", "git diff", text, value
    elif form == 7:
        text = (
            "# ansible/group_vars/bastion.yml\nbastion_user: ops\nbastion_port: 22\nbastion_ssh_key: |\n"
            + "\n".join("  " + ln for ln in armoured.splitlines())
            + "\n"
        )
        return "tool_result", "Ansible vars file", text, "\n".join("  " + ln for ln in armoured.splitlines()).strip()
    else:
        text = armoured + "\n"
        kind = "key file"
    return "tool_result", kind, text, armoured


def private_keys(rng: random.Random, ids: Ids, pool: KeyPool, n: int = 41) -> list[dict]:
    out = []
    for i in range(n):
        label, armoured = _key_material(i, rng, pool)
        place, kind, text, value = _key_carrier(rng, label, armoured, i + rng.randint(0, 8))
        out.append(record(ids("private_key"), place, kind, "credential", "private_key", text, value))
    return out


# -- JWTs --------------------------------------------------------------------------------------------


def _claims(rng: random.Random) -> dict:
    iat = 1790000000 + rng.randint(0, 9_000_000)
    c = {
        "sub": uid(rng),
        "iss": f"https://auth.{rng.choice(['northwind-freight.com', 'kestrel.dev', 'tallgrass.io'])}/",
        "aud": rng.choice(["api", "billing", "https://api.kestrel.dev"]),
        "iat": iat,
        "exp": iat + rng.choice([900, 3600, 86400]),
    }
    if rng.random() < 0.6:
        c["scope"] = rng.choice(["read write", "orders:read orders:write", "admin"])
    if rng.random() < 0.4:
        c["tenant_id"] = rng.randint(1, 9000)
    return c


def jwts(rng: random.Random, ids: Ids, n: int = 12) -> list[dict]:
    out = []
    for i in range(n):
        tok = F.jwt(rng, _claims(rng), rng.choice(["HS256", "RS256"]))
        f = i % 8
        place = "tool_result"
        if f == 0:
            kind, text = (
                "HTTP request dump",
                f"GET /v2/orders?status=open HTTP/1.1\nHost: api.internal\nAuthorization: Bearer {tok}\nAccept: application/json\nUser-Agent: python-httpx/0.27.2\n",
            )
        elif f == 1:
            kind, text = (
                "shell session",
                f'$ curl -s https://api.internal/v2/me -H "Authorization: Bearer {tok}"\n{{"id": {rng.randint(1, 9999)}, "role": "admin"}}\n',
            )
        elif f == 2:
            kind, text = (
                "browser localStorage dump",
                json.dumps(
                    {
                        "theme": "dark",
                        "auth": json.dumps({"accessToken": tok, "expiresAt": 1795000000}),
                        "lastProject": "42",
                    },
                    indent=2,
                ),
            )
        elif f == 3:
            kind, text = (
                "chat message",
                f"can you decode this and tell me why the API says the audience is wrong?\n{tok}",
            )
            place = "user"
        elif f == 4:
            kind, text = (
                "HAR excerpt",
                json.dumps(
                    {
                        "request": {
                            "method": "POST",
                            "url": "https://app.internal/graphql",
                            "headers": [
                                {"name": "content-type", "value": "application/json"},
                                {"name": "authorization", "value": f"Bearer {tok}"},
                            ],
                        }
                    },
                    indent=2,
                ),
            )
        elif f == 5:
            kind, text = (
                "python test",
                numbered(
                    f'import httpx\n\nTOKEN = "{tok}"\n\n\ndef test_orders_requires_scope():\n    r = httpx.get("http://localhost:8000/v2/orders", headers={{"Authorization": f"Bearer {{TOKEN}}"}})\n    assert r.status_code == 200\n'
                ),
            )
        elif f == 6:
            kind, text = (
                "HTTP request dump",
                f'POST /graphql HTTP/2\nhost: app.internal\ncookie: session={tok}; theme=dark\ncontent-type: application/json\n\n{{"query":"{{ viewer {{ id }} }}"}}\n',
            )
        else:
            kind, text = (
                "application log",
                f"2026-10-11T08:12:44.901Z DEBUG http.client: send: b'GET /v2/invoices HTTP/1.1\\r\\nHost: api.internal\\r\\nAuthorization: Bearer {tok}\\r\\n\\r\\n'\n2026-10-11T08:12:45.013Z DEBUG http.client: reply: 'HTTP/1.1 200 OK'\n",
            )
        out.append(record(ids("jwt"), place, kind, "credential", "jwt", text, tok))
    return out


# -- passwords ---------------------------------------------------------------------------------------

_USERS = ["app", "admin", "svc_reports", "deploy", "etl", "root", "grafana", "billing_rw", "backup"]


def _pw_forms(rng: random.Random, pw: str, upw: str) -> list[tuple[str, str, str, str]]:
    """(place, kind, text, value) candidates; ``upw`` is URL-safe."""
    u = rng.choice(_USERS)
    h = rng.choice(["db.internal", "pg-primary.prod.svc", "mysql-01.internal", "10.20.3.14", "sql.corp.lan"])
    db = rng.choice(["orders", "analytics", "app_prod", "billing"])
    return [
        (
            "tool_result",
            ".env file",
            f"APP_ENV=production\nDB_HOST={h}\nDB_USER={u}\nDB_PASSWORD={pw}\nDB_NAME={db}\n",
            pw,
        ),
        (
            "tool_result",
            "config YAML",
            f'database:\n  host: {h}\n  port: 5432\n  user: {u}\n  password: "{pw}"\n  pool_size: 10\n',
            pw,
        ),
        (
            "tool_result",
            "JSON config",
            json.dumps({"db": {"host": h, "user": u, "password": pw, "ssl": True}, "port": 8080}, indent=2),
            pw,
        ),
        (
            "tool_result",
            "INI config",
            f"[database]\nhost = {h}\nport = 3306\nuser = {u}\npassword = {pw}\n\n[cache]\nttl = 300\n",
            pw,
        ),
        (
            "tool_result",
            "TOML config",
            f'[database]\nurl = "postgresql://{h}:5432/{db}"\nuser = "{u}"\npassword = "{pw}"\n',
            pw,
        ),
        (
            "tool_result",
            ".env file",
            f"DATABASE_URL=postgresql://{u}:{upw}@{h}:5432/{db}?sslmode=require\nREDIS_URL=redis://cache.internal:6379/0\n",
            upw,
        ),
        (
            "tool_result",
            "python source",
            numbered(
                f'from pymongo import MongoClient\n\nclient = MongoClient("mongodb+srv://{u}:{upw}@cluster0.{pick(rng, "abcdefghijklmnopqrstuvwxyz0123456789", 5)}.mongodb.net/?retryWrites=true&w=majority")\ndb = client["{db}"]\n'
            ),
            upw,
        ),
        (
            "tool_result",
            "celery config",
            f'broker_url = "amqp://{u}:{upw}@rabbitmq.internal:5672/{db}"\nresult_backend = "redis://:{upw}@redis.internal:6379/1"\n',
            upw,
        ),
        (
            "tool_result",
            "alembic.ini",
            f"[alembic]\nscript_location = migrations\nsqlalchemy.url = mysql+pymysql://{u}:{upw}@{h}/{db}\n",
            upw,
        ),
        (
            "tool_result",
            "application.properties",
            f"spring.datasource.url=jdbc:postgresql://{h}:5432/{db}\nspring.datasource.username={u}\nspring.datasource.password={pw}\nspring.jpa.hibernate.ddl-auto=validate\n",
            pw,
        ),
        (
            "tool_result",
            "appsettings.json",
            json.dumps(
                {
                    "ConnectionStrings": {
                        "Default": f"Server=tcp:{db}-sql.database.windows.net,1433;Initial Catalog={db};User ID={u};Password={pw};Encrypt=True;TrustServerCertificate=False;"
                    }
                },
                indent=2,
            ),
            pw,
        ),
        (
            "tool_result",
            "pip.conf",
            f"[global]\nindex-url = https://{u}:{upw}@pypi.internal.corp/simple/\ntimeout = 60\n",
            upw,
        ),
        (
            "tool_result",
            "shell session",
            f"$ docker login registry.internal.corp:5000 -u {u} -p {pw}\nWARNING! Using --password via the CLI is insecure. Use --password-stdin.\nLogin Succeeded\n",
            pw,
        ),
        (
            "tool_result",
            "shell session",
            f'$ curl -u {u}:{pw} https://jenkins.internal/job/deploy/lastBuild/api/json | jq .result\n"SUCCESS"\n',
            pw,
        ),
        (
            "tool_result",
            "shell session",
            f"$ mysql -u {u} -p{pw} -h {h} {db} -e 'select count(*) from orders'\n+----------+\n| count(*) |\n+----------+\n|   482113 |\n+----------+\n",
            pw,
        ),
        (
            "tool_result",
            "shell session",
            f"$ PGPASSWORD='{pw}' psql -h {h} -U {u} -d {db} -c '\\dt'\n          List of relations\n Schema |   Name   | Type  | Owner\n--------+----------+-------+-------\n public | orders   | table | {u}\n",
            pw,
        ),
        (
            "tool_result",
            "shell session",
            f"$ sshpass -p '{pw}' ssh {u}@{private_ip(rng)} 'uptime'\n 14:02:11 up 41 days,  3:12,  0 users,  load average: 0.21, 0.30, 0.28\n",
            pw,
        ),
        ("tool_result", "~/.netrc", f"machine artifacts.internal.corp\n  login {u}\n  password {pw}\n", pw),
        (
            "tool_result",
            "wp-config.php",
            f"<?php\ndefine( 'DB_NAME', '{db}' );\ndefine( 'DB_USER', '{u}' );\ndefine( 'DB_PASSWORD', '{pw}' );\ndefine( 'DB_HOST', 'localhost' );\n",
            pw,
        ),
        (
            "tool_result",
            "Django settings",
            numbered(
                f'DATABASES = {{\n    "default": {{\n        "ENGINE": "django.db.backends.postgresql",\n        "NAME": "{db}",\n        "USER": "{u}",\n        "PASSWORD": "{pw}",\n        "HOST": "{h}",\n    }}\n}}\n'
            ),
            pw,
        ),
        (
            "tool_result",
            "Ansible inventory",
            f"[web]\nweb-01 ansible_host={private_ip(rng)}\n\n[web:vars]\nansible_user={u}\nansible_become_password={pw}\n",
            pw,
        ),
        (
            "tool_result",
            "Maven settings.xml",
            f"<settings>\n  <servers>\n    <server>\n      <id>internal-releases</id>\n      <username>{u}</username>\n      <password>{pw}</password>\n    </server>\n  </servers>\n</settings>\n",
            pw,
        ),
        (
            "tool_result",
            "Django settings",
            f'EMAIL_HOST = "smtp.internal.corp"\nEMAIL_PORT = 587\nEMAIL_HOST_USER = "{u}"\nEMAIL_HOST_PASSWORD = "{pw}"\nEMAIL_USE_TLS = True\n',
            pw,
        ),
        (
            "tool_result",
            "shell session",
            f"$ redis-cli -h cache.internal -a '{pw}' info keyspace\nWarning: Using a password with '-a' or '-u' option on the command line interface may not be safe.\n# Keyspace\ndb0:keys=18233,expires=1200,avg_ttl=0\n",
            pw,
        ),
        (
            "tool_result",
            "shell session",
            f"$ ldapsearch -x -H ldap://ldap.corp.lan -D 'cn={u},ou=svc,dc=corp,dc=lan' -w '{pw}' -b 'ou=people,dc=corp,dc=lan' '(uid=jdoe)' cn\n# numResponses: 2\n",
            pw,
        ),
        (
            "tool_result",
            "shell session",
            f"$ git clone https://{u}:{upw}@git.internal.corp/platform/infra.git\nCloning into 'infra'...\nremote: Enumerating objects: 5123, done.\n",
            upw,
        ),
        (
            "user",
            "chat message",
            f"the staging admin login is {u} / {pw} — can you log in to the dashboard and check why the export job is stuck?",
            pw,
        ),
        (
            "tool_result",
            "shell session",
            f"$ wget --user={u} --password='{pw}' https://artifacts.internal.corp/builds/latest.tar.gz\n--2026-10-02 09:11:04--  https://artifacts.internal.corp/builds/latest.tar.gz\nHTTP request sent, awaiting response... 200 OK\n",
            pw,
        ),
        (
            "tool_result",
            "helm values",
            f'postgresql:\n  enabled: true\n  auth:\n    username: {u}\n    password: "{pw}"\n    database: {db}\n',
            pw,
        ),
        ("tool_result", "~/.pgpass", f"{h}:5432:{db}:{u}:{pw}\nlocalhost:5432:*:postgres:{pw}\n", pw),
        (
            "tool_result",
            "Airflow connection export",
            json.dumps(
                {
                    "warehouse": {
                        "conn_type": "postgres",
                        "host": h,
                        "login": u,
                        "password": pw,
                        "schema": db,
                        "port": 5432,
                    }
                },
                indent=2,
            ),
            pw,
        ),
        (
            "tool_result",
            "shell session",
            f"$ mongosh \"mongodb://{h}:27017/{db}\" --username {u} --password '{pw}' --eval 'db.orders.countDocuments()'\n482113\n",
            pw,
        ),
        (
            "tool_result",
            "prometheus.yml",
            f"scrape_configs:\n  - job_name: node\n    basic_auth:\n      username: {u}\n      password: {pw}\n    static_configs:\n      - targets: ['{private_ip(rng)}:9100']\n",
            pw,
        ),
        (
            "tool_result",
            "kubernetes Secret manifest",
            f'apiVersion: v1\nkind: Secret\nmetadata:\n  name: {db}-db\ntype: Opaque\nstringData:\n  username: {u}\n  password: "{pw}"\n',
            pw,
        ),
    ]


def passwords(rng: random.Random, ids: Ids, n: int = 66) -> list[dict]:
    out = []
    forms_n = len(_pw_forms(random.Random(0), "x", "x"))
    order = list(range(forms_n)) * 2
    for i in range(n):
        pw, upw = F.password(rng), F.password(rng, url_safe=True)
        place, kind, text, value = _pw_forms(rng, pw, upw)[order[i % len(order)]]
        out.append(record(ids("password"), place, kind, "credential", "password", text, value))
    return out


# -- bearer / basic ----------------------------------------------------------------------------------


def _opaque(rng: random.Random) -> str:
    return rng.choice(
        [
            lambda: pick(rng, F.B64URL, rng.randint(40, 64)),
            lambda: pick(rng, HEX, 40),
            lambda: "at_" + pick(rng, F.ALNUM, 43),
            lambda: base64.b64encode(rng.randbytes(36)).decode(),
        ]
    )()


def bearer(rng: random.Random, ids: Ids, n: int = 18) -> list[dict]:
    out = []
    for i in range(n):
        t = _opaque(rng)
        f = i % 9
        place = "tool_result"
        if f == 0:
            kind, text = (
                "HTTP request dump",
                f'POST /v1/exports HTTP/1.1\nHost: reports.internal\nAuthorization: Bearer {t}\nContent-Type: application/json\nContent-Length: 58\n\n{{"format":"csv","since":"2026-10-01"}}\n',
            )
        elif f == 1:
            kind, text = (
                "shell session",
                f"$ curl -sS -X DELETE https://api.{rng.choice(['kestrel.dev', 'tallgrass.io'])}/v1/cache -H 'Authorization: Bearer {t}'\n{{\"purged\": 1834}}\n",
            )
        elif f == 2:
            kind, text = (
                "python source",
                numbered(
                    f'import requests\n\nHEADERS = {{"Authorization": "Bearer {t}", "Accept": "application/json"}}\n\nresp = requests.get("https://api.internal/v2/reports", headers=HEADERS, timeout=10)\nresp.raise_for_status()\n'
                ),
            )
        elif f == 3:
            kind, text = (
                "Postman collection",
                json.dumps(
                    {
                        "info": {
                            "name": "Reports API",
                            "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
                        },
                        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": t, "type": "string"}]},
                        "item": [
                            {"name": "List reports", "request": {"method": "GET", "url": "{{baseUrl}}/v2/reports"}}
                        ],
                    },
                    indent=2,
                ),
            )
        elif f == 4:
            kind, text = (
                "REST client .http file",
                f"### list jobs\nGET https://scheduler.internal/api/jobs?state=failed\nAuthorization: Bearer {t}\n\n### retry\nPOST https://scheduler.internal/api/jobs/8812/retry\nAuthorization: Bearer {t}\n",
            )
        elif f == 5:
            kind, text = (
                "nginx error log",
                f'2026/10/12 11:04:55 [error] 3120#3120: *88121 upstream timed out (110: Connection timed out) while reading response header from upstream, client: {private_ip(rng)}, server: api.internal, request: "GET /v2/orders HTTP/1.1", upstream: "http://{private_ip(rng)}:8000/v2/orders", host: "api.internal"\n2026/10/12 11:04:55 [debug] 3120#3120: *88121 http header: "Authorization: Bearer {t}"\n',
            )
        elif f == 6:
            kind, text = (
                "chat message",
                f"use this token for the staging API: {t}\nthen list the failed jobs and retry them",
            )
            place = "user"
        elif f == 7:
            kind, text = (
                "k6 load test script",
                numbered(
                    f"import http from 'k6/http';\n\nconst params = {{ headers: {{ Authorization: 'Bearer {t}' }} }};\n\nexport default function () {{\n  http.get('https://staging.internal/api/search?q=invoice', params);\n}}\n"
                ),
            )
        else:
            kind, text = (
                "HTTPie session",
                f'$ http GET https://api.internal/v2/users/me \'Authorization:Bearer {t}\'\nHTTP/1.1 200 OK\nContent-Type: application/json\n\n{{\n    "id": {rng.randint(1, 9999)},\n    "role": "maintainer"\n}}\n',
            )
        out.append(record(ids("bearer"), place, kind, "credential", "bearer", text, t))
    return out


def basic(rng: random.Random, ids: Ids, n: int = 12) -> list[dict]:
    out = []
    for i in range(n):
        u = rng.choice(_USERS)
        blob = base64.b64encode(f"{u}:{F.password(rng)}".encode()).decode()
        f = i % 6
        if f == 0:
            kind, text = (
                "HTTP request dump",
                f"GET /api/v1/query?query=up HTTP/1.1\nHost: prometheus.internal:9090\nAuthorization: Basic {blob}\nAccept: */*\n",
            )
        elif f == 1:
            kind, text = (
                "shell session",
                f'$ curl -H "Authorization: Basic {blob}" https://registry.internal.corp/v2/_catalog\n{{"repositories":["api","worker","web"]}}\n',
            )
        elif f == 2:
            kind, text = (
                "nginx config",
                f'location /metrics/ {{\n    proxy_pass http://{private_ip(rng)}:9090/;\n    proxy_set_header Authorization "Basic {blob}";\n}}\n',
            )
        elif f == 3:
            kind, text = (
                "application log",
                f"2026-09-30T22:10:03.551Z WARN  [webhooks.delivery] retrying POST https://hooks.partner.internal/notify headers={{'Authorization': 'Basic {blob}', 'Content-Type': 'application/json'}} attempt=3\n",
            )
        elif f == 4:
            kind, text = (
                "docker config.json",
                json.dumps({"auths": {"registry.internal.corp:5000": {"auth": blob}}, "credsStore": ""}, indent="\t"),
            )
        else:
            kind, text = (
                "python source",
                numbered(
                    f'import urllib.request\n\nreq = urllib.request.Request("https://jenkins.internal/api/json")\nreq.add_header("Authorization", "Basic {blob}")\nprint(urllib.request.urlopen(req).read()[:200])\n'
                ),
            )
        out.append(record(ids("basic"), "tool_result", kind, "credential", "basic", text, blob))
    return out


# -- buried ---------------------------------------------------------------------------------------------

_BURY_DOCS = {
    "application log": (
        L.app_log,
        lambda r, var, v: f"2026-06-14T10:22:31.004Z DEBUG [worker.config] resolved {var}={v} from environment",
    ),
    "JSON log stream": (
        L.json_log,
        lambda r, var, v: json.dumps(
            {
                "ts": "2026-06-14T10:22:31.004Z",
                "level": "debug",
                "logger": "worker.config",
                "msg": "settings resolved",
                "env": {var: v, "LOG_LEVEL": "debug"},
            }
        ),
    ),
    "python module": (
        L.python_module,
        lambda r, var, v: f'{var} = "{v}"  # TODO: read from vault again after the incident\n',
    ),
    "typescript module": (
        L.typescript_module,
        lambda r, var, v: f'const {var[0].lower()}{var.lower().title().replace("_", "")[1:]} = "{v}";\n',
    ),
    "markdown documentation": (
        L.markdown_doc,
        lambda r, var, v: f"To reproduce locally:\n\n```bash\nexport {var}={v}\n./scripts/repro.sh\n```\n",
    ),
    "CI job log": (L.ci_log, lambda r, var, v: f"2026-06-14T10:22:31.0040000Z + export {var}={v}"),
    "HTML documentation page": (
        L.html_doc,
        lambda r, var, v: f"<pre><code>export {var}={v}\n./bin/sync --dry-run</code></pre>",
    ),
    "kubernetes manifests": (
        L.k8s_yaml,
        lambda r, var, v: (
            f'---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: sync-env\ntype: Opaque\nstringData:\n  {var}: "{v}"'
        ),
    ),
    "pytest output": (
        L.pytest_output,
        lambda r, var, v: (
            f"------------------------------ Captured log call -------------------------------\nDEBUG    client:client.py:88 using {var}={v}\n"
        ),
    ),
}

_BOUNDARY = {"python module": "", "typescript module": "", "markdown documentation": "", "kubernetes manifests": "---"}


def bury_at_boundary(lines: list[str], snippet: str, rng: random.Random, boundary: str | None) -> str:
    if boundary is None:
        return L.bury(lines, snippet, rng)
    lo, hi = int(len(lines) * 0.35), int(len(lines) * 0.65)
    cands = (
        [i for i in range(lo, hi) if lines[i] == boundary]
        or [i for i, x in enumerate(lines) if x == boundary]
        or [len(lines) // 2]
    )
    at = rng.choice(cands)
    return "\n".join(lines[:at] + snippet.splitlines() + lines[at:]) + "\n"


def buried(
    rng: random.Random, ids: Ids, pool: KeyPool, makers: list[tuple[str, str, object]], n: int = 32
) -> list[dict]:
    """``makers``: (subcategory, env var, value factory)."""
    out = []
    kinds = sorted(_BURY_DOCS)
    for i in range(n):
        doc_kind = kinds[i % len(kinds)]
        gen, fmt = _BURY_DOCS[doc_kind]
        if i % 8 == 7:
            sub, var = "private_key", "PRIVATE_KEY"
            v = K.pem("EC PRIVATE KEY", K.ec_sec1(K.ec_key(rng)))
            doc_kind = "markdown documentation"
            gen = L.markdown_doc
            snippet = f"The signing key for the staging environment (rotate after the demo):\n\n```\n{v}\n```\n"
        else:
            sub, var, make = makers[rng.randrange(len(makers))]
            v = make(rng)
            snippet = fmt(rng, var, v)
        lines = gen(rng, L.long_size(rng))
        text = bury_at_boundary(lines, snippet, rng, _BOUNDARY.get(doc_kind))
        out.append(record(ids(sub), "tool_result", doc_kind, "credential", sub, text, v))
    return out
