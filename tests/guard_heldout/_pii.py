"""PII records: phones, public addresses, cards, emails, IBANs and SSNs where code meets them."""

from __future__ import annotations

import json
import random

from . import _fake as F
from . import _filler as L
from ._common import Ids, record
from ._fake import HEX, pick, uid
from ._filler import PROJECTS, private_ip

_PHONE_LABEL = {
    "DE": "Tel.",
    "AT": "Tel.",
    "CH": "Tel.",
    "FR": "Tél.",
    "BE": "Tél.",
    "ES": "Tel.",
    "MX": "Tel.",
    "AR": "Tel.",
    "IT": "Tel.",
    "NL": "Tel.",
    "PT": "Telefone",
    "BR": "Telefone",
    "PL": "Tel.",
    "SE": "Telefon",
    "NO": "Telefon",
    "DK": "Telefon",
    "JP": "電話",
    "CN": "电话",
    "KR": "전화",
    "RU": "Тел.",
    "UA": "Тел.",
    "TR": "Tel",
    "VN": "ĐT",
    "TH": "โทร",
    "ID": "Telp.",
    "IL": "טל׳",
    "EG": "هاتف",
    "AE": "Tel",
}
_CITY = {
    "US": "Chicago",
    "CA": "Toronto",
    "GB": "London",
    "DE": "Berlin",
    "FR": "Lyon",
    "ES": "Madrid",
    "IT": "Milano",
    "NL": "Utrecht",
    "BE": "Gent",
    "CH": "Zürich",
    "AT": "Wien",
    "SE": "Göteborg",
    "NO": "Bergen",
    "DK": "Aarhus",
    "PL": "Kraków",
    "PT": "Porto",
    "IE": "Cork",
    "BR": "São Paulo",
    "MX": "Monterrey",
    "AR": "Buenos Aires",
    "IN": "Pune",
    "CN": "上海",
    "JP": "大阪",
    "KR": "서울",
    "AU": "Brisbane",
    "NZ": "Auckland",
    "ZA": "Cape Town",
    "NG": "Lagos",
    "KE": "Nairobi",
    "EG": "Cairo",
    "TR": "İzmir",
    "RU": "Казань",
    "UA": "Львів",
    "IL": "Haifa",
    "AE": "Dubai",
    "SG": "Singapore",
    "HK": "Kowloon",
    "PH": "Cebu",
    "ID": "Bandung",
    "VN": "Đà Nẵng",
    "TH": "Chiang Mai",
}


def _name(rng):
    f, l_ = F.person(rng)
    return f, l_, f"{f} {l_}"


# -- phones ------------------------------------------------------------------------------------


def _phone_doc(rng: random.Random, cc: str, ph: str, i: int) -> tuple[str, str, str]:
    f, l_, full = _name(rng)
    label = _PHONE_LABEL.get(cc, "Phone")
    city = _CITY[cc]
    form = i % 12
    if form == 0:
        return (
            "tool_result",
            "CRM export (CSV)",
            f"id,name,city,phone,plan,created_at\n{rng.randint(1000, 99999)},{full},{city},{ph},pro,2026-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}\n",
        )
    if form == 1:
        return (
            "tool_result",
            "support ticket",
            f"Ticket #{rng.randint(10000, 99999)} — Export stuck at 99%\nRequester: {full} ({city})\n\nCustomer says the nightly export never finishes. Please call back on {ph} between 9 and 12 local time.\n\nPriority: normal\nAssignee: unassigned\n",
        )
    if form == 2:
        return (
            "tool_result",
            "HTML page (contact)",
            f'<section class="contact">\n  <h2>{full}</h2>\n  <p>{city}</p>\n  <p>{label} <a href="tel:{ph.replace(" ", "")}">{ph}</a></p>\n</section>\n',
        )
    if form == 3:
        return (
            "tool_result",
            "vCard",
            f"BEGIN:VCARD\nVERSION:3.0\nN:{l_};{f};;;\nFN:{full}\nTEL;TYPE=CELL:{ph}\nADR;TYPE=WORK:;;;{city};;;\nEND:VCARD\n",
        )
    if form == 4:
        return (
            "tool_result",
            "API JSON response",
            json.dumps(
                {
                    "id": uid(rng),
                    "name": full,
                    "phone": ph,
                    "locale": cc.lower(),
                    "verified": True,
                    "created_at": "2026-05-02T10:11:12Z",
                },
                indent=2,
                ensure_ascii=False,
            ),
        )
    if form == 5:
        return (
            "tool_result",
            "application log",
            f"2026-08-0{rng.randint(1, 9)}T12:0{rng.randint(0, 9)}:33.410Z INFO  [notifications.sms] queued verification code for user_id={rng.randint(1, 99999)} to={ph} provider=twilio\n2026-08-0{rng.randint(1, 9)}T12:0{rng.randint(0, 9)}:34.002Z INFO  [notifications.sms] delivered status=sent\n",
        )
    if form == 6:
        return (
            "user",
            "chat message",
            rng.choice(
                [
                    f"if the migration breaks anything tonight just text me on {ph}",
                    f"add a seed user for the demo: {full}, {ph}, based in {city}",
                    f"the customer's number is {ph} — can you look up their last order in the db?",
                ]
            ),
        )
    if form == 7:
        return (
            "tool_result",
            "SQL dump",
            f"INSERT INTO customers (id, full_name, phone, city) VALUES ({rng.randint(1, 99999)}, '{full}', '{ph}', '{city}');\n",
        )
    if form == 8:
        return (
            "tool_result",
            "GitHub issue comment",
            f"Thanks, this fixed it for us.\n\n--\n{full}\nPlatform team, {city}\n{label} {ph}\n",
        )
    if form == 9:
        return (
            "tool_result",
            "python traceback",
            f'Traceback (most recent call last):\n  File "/app/accounts/forms.py", line 61, in clean_phone\n    return normalize(self.cleaned_data["phone"], region="{cc}")\n  File "/app/accounts/phone.py", line 22, in normalize\n    raise ValueError(f"cannot parse {{raw!r}} for region {{region}}")\nValueError: cannot parse \'{ph}\' for region {cc}\n',
        )
    if form == 10:
        return (
            "tool_result",
            "shipping label JSON",
            json.dumps(
                {
                    "shipment_id": pick(rng, HEX, 12),
                    "recipient": {"name": full, "city": city, "country": cc, "phone": ph},
                    "service": "express",
                },
                indent=2,
                ensure_ascii=False,
            ),
        )
    return (
        "tool_result",
        "email thread (fetched)",
        f"From: {full}\nSubject: Re: onboarding call\n\nHi,\n\nTuesday works. My direct line is {ph}.\n\nBest,\n{f}\n",
    )


def phones(rng: random.Random, ids: Ids, n: int = 92) -> list[dict]:
    out = []
    for i in range(n):
        cc = F.PHONE_COUNTRIES[i % len(F.PHONE_COUNTRIES)]
        ph = F.phone(rng, cc)
        place, kind, text = _phone_doc(rng, cc, ph, i + rng.randint(0, 3))
        out.append(record(ids("phone"), place, kind, "pii", "phone", text, ph))
    return out


# -- IP addresses --------------------------------------------------------------------------------


def _ip_doc(rng: random.Random, ip: str, i: int) -> tuple[str, str, str]:
    v6 = ":" in ip
    form = i % 11
    ts = f"{rng.randint(10, 28)}/Oct/2026:{rng.randint(10, 23)}:{rng.randint(10, 59)}:{rng.randint(10, 59)} +0000"
    if form == 0:
        lines = [f'{private_ip(rng)} - - [{ts}] "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe/1.30"' for _ in range(3)]
        lines.insert(
            rng.randint(0, 3),
            f'{ip} - - [{ts}] "POST /api/v2/login HTTP/1.1" 401 63 "-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"',
        )
        return "tool_result", "nginx access log", "\n".join(lines) + "\n"
    if form == 1:
        return (
            "tool_result",
            "auth.log",
            f"Oct 12 03:14:{rng.randint(10, 59)} bastion sshd[{rng.randint(1000, 99999)}]: Failed password for invalid user admin from {ip} port {rng.randint(30000, 65000)} ssh2\nOct 12 03:14:{rng.randint(10, 59)} bastion sshd[{rng.randint(1000, 99999)}]: Connection closed by invalid user admin {ip} port {rng.randint(30000, 65000)} [preauth]\n",
        )
    if form == 2:
        return (
            "tool_result",
            "fail2ban log",
            f"2026-10-12 03:15:02,114 fail2ban.actions [812]: NOTICE  [sshd] Ban {ip}\n2026-10-12 04:15:02,201 fail2ban.actions [812]: NOTICE  [sshd] Unban {ip}\n",
        )
    if form == 3:
        return (
            "tool_result",
            "HTTP request dump",
            f"GET /v2/search?q=invoices HTTP/1.1\nHost: api.internal\nX-Forwarded-For: {ip}, {private_ip(rng)}\nX-Request-Id: {uid(rng)}\nUser-Agent: Mozilla/5.0\n",
        )
    if form == 4:
        return (
            "tool_result",
            "terraform source",
            f'resource "aws_security_group_rule" "office_ssh" {{\n  type              = "ingress"\n  from_port         = 22\n  to_port           = 22\n  protocol          = "tcp"\n  cidr_blocks       = ["{ip}/32"]\n  security_group_id = aws_security_group.bastion.id\n  description       = "office uplink"\n}}\n'
            if not v6
            else f'resource "aws_security_group_rule" "office_ssh_v6" {{\n  type              = "ingress"\n  from_port         = 22\n  to_port           = 22\n  protocol          = "tcp"\n  ipv6_cidr_blocks  = ["{ip}/128"]\n  security_group_id = aws_security_group.bastion.id\n}}\n',
        )
    if form == 5:
        return (
            "tool_result",
            "CDN log (JSON)",
            json.dumps(
                {
                    "ClientIP": ip,
                    "ClientRequestHost": "app.kestrel.dev",
                    "ClientRequestPath": "/checkout",
                    "EdgeResponseStatus": 403,
                    "RayID": pick(rng, HEX, 16),
                    "WAFAction": "block",
                }
            ),
        )
    if form == 6:
        return (
            "user",
            "chat message",
            rng.choice(
                [
                    f"I think the rate limiter blocked me, my IP is {ip}. can you check the deny list?",
                    f"whitelist {ip} on the staging firewall please, that's my home connection",
                ]
            ),
        )
    if form == 7:
        return (
            "tool_result",
            "last output",
            f"ops      pts/0        {ip:<16} Mon Oct 12 08:02   still logged in\nops      pts/1        {private_ip(rng):<16} Sun Oct 11 17:40 - 18:02  (00:21)\nreboot   system boot  6.8.0-45-generic Sat Oct 10 02:00   still running\n",
        )
    if form == 8:
        return (
            "tool_result",
            "Django error report",
            f"Internal Server Error: /api/orders/export\n\nRequest information:\nUSER: user_{rng.randint(1, 9999)}\nGET: No GET data\nMETA:\nHTTP_HOST = 'app.internal'\nREMOTE_ADDR = '{ip}'\nREQUEST_METHOD = 'POST'\nSERVER_PORT = '8000'\n",
        )
    if form == 9:
        return (
            "tool_result",
            "ss -tnp output",
            f'State  Recv-Q Send-Q Local Address:Port    Peer Address:Port  Process\nESTAB  0      0      {private_ip(rng)}:22        {"[" + ip + "]" if v6 else ip}:{rng.randint(40000, 60000)}  users:(("sshd",pid={rng.randint(1000, 9999)},fd=4))\nESTAB  0      0      127.0.0.1:5432        127.0.0.1:{rng.randint(40000, 60000)}  users:(("postgres",pid={rng.randint(1000, 9999)},fd=9))\n',
        )
    return (
        "tool_result",
        "analytics event JSON",
        json.dumps(
            {
                "event": "signup_completed",
                "ts": "2026-10-12T08:02:11Z",
                "context": {"ip": ip, "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6)", "locale": "en-GB"},
            },
            indent=2,
        ),
    )


def ips(rng: random.Random, ids: Ids, n: int = 46) -> list[dict]:
    out = []
    for i in range(n):
        ip = F.ipv6_public(rng) if i % 3 == 2 else F.ipv4_public(rng)
        place, kind, text = _ip_doc(rng, ip, i)
        out.append(record(ids("ip_address"), place, kind, "pii", "ip_address", text, ip))
    return out


# -- cards ------------------------------------------------------------------------------------------


def _card_doc(rng: random.Random, c: str, i: int) -> tuple[str, str, str]:
    _f, _l, full = _name(rng)
    exp = f"{rng.randint(1, 12):02d}/{rng.randint(27, 31)}"
    form = i % 9
    if form == 0:
        return (
            "tool_result",
            "application log",
            f'2026-09-03T14:22:10.441Z DEBUG [payments.gateway] request body={{"amount": {rng.randint(100, 99999)}, "currency": "EUR", "card_number": "{c}", "exp": "{exp}", "holder": "{full}"}}\n2026-09-03T14:22:11.002Z WARN  [payments.gateway] processor declined: do_not_honor\n',
        )
    if form == 1:
        return (
            "user",
            "chat message",
            rng.choice(
                [
                    f"the checkout test failed with my real card {c} exp {exp}, what does 'do_not_honor' mean?",
                    f"please update the billing card on the account to {c}, expiry {exp}",
                ]
            ),
        )
    if form == 2:
        return (
            "tool_result",
            "SQL query result",
            f" id  | customer      | card_number         | exp\n-----+---------------+---------------------+-------\n {rng.randint(100, 999)} | {full:<13} | {c:<19} | {exp}\n(1 row)\n",
        )
    if form == 3:
        return (
            "tool_result",
            "orders CSV",
            f"order_id,customer,total,card\n{rng.randint(10**6, 10**7)},{full},{rng.randint(10, 900)}.{rng.randint(10, 99)},{c}\n",
        )
    if form == 4:
        return (
            "tool_result",
            "python traceback with locals",
            f"Traceback (most recent call last):\n  File \"/srv/shop/checkout.py\", line 141, in charge\n    resp = gateway.authorize(card, amount)\n    card = {{'number': '{c}', 'exp': '{exp}', 'cvc': '{rng.randint(100, 999)}'}}\n    amount = {rng.randint(100, 9000)}\ngateway.errors.Declined: card declined (code 05)\n",
        )
    if form == 5:
        return (
            "tool_result",
            "HAR excerpt",
            json.dumps(
                {
                    "request": {
                        "method": "POST",
                        "url": "https://shop.internal/checkout/pay",
                        "postData": {
                            "mimeType": "application/x-www-form-urlencoded",
                            "params": [
                                {"name": "cardholder", "value": full},
                                {"name": "cardnumber", "value": c},
                                {"name": "exp-date", "value": exp},
                            ],
                        },
                    }
                },
                indent=2,
            ),
        )
    if form == 6:
        return (
            "tool_result",
            "support email (fetched)",
            f"Subject: payment failed\n\nHello, I tried to renew twice. The card is {c} (expires {exp}). Please charge it manually.\n\n{full}\n",
        )
    if form == 7:
        return (
            "tool_result",
            "POS terminal log",
            f"[{rng.randint(10, 23)}:{rng.randint(10, 59)}:{rng.randint(10, 59)}] TXN {rng.randint(10**5, 10**6)} AUTH REQ PAN={c} EXP={exp.replace('/', '')} AMT={rng.randint(100, 9000)}\n[..] TXN RESP 00 APPROVED\n",
        )
    return (
        "tool_result",
        "JSON fixture",
        json.dumps(
            [
                {
                    "model": "billing.paymentmethod",
                    "pk": rng.randint(1, 999),
                    "fields": {"holder": full, "number": c, "exp_month": int(exp[:2]), "exp_year": 2000 + int(exp[3:])},
                }
            ],
            indent=2,
        ),
    )


def cards(rng: random.Random, ids: Ids, n: int = 36) -> list[dict]:
    out = []
    for i in range(n):
        c = F.card(rng)
        place, kind, text = _card_doc(rng, c, i)
        out.append(record(ids("card"), place, kind, "pii", "card", text, c))
    return out


# -- emails -------------------------------------------------------------------------------------------


def _email_doc(rng: random.Random, e: str, full: str, i: int) -> tuple[str, str, str]:
    form = i % 12
    if form == 0:
        return (
            "tool_result",
            "git log",
            f"commit {pick(rng, HEX, 40)}\nAuthor: {full} <{e}>\nDate:   Tue Oct 6 14:02:11 2026 +0200\n\n    exports: stream rows instead of loading the whole table\n",
        )
    if form == 1:
        return (
            "tool_result",
            "package.json",
            json.dumps(
                {
                    "name": f"@{rng.choice(PROJECTS)}/ui",
                    "version": "3.2.1",
                    "author": f"{full} <{e}>",
                    "license": "MIT",
                    "main": "dist/index.js",
                },
                indent=2,
                ensure_ascii=False,
            ),
        )
    if form == 2:
        return (
            "tool_result",
            "pyproject.toml",
            f'[project]\nname = "{rng.choice(PROJECTS).replace("-", "_")}"\nversion = "0.9.0"\nauthors = [{{ name = "{full}", email = "{e}" }}]\nrequires-python = ">=3.10"\n',
        )
    if form == 3:
        return (
            "tool_result",
            "mailing list message",
            f"From: {full} <{e}>\nTo: dev@lists.internal\nSubject: [RFC] drop Python 3.9\nDate: Thu, 8 Oct 2026 09:14:02 +0000\n\nWe still have two tenants on 3.9; I'd like to give them until the end of the quarter.\n",
        )
    if form == 4:
        return (
            "tool_result",
            "git commit trailer",
            f"    fix(scheduler): release the lease on shutdown\n\n    Signed-off-by: {full} <{e}>\n",
        )
    if form == 5:
        return (
            "user",
            "chat message",
            rng.choice(
                [
                    f"send the report to {e} when it's done",
                    f"add {e} as an admin on the staging tenant",
                    f"the bug reporter was {e}, can you find their account?",
                ]
            ),
        )
    if form == 6:
        return (
            "tool_result",
            "API JSON response",
            json.dumps(
                {
                    "id": rng.randint(1, 99999),
                    "display_name": full,
                    "email": e,
                    "role": "member",
                    "last_login": "2026-10-01T07:44:02Z",
                },
                indent=2,
                ensure_ascii=False,
            ),
        )
    if form == 7:
        return (
            "tool_result",
            "Sentry event",
            json.dumps(
                {
                    "event_id": pick(rng, HEX, 32),
                    "level": "error",
                    "user": {"id": str(rng.randint(1, 99999)), "email": e},
                    "exception": {"values": [{"type": "KeyError", "value": "'tenant_id'"}]},
                },
                indent=2,
            ),
        )
    if form == 8:
        return (
            "tool_result",
            "HTML page (team)",
            f'<li class="member"><strong>{full}</strong> — maintainer — <a href="mailto:{e}">{e}</a></li>\n',
        )
    if form == 9:
        return (
            "tool_result",
            "LDAP search result",
            f"dn: uid={e.split('@')[0]},ou=people,dc=corp,dc=lan\ncn: {full}\nmail: {e}\nobjectClass: inetOrgPerson\n",
        )
    if form == 10:
        return "tool_result", ".mailmap", f"{full} <{e}> <{e.split('@')[0]}@old-laptop.local>\n"
    return (
        "tool_result",
        "SQL dump",
        f"INSERT INTO users (id, name, email, created_at) VALUES ({rng.randint(1, 99999)}, '{full}', '{e}', '2026-03-04 10:00:00');\n",
    )


def emails(rng: random.Random, ids: Ids, n: int = 36) -> list[dict]:
    out = []
    for i in range(n):
        f, l_ = F.person(rng)
        e = F.email(rng, f, l_)
        place, kind, text = _email_doc(rng, e, f"{f} {l_}", i)
        out.append(record(ids("email"), place, kind, "pii", "email", text, e))
    return out


# -- IBANs --------------------------------------------------------------------------------------------

_IBAN_LABEL = {
    "DE": "Bankverbindung",
    "AT": "Bankverbindung",
    "CH": "Bankverbindung",
    "FR": "Coordonnées bancaires",
    "BE": "Coordonnées bancaires",
    "ES": "Datos bancarios",
    "IT": "Coordinate bancarie",
    "NL": "Bankgegevens",
    "PL": "Dane do przelewu",
    "PT": "Dados bancários",
}


def _iban_doc(rng: random.Random, iban: str, cc: str, i: int) -> tuple[str, str, str]:
    f, _l, full = _name(rng)
    form = i % 8
    if form == 0:
        label = _IBAN_LABEL.get(cc, "Bank details")
        return (
            "tool_result",
            "invoice (PDF text)",
            f"INVOICE {rng.randint(2026000, 2026999)}\n\nServices rendered: backend consulting, October 2026\nTotal due: {rng.randint(900, 9000)},00 EUR\n\n{label}:\n{full}\nIBAN: {iban}\n",
        )
    if form == 1:
        raw = iban.replace(" ", "")
        return (
            "tool_result",
            "SEPA pain.001 XML",
            f'<CdtTrfTxInf>\n  <PmtId><EndToEndId>E2E-{rng.randint(10**6, 10**7)}</EndToEndId></PmtId>\n  <Amt><InstdAmt Ccy="EUR">{rng.randint(10, 5000)}.00</InstdAmt></Amt>\n  <Cdtr><Nm>{full}</Nm></Cdtr>\n  <CdtrAcct><Id><IBAN>{raw}</IBAN></Id></CdtrAcct>\n</CdtTrfTxInf>\n',
            raw,
        )
    if form == 2:
        return (
            "user",
            "chat message",
            rng.choice(
                [
                    f"the payout failed for {full}, their IBAN is {iban} — is the validation rejecting it?",
                    f"set the refund account to {iban} and rerun the job",
                ]
            ),
        )
    if form == 3:
        return (
            "tool_result",
            "payout API JSON",
            json.dumps(
                {
                    "payout_id": pick(rng, HEX, 16),
                    "beneficiary": {"name": full, "iban": iban},
                    "amount": rng.randint(100, 90000),
                    "currency": "EUR",
                    "status": "failed",
                    "failure_code": "account_closed",
                },
                indent=2,
                ensure_ascii=False,
            ),
        )
    if form == 4:
        return (
            "tool_result",
            "suppliers CSV",
            f"supplier_id;name;country;iban;terms\n{rng.randint(100, 999)};{full};{cc};{iban};30d\n",
        )
    if form == 5:
        return (
            "tool_result",
            "application log",
            f"2026-10-02T09:00:12.118Z ERROR [payouts.sepa] rejected transfer ref={pick(rng, HEX, 10)} iban={iban} reason=AC04\n",
        )
    if form == 6:
        return (
            "tool_result",
            "email (fetched)",
            f"Subject: Änderung der Bankverbindung\n\nGuten Tag,\n\nbitte überweisen Sie künftig auf folgendes Konto:\nKontoinhaber: {full}\nIBAN: {iban}\n\nMit freundlichen Grüßen\n{f}\n",
        )
    return (
        "tool_result",
        "Django fixture",
        json.dumps(
            [
                {
                    "model": "payouts.bankaccount",
                    "pk": rng.randint(1, 500),
                    "fields": {"holder": full, "iban": iban, "country": cc},
                }
            ],
            indent=2,
            ensure_ascii=False,
        ),
    )


def ibans(rng: random.Random, ids: Ids, n: int = 31) -> list[dict]:
    out = []
    countries = sorted(F.IBAN_BBAN)
    for i in range(n):
        cc = countries[i % len(countries)]
        iban = F.iban(rng, cc)
        res = _iban_doc(rng, iban, cc, i)
        place, kind, text = res[:3]
        value = res[3] if len(res) > 3 else iban
        assert F.iban_ok(value)
        out.append(record(ids("iban"), place, kind, "pii", "iban", text, value))
    return out


# -- SSNs ----------------------------------------------------------------------------------------------


def _ssn_doc(rng: random.Random, s: str, i: int) -> tuple[str, str, str]:
    f, l_, full = _name(rng)
    form = i % 8
    if form == 0:
        return (
            "tool_result",
            "HR export CSV",
            f"employee_id,name,ssn,start_date,department\nE{rng.randint(1000, 9999)},{full},{s},2024-0{rng.randint(1, 9)}-01,Engineering\n",
        )
    if form == 1:
        return (
            "tool_result",
            "background check JSON",
            json.dumps(
                {
                    "candidate": {
                        "name": full,
                        "ssn": s,
                        "dob": f"19{rng.randint(60, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
                    },
                    "status": "clear",
                },
                indent=2,
                ensure_ascii=False,
            ),
        )
    if form == 2:
        return (
            "tool_result",
            "W-2 (PDF text)",
            f"Form W-2 Wage and Tax Statement 2025\na Employee's social security number  {s}\nb Employer identification number (EIN)  {rng.randint(10, 99)}-{rng.randint(1000000, 9999999)}\ne Employee's first name and initial  Last name\n  {f}  {l_}\n1 Wages, tips, other compensation  {rng.randint(60000, 190000)}.00\n",
        )
    if form == 3:
        return (
            "user",
            "chat message",
            rng.choice(
                [
                    f"the onboarding form rejects my SSN {s}, is the regex wrong?",
                    f"here's the failing record: {full}, SSN {s}. why does the import skip it?",
                ]
            ),
        )
    if form == 4:
        return (
            "tool_result",
            "application log",
            f"2026-07-21T16:40:01.512Z WARN  [onboarding.kyc] verification mismatch applicant_id={rng.randint(1, 99999)} ssn={s} score=0.41\n",
        )
    if form == 5:
        return (
            "tool_result",
            "SQL dump",
            f"INSERT INTO employees (id, name, ssn) VALUES ({rng.randint(1, 9999)}, '{full}', '{s}');\n",
        )
    if form == 6:
        return (
            "tool_result",
            "HAR excerpt",
            json.dumps(
                {
                    "request": {
                        "method": "POST",
                        "url": "https://hr.internal/api/onboarding",
                        "postData": {
                            "mimeType": "application/json",
                            "text": json.dumps({"name": full, "ssn": s, "state": "WA"}),
                        },
                    }
                },
                indent=2,
            ),
        )
    return (
        "tool_result",
        "benefits enrollment form (text)",
        f"EMPLOYEE INFORMATION\nName: {full}\nSocial Security No.: {s}\nDependents: {rng.randint(0, 3)}\nPlan: PPO Gold\n",
    )


def ssns(rng: random.Random, ids: Ids, n: int = 20) -> list[dict]:
    out = []
    for i in range(n):
        s = F.ssn(rng, ["-", "-", " ", "-"][i % 4] if i % 7 else "")
        place, kind, text = _ssn_doc(rng, s, i)
        out.append(record(ids("ssn"), place, kind, "pii", "ssn", text, s))
    return out


# -- buried ---------------------------------------------------------------------------------------------


def buried(rng: random.Random, ids: Ids, n: int = 26) -> list[dict]:
    from ._cred_forms import bury_at_boundary

    out = []
    for i in range(n):
        sub = ["phone", "email", "ip_address", "card", "iban", "ssn", "phone", "ip_address", "email"][i % 9]
        f, l_ = F.person(rng)
        full = f"{f} {l_}"
        if sub == "phone":
            v = F.phone(rng, rng.choice(F.PHONE_COUNTRIES))
        elif sub == "email":
            v = F.email(rng, f, l_)
        elif sub == "ip_address":
            v = F.ipv4_public(rng) if i % 2 else F.ipv6_public(rng)
        elif sub == "card":
            v = F.card(rng)
        elif sub == "iban":
            v = F.iban(rng)
        else:
            v = F.ssn(rng)
        doc = i % 6
        if doc == 0:
            kind, lines, boundary = "application log", L.app_log(rng, L.long_size(rng)), None
            snippet = f"2026-06-14T10:22:31.004Z INFO  [accounts.profile] updated user_id={rng.randint(1, 99999)} field={sub} new_value={v}"
        elif doc == 1:
            kind, lines, boundary = "markdown documentation", L.markdown_doc(rng, L.long_size(rng)), ""
            snippet = f"## Contacts\n\nEscalations go to {full} ({v}) until the new on-call rotation is in place.\n"
        elif doc == 2:
            kind, lines, boundary = "python module", L.python_module(rng, L.long_size(rng)), ""
            snippet = (
                f'SAMPLE_CUSTOMER = {{"name": "{full}", "{sub}": "{v}", "tier": "gold"}}  # copied from prod ticket\n'
            )
        elif doc == 3:
            kind, lines, boundary = "JSON log stream", L.json_log(rng, L.long_size(rng)), None
            snippet = json.dumps(
                {
                    "ts": "2026-06-14T10:22:31.004Z",
                    "level": "warn",
                    "logger": "billing.webhooks",
                    "msg": "validation failed",
                    "payload": {"customer": full, sub: v},
                },
                ensure_ascii=False,
            )
        elif doc == 4:
            kind, lines, boundary = "pytest output", L.pytest_output(rng, L.long_size(rng)), None
            snippet = f"FAILED tests/test_import.py::test_customer_roundtrip - AssertionError: assert {{'name': '{full}', '{sub}': '{v}'}} == {{'name': '{full}', '{sub}': None}}"
        else:
            kind, lines, boundary = "HTML documentation page", L.html_doc(rng, L.long_size(rng)), None
            snippet = f'<p class="maintainer">Maintained by {full} &middot; {v}</p>'
        text = bury_at_boundary(lines, snippet, rng, boundary)
        out.append(record(ids(sub), "tool_result", kind, "pii", sub, text, v))
    return out


def other_places(rng: random.Random, ids: Ids) -> list[dict]:
    """PII in system prompts (agent memory) and in tool definitions (defaults)."""
    out = []
    subs = ["phone", "email", "iban", "phone", "email", "ssn", "card", "ip_address"]
    for i in range(12):
        sub = subs[i % len(subs)]
        f, l_ = F.person(rng)
        full = f"{f} {l_}"
        v = {
            "phone": lambda: F.phone(rng, rng.choice(F.PHONE_COUNTRIES)),
            "email": lambda f=f, l_=l_: F.email(rng, f, l_),
            "iban": lambda: F.iban(rng),
            "ssn": lambda: F.ssn(rng),
            "card": lambda: F.card(rng),
            "ip_address": lambda: F.ipv4_public(rng),
        }[sub]()
        label = {
            "phone": "phone",
            "email": "email",
            "iban": "bank account (IBAN)",
            "ssn": "SSN",
            "card": "card on file",
            "ip_address": "home IP (for allow-lists)",
        }[sub]
        if i < 8:
            text = (
                "You are a personal coding assistant. Facts you remember about the user:\n"
                f"- name: {full}\n- prefers: Python, small pull requests\n- {label}: {v}\n"
                "Use these facts only when the user asks you to fill in forms or configs."
            )
            out.append(record(ids(sub), "system", "agent system prompt (user memory)", "pii", sub, text, v))
        else:
            tool = {
                "name": rng.choice(["notify_owner", "send_report", "page_oncall"]),
                "description": f"Sends the result to the project owner ({full}).",
                "input_schema": {
                    "type": "object",
                    "properties": {
                        "message": {"type": "string"},
                        "recipient": {"type": "string", "default": v, "description": f"owner's {label}"},
                    },
                    "required": ["message"],
                },
            }
            out.append(
                record(
                    ids(sub),
                    "tool_definition",
                    "tool definition",
                    "pii",
                    sub,
                    json.dumps(tool, indent=2, ensure_ascii=False),
                    v,
                )
            )
    return out


def build() -> list[dict]:
    rng = random.Random("heldout-pii-2026-12-08")
    ids = Ids("pii")
    return (
        phones(rng, ids)
        + ips(rng, ids)
        + cards(rng, ids)
        + emails(rng, ids)
        + ibans(rng, ids)
        + ssns(rng, ids)
        + buried(rng, ids)
        + other_places(rng, ids)
    )
