"""Generic carriers for a credential: ``(rng, var, value) -> (kind, text)``.

Each builds a realistic document around one assignment of ``var`` to ``value``; the
surrounding settings are harmless (hosts on private names, ports, flags).
"""

from __future__ import annotations

import json
import random

from ._common import numbered
from ._fake import HEX, pick, uid
from ._filler import PROJECTS, private_ip

_BENIGN_ENV = [
    ("APP_ENV", "production"),
    ("PORT", "8080"),
    ("LOG_LEVEL", "info"),
    ("WORKERS", "4"),
    ("DATABASE_HOST", "db.internal"),
    ("DATABASE_PORT", "5432"),
    ("REDIS_URL", "redis://cache.internal:6379/0"),
    ("SENTRY_ENVIRONMENT", "prod"),
    ("FEATURE_NEW_BILLING", "false"),
    ("TZ", "UTC"),
    ("CORS_ORIGINS", "https://app.northwind-freight.com"),
    ("S3_BUCKET", "exports-prod-eu"),
    ("AWS_REGION", "eu-west-1"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector:4317"),
    ("NODE_ENV", "production"),
    ("MAX_UPLOAD_MB", "25"),
    ("CACHE_TTL_SECONDS", "300"),
    ("QUEUE_NAME", "default"),
]


def _env_lines(rng: random.Random, var: str, value: str, n: int = 7, sep: str = "=") -> list[str]:
    lines = [f"{k}{sep}{v}" for k, v in rng.sample(_BENIGN_ENV, n)]
    lines.insert(rng.randint(1, len(lines)), f"{var}{sep}{value}")
    return lines


def _yaml_key(var: str) -> str:
    return var.lower().replace("_", "-") if "-" in var else var.lower()


def dotenv(rng, var, value):
    lines = ["# generated from .env.example — do not commit", *_env_lines(rng, var, value)]
    text = "\n".join(lines) + "\n"
    return ".env file", numbered(text) if rng.random() < 0.5 else text


def shell_export(rng, var, value):
    proj = rng.choice(PROJECTS)
    return "shell session", (
        f"$ cd ~/src/{proj}\n$ export {var}={value}\n$ make integration\n"
        f"python -m pytest tests/integration -q\n........................................ [ 61%]\n"
        f"..........................                                               [100%]\n66 passed in 41.27s\n"
    )


def yaml_config(rng, var, value):
    key = var.lower()
    proj = rng.choice(PROJECTS)
    return "config YAML", (
        f"# config/{rng.choice(['production', 'staging', 'prod-eu'])}.yaml\nservice:\n  name: {proj}\n  port: 8080\n  workers: {rng.randint(2, 8)}\n"
        f'logging:\n  level: info\n  format: json\nintegrations:\n  {key.split("_")[0]}:\n    enabled: true\n    {key}: "{value}"\n    timeout_seconds: 10\n'
        f"database:\n  host: db.internal\n  port: 5432\n  name: {proj.replace('-', '_')}\n"
    )


def json_config(rng, var, value):
    cfg = {
        "name": rng.choice(PROJECTS),
        "environment": rng.choice(["production", "staging"]),
        "http": {"port": 8080, "readTimeoutMs": 30000},
        "integrations": {
            var.split("_")[0].lower(): {
                "enabled": True,
                var[0].lower() + "".join(p.capitalize() for p in var.lower().split("_"))[1:]: value,
            }
        },
        "features": {"exports": True, "betaSearch": False},
    }
    return "JSON config", json.dumps(cfg, indent=2)


def python_settings(rng, var, value):
    body = (
        '"""Deployment settings. Loaded by config/__init__.py."""\n\nimport os\n\n'
        'DEBUG = False\nALLOWED_HOSTS = ["api.internal", "localhost"]\n'
        f'{var} = os.environ.get("{var}", "{value}")\n'
        'REQUEST_TIMEOUT = 30\nCACHE_BACKEND = "redis"\n'
    )
    return "python settings module", numbered(body)


def js_config(rng, var, value):
    body = (
        "// src/config.ts\n"
        "export const config = {\n"
        "  port: Number(process.env.PORT ?? 3000),\n"
        f'  {var[0].lower() + "".join(p.capitalize() for p in var.lower().split("_"))[1:]}: process.env.{var} ?? "{value}",\n'
        '  logLevel: process.env.LOG_LEVEL ?? "info",\n'
        "};\n"
    )
    return "TypeScript source", numbered(body)


def compose(rng, var, value):
    proj = rng.choice(PROJECTS)
    return "docker-compose.yml", (
        f'services:\n  {proj}:\n    build: .\n    ports:\n      - "8080:8080"\n    environment:\n      - LOG_LEVEL=info\n'
        f"      - {var}={value}\n      - DATABASE_HOST=db\n    depends_on:\n      - db\n  db:\n    image: postgres:16\n"
        "    volumes:\n      - pgdata:/var/lib/postgresql/data\nvolumes:\n  pgdata: {}\n"
    )


def k8s_secret(rng, var, value):
    name = rng.choice(PROJECTS)
    return "kubernetes Secret manifest", (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}-env\n  namespace: {rng.choice(['prod', 'apps', 'default'])}\n"
        f'type: Opaque\nstringData:\n  {var}: "{value}"\n  LOG_LEVEL: info\n'
    )


def gha_workflow(rng, var, value):
    return "GitHub Actions workflow", (
        'name: nightly-sync\non:\n  schedule:\n    - cron: "17 3 * * *"\n  workflow_dispatch: {}\njobs:\n  sync:\n'
        "    runs-on: ubuntu-latest\n    env:\n"
        f"      {var}: {value}\n"
        '    steps:\n      - uses: actions/checkout@v4\n      - uses: actions/setup-python@v5\n        with:\n          python-version: "3.12"\n'
        "      - run: pip install -r requirements.txt\n      - run: python scripts/sync.py --since 24h\n"
    )


def git_diff(rng, var, value):
    f = rng.choice([".env.example", "config/settings.py", "deploy/values.yaml"])
    if f.endswith(".py"):
        old, new = f'{var} = os.environ["{var}"]', f'{var} = "{value}"  # TODO move back to env before merging'
        before, after = ' LOG_LEVEL = "info"\n PORT = 8080\n', ' CACHE_TTL_SECONDS = 300\n QUEUE_NAME = "default"\n'
    elif f.endswith(".yaml"):
        old, new = f'  {var.lower()}: ""', f'  {var.lower()}: "{value}"'
        before, after = " env:\n   log_level: info\n", "   cache_ttl_seconds: 300\n   queue_name: default\n"
    else:
        old, new = f"{var}=", f"{var}={value}"
        before, after = " LOG_LEVEL=info\n PORT=8080\n", " CACHE_TTL_SECONDS=300\n QUEUE_NAME=default\n"
    sha1, sha2 = pick(rng, HEX, 7), pick(rng, HEX, 7)
    hunk = rng.randint(3, 40)
    return "git diff", (
        f"diff --git a/{f} b/{f}\nindex {sha1}..{sha2} 100644\n--- a/{f}\n+++ b/{f}\n@@ -{hunk},5 +{hunk},5 @@\n"
        f"{before}-{old}\n+{new}\n{after}"
    )


def rich_traceback(rng, var, value):
    proj = rng.choice(PROJECTS)
    var_l = var.lower()
    return "python traceback with locals", (
        "╭──────────────────── Traceback (most recent call last) ────────────────────╮\n"
        f"│ /home/dev/src/{proj}/scripts/sync.py:74 in main                            │\n"
        "│                                                                            │\n"
        "│   71 │   client = Client(base_url=settings.base_url, token=token)           │\n"
        '│ ❱ 74 │   resp = client.get("/v1/projects", params={"limit": 100})          │\n'
        "│                                                                            │\n"
        "│ ╭───────────────────────────── locals ─────────────────────────────╮       │\n"
        "│ │   client = <Client base_url='https://api.internal/v1'>           │       │\n"
        f"│ │ {var_l:>8} = '{value}'\n"
        "│ │  retries = 3                                                     │       │\n"
        "│ ╰──────────────────────────────────────────────────────────────────╯       │\n"
        "╰────────────────────────────────────────────────────────────────────────────╯\n"
        "HTTPStatusError: Client error '401 Unauthorized' for url 'https://api.internal/v1/projects?limit=100'\n"
    )


def tfvars(rng, var, value):
    return "terraform.tfvars", (
        f'region       = "eu-west-1"\nenvironment  = "production"\ninstance_type = "t3.medium"\n'
        f'{var.lower():<12} = "{value}"\nenable_backups = true\n'
    )


def user_paste(rng, var, value):
    return "chat message", rng.choice(
        [
            f"my deploy keeps failing with 401. this is what's in my env, can you see anything wrong?\n\n```\n{var}={value}\nLOG_LEVEL=debug\n```",
            f"Set {var} to {value} in the CI settings and rerun the pipeline please",
            f"here's the config I'm using:\n{var}: {value}\nwhy does the client say unauthorized?",
            f"ok I exported {var}={value} but the script still can't authenticate. what else do I need?",
        ]
    )


def startup_log(rng, var, value):
    ts = f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
    return "application log", (
        f"{ts}:01.112Z INFO  boot: starting {rng.choice(PROJECTS)} 3.{rng.randint(0, 20)}.{rng.randint(0, 9)}\n"
        f"{ts}:01.118Z DEBUG config: loaded 14 keys from environment\n"
        f"{ts}:01.119Z DEBUG config: LOG_LEVEL=debug PORT=8080 WORKERS=4\n"
        f"{ts}:01.119Z DEBUG config: {var}={value}\n"
        f"{ts}:01.240Z INFO  db: connected to {private_ip(rng)}:5432 pool=10\n"
        f"{ts}:01.502Z INFO  http: listening on 0.0.0.0:8080\n"
    )


def notebook(rng, var, value):
    cells = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": 1,
                "metadata": {},
                "outputs": [],
                "source": ["import os\n", f'os.environ["{var}"] = "{value}"\n'],
            },
            {
                "cell_type": "code",
                "execution_count": 2,
                "metadata": {},
                "outputs": [{"name": "stdout", "output_type": "stream", "text": ["connected\n"]}],
                "source": ["client = make_client()\n", "print('connected')"],
            },
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return "Jupyter notebook", json.dumps(cells, indent=1)


def ini_file(rng, var, value):
    sec = var.split("_")[0].lower()
    return (
        "INI config",
        f"[server]\nhost = 0.0.0.0\nport = 8080\n\n[{sec}]\nenabled = true\n{var.lower()} = {value}\ntimeout = 15\n",
    )


def toml_file(rng, var, value):
    sec = var.split("_")[0].lower()
    return (
        "TOML config",
        f'[server]\nhost = "0.0.0.0"\nport = 8080\n\n[{sec}]\nenabled = true\n{var.lower()} = "{value}"\nretries = 3\n',
    )


def printenv(rng, var, value):
    lines = [
        "HOME=/home/runner",
        "SHELL=/bin/bash",
        f"HOSTNAME={pick(rng, HEX, 12)}",
        "PATH=/usr/local/bin:/usr/bin:/bin",
    ]
    lines += [f"{k}={v}" for k, v in rng.sample(_BENIGN_ENV, 6)]
    lines.insert(rng.randint(2, len(lines)), f"{var}={value}")
    return "printenv output", "\n".join(lines) + "\n"


def systemd_unit(rng, var, value):
    proj = rng.choice(PROJECTS)
    return "systemd unit", (
        f"[Unit]\nDescription={proj} worker\nAfter=network-online.target\n\n[Service]\nUser={proj}\n"
        f"Environment=LOG_LEVEL=info\nEnvironment={var}={value}\nExecStart=/opt/{proj}/bin/worker --queue default\nRestart=on-failure\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )


def dockerfile(rng, var, value):
    return "Dockerfile", (
        "FROM python:3.12-slim\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install --no-cache-dir -r requirements.txt\n"
        f'ENV {var}={value}\nCOPY . .\nCMD ["python", "-m", "app"]\n'
    )


def docker_inspect(rng, var, value):
    env = [f"{k}={v}" for k, v in rng.sample(_BENIGN_ENV, 4)] + [f"{var}={value}", "PATH=/usr/local/bin:/usr/bin"]
    doc = [
        {
            "Id": pick(rng, HEX, 64),
            "Created": "2026-10-02T08:14:55.3Z",
            "Config": {"Hostname": pick(rng, HEX, 12), "Env": env, "Cmd": ["python", "-m", "app"]},
        }
    ]
    return "docker inspect output", json.dumps(doc, indent=4)


def issue_comment(rng, var, value):
    return "GitHub issue comment", (
        f"**Environment**\n\n- version: 2.{rng.randint(0, 14)}.{rng.randint(0, 9)}\n- OS: Ubuntu 24.04\n\n"
        f"**Config**\n\n```\nLOG_LEVEL=debug\n{var}={value}\n```\n\n"
        "Still getting `403 Forbidden` on every call after upgrading. Downgrading fixes it."
    )


def makefile(rng, var, value):
    return "Makefile", (
        f".PHONY: deploy\n{var} ?= {value}\nREGION ?= eu-west-1\n\ndeploy:\n\t./scripts/deploy.sh --region $(REGION)\n"
    )


GENERIC = [
    dotenv,
    shell_export,
    yaml_config,
    json_config,
    python_settings,
    js_config,
    compose,
    k8s_secret,
    gha_workflow,
    git_diff,
    rich_traceback,
    tfvars,
    user_paste,
    startup_log,
    notebook,
    ini_file,
    toml_file,
    printenv,
    systemd_unit,
    dockerfile,
    docker_inspect,
    issue_comment,
    makefile,
]

PLACE_OF = {user_paste: "user"}


def system_prompt(rng, var, value):
    return "agent system prompt", (
        f"You are the release assistant for the {rng.choice(PROJECTS)} team. You can run shell commands in the "
        "repository and open pull requests. Keep answers short.\n\n"
        f"Environment for tools:\n- {var}={value}\n- default branch: main\n- CI: GitHub Actions\n"
    )


def tool_definition(rng, var, value):
    tool = {
        "name": rng.choice(["fetch_deploy_status", "query_metrics", "list_incidents", "post_release_note"]),
        "description": "Calls the internal API and returns JSON. Authentication is preconfigured.",
        "input_schema": {
            "type": "object",
            "properties": {
                "service": {"type": "string"},
                "api_token": {"type": "string", "default": value, "description": f"value of {var}"},
            },
            "required": ["service"],
        },
    }
    return "tool definition", json.dumps(tool, indent=2)


def pick_generic(rng: random.Random, i: int):
    return GENERIC[i % len(GENERIC)] if rng.random() < 0.7 else rng.choice(GENERIC)


__all__ = ["GENERIC", "PLACE_OF", "pick_generic", "system_prompt", "tool_definition", "uid"]
