"""Credential records: service tokens in the places coding agents meet them."""

from __future__ import annotations

import json
import random

from . import _cred_carriers as G
from . import _fake as F
from ._common import Ids, numbered, record
from ._fake import HEX, pick, uid
from ._filler import PROJECTS

ORGS = ["northwind", "tallgrass-labs", "kestrel-dev", "pinecrest", "brightwater-io", "halvorsen"]


def _repo(rng):
    return f"{rng.choice(ORGS)}/{rng.choice(PROJECTS)}"


# -- service-specific carriers: (rng, value) -> (kind, text) --------------------------


def gh_remote(rng, v):
    r = _repo(rng)
    user = rng.choice(["oauth2", "x-access-token", "deploy-bot"])
    return (
        "git remote -v output",
        f"origin\thttps://{user}:{v}@github.com/{r}.git (fetch)\norigin\thttps://{user}:{v}@github.com/{r}.git (push)\n",
    )


def gh_curl(rng, v):
    return "shell session", (
        f'$ curl -s -H "Authorization: token {v}" https://api.github.com/repos/{_repo(rng)}/pulls?state=open | jq length\n{rng.randint(0, 30)}\n'
    )


def gh_hosts(rng, v):
    return (
        "~/.config/gh/hosts.yml",
        f"github.com:\n    users:\n        {rng.choice(['mkowal', 'tnakamura', 'priya-i'])}:\n            oauth_token: {v}\n    git_protocol: https\n    oauth_token: {v}\n    user: {rng.choice(['mkowal', 'tnakamura', 'priya-i'])}\n",
    )


def gh_git_credentials(rng, v):
    return "~/.git-credentials", f"https://{rng.choice(['mkowal', 'ci-bot', 'tnakamura'])}:{v}@github.com\n"


def gh_npmrc(rng, v):
    return (
        ".npmrc",
        f"@{rng.choice(ORGS)}:registry=https://npm.pkg.github.com\n//npm.pkg.github.com/:_authToken={v}\nengine-strict=true\n",
    )


def gh_oauth_json(rng, v):
    return "OAuth token exchange response", json.dumps(
        {
            "access_token": v,
            "expires_in": 28800,
            "refresh_token_expires_in": 15811200,
            "token_type": "bearer",
            "scope": "",
        },
        indent=2,
    )


def gh_refresh_json(rng, v):
    return "OAuth token exchange response", json.dumps(
        {
            "access_token": F.github(rng, "ghu"),
            "expires_in": 28800,
            "refresh_token": v,
            "refresh_token_expires_in": 15811200,
            "token_type": "bearer",
        },
        indent=2,
    )


def gh_actions_log(rng, v):
    return "CI job log", (
        "2026-09-14T11:02:07.1120000Z ##[group]Run git push origin HEAD:release\n"
        f"2026-09-14T11:02:07.1123000Z git push https://x-access-token:{v}@github.com/{_repo(rng)}.git HEAD:release\n"
        "2026-09-14T11:02:08.9400000Z To https://github.com/" + _repo(rng) + ".git\n"
        "2026-09-14T11:02:08.9401000Z  * [new branch]      HEAD -> release\n"
    )


def gh_netrc(rng, v):
    return (
        "~/.netrc",
        f"machine github.com\n  login {rng.choice(['mkowal', 'ci-bot'])}\n  password {v}\nmachine api.github.com\n  login {rng.choice(['mkowal', 'ci-bot'])}\n  password {v}\n",
    )


def gl_remote(rng, v):
    return (
        "git remote -v output",
        f"origin\thttps://oauth2:{v}@gitlab.com/{_repo(rng)}.git (fetch)\norigin\thttps://oauth2:{v}@gitlab.com/{_repo(rng)}.git (push)\n",
    )


def gl_curl(rng, v):
    return (
        "shell session",
        f'$ curl --header "PRIVATE-TOKEN: {v}" "https://gitlab.com/api/v4/projects?membership=true&per_page=5" | jq \'.[].path\'\n"api"\n"web"\n"infra"\n',
    )


def gl_runner(rng, v):
    return "gitlab-runner config.toml", (
        f'concurrent = 4\ncheck_interval = 0\n\n[[runners]]\n  name = "{rng.choice(PROJECTS)}-runner"\n  url = "https://gitlab.com"\n'
        f'  token = "{v}"\n  executor = "docker"\n  [runners.docker]\n    image = "alpine:3.20"\n    privileged = false\n'
    )


def gl_ci(rng, v):
    return (
        ".gitlab-ci.yml",
        f'variables:\n  GITLAB_TOKEN: "{v}"\n  DOCKER_DRIVER: overlay2\n\nrelease:\n  stage: deploy\n  script:\n    - ./scripts/release.sh\n  only:\n    - tags\n',
    )


def npmrc(rng, v):
    return ".npmrc", f"registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken={v}\nsave-exact=true\n"


def yarnrc(rng, v):
    return (
        ".yarnrc.yml",
        f'nodeLinker: node-modules\nnpmRegistryServer: "https://registry.npmjs.org"\nnpmAuthToken: {v}\nyarnPath: .yarn/releases/yarn-4.5.0.cjs\n',
    )


def npm_publish_log(rng, v):
    return "CI job log", (
        f'+ echo "//registry.npmjs.org/:_authToken={v}" > ~/.npmrc\n+ npm publish --access public\n'
        f"npm notice 📦  @{rng.choice(ORGS)}/{rng.choice(PROJECTS)}@{rng.randint(1, 5)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}\nnpm notice Tarball Contents\n"
    )


def pypirc(rng, v):
    return "~/.pypirc", f"[distutils]\nindex-servers =\n    pypi\n\n[pypi]\nusername = __token__\npassword = {v}\n"


def twine(rng, v):
    return (
        "shell session",
        f"$ twine upload -u __token__ -p {v} dist/*\nUploading distributions to https://upload.pypi.org/legacy/\nUploading {rng.choice(PROJECTS).replace('-', '_')}-1.{rng.randint(0, 9)}.0-py3-none-any.whl\n100% ━━━━━━━━━━━━━━━━━━━━ 41.2/41.2 kB • 00:00\n",
    )


def poetry(rng, v):
    return (
        "shell session",
        f"$ poetry config pypi-token.pypi {v}\n$ poetry publish --build\nBuilding {rng.choice(PROJECTS)} (0.{rng.randint(1, 30)}.0)\nPublishing to PyPI\n",
    )


def docker_login(rng, v):
    return (
        "shell session",
        f"$ docker login -u {rng.choice(['northwindci', 'tallgrassbot', 'kestreldeploy'])} -p {v}\nWARNING! Using --password via the CLI is insecure. Use --password-stdin.\nLogin Succeeded\n",
    )


def docker_ci(rng, v):
    return (
        "GitHub Actions workflow",
        f"      - uses: docker/login-action@v3\n        with:\n          username: {rng.choice(['northwindci', 'tallgrassbot'])}\n          password: {v}\n      - uses: docker/build-push-action@v6\n        with:\n          push: true\n          tags: {rng.choice(ORGS)}/api:latest\n",
    )


def hf_cli(rng, v):
    return (
        "shell session",
        f"$ huggingface-cli login --token {v}\nToken is valid (permission: write).\nYour token has been saved to /home/dev/.cache/huggingface/token\nLogin successful\n",
    )


def hf_python(rng, v):
    return "python script", numbered(
        f'from huggingface_hub import login, snapshot_download\n\nlogin(token="{v}")\npath = snapshot_download("{rng.choice(ORGS)}/intent-classifier", revision="main")\nprint(path)\n'
    )


def slack_python(rng, v):
    return "python source", numbered(
        f'from slack_sdk import WebClient\n\nclient = WebClient(token="{v}")\n\n\ndef notify(channel: str, text: str) -> None:\n    client.chat_postMessage(channel=channel, text=text)\n'
    )


def slack_bolt_env(rng, v):
    return ".env file", f"SLACK_APP_TOKEN={v}\nSLACK_SIGNING_SECRET_FILE=/run/secrets/slack_signing\nLOG_LEVEL=info\n"


def slack_webhook_curl(rng, v):
    return (
        "shell session",
        f"$ curl -X POST -H 'Content-type: application/json' --data '{{\"text\":\"deploy {pick(rng, HEX, 7)} finished\"}}' {v}\nok\n",
    )


def slack_webhook_yaml(rng, v):
    return (
        "alertmanager config",
        f"receivers:\n  - name: oncall-slack\n    slack_configs:\n      - api_url: {v}\n        channel: '#alerts-prod'\n        send_resolved: true\n",
    )


def stripe_python(rng, v):
    return "python source", numbered(
        f'import stripe\n\nstripe.api_key = "{v}"\n\n\ndef refund(charge_id: str) -> None:\n    stripe.Refund.create(charge=charge_id)\n'
    )


def stripe_curl(rng, v):
    return (
        "shell session",
        f'$ curl https://api.stripe.com/v1/balance -u {v}:\n{{\n  "object": "balance",\n  "livemode": true\n}}\n',
    )


def stripe_node(rng, v):
    return "JavaScript source", numbered(
        f"const Stripe = require('stripe');\nconst stripe = new Stripe('{v}', {{ apiVersion: '2024-06-20' }});\n\nmodule.exports = stripe;\n"
    )


def twilio_python(rng, v):
    return "python source", numbered(
        f'from twilio.rest import Client\n\nACCOUNT_SID = "{F.twilio_sid(rng)}"\nAUTH_TOKEN = "{v}"\nclient = Client(ACCOUNT_SID, AUTH_TOKEN)\n'
    )


def twilio_curl(rng, v):
    return (
        "shell session",
        f'$ curl -X POST https://api.twilio.com/2010-04-01/Accounts/{F.twilio_sid(rng)}/Messages.json -u {F.twilio_sid(rng)}:{v} --data-urlencode "Body=build green"\n',
    )


def twilio_apikey(rng, v):
    return (
        ".env file",
        f"TWILIO_ACCOUNT_SID={F.twilio_sid(rng)}\nTWILIO_API_KEY={v}\nTWILIO_API_SECRET={pick(rng, F.ALNUM, 32)}\n",
    )


def sendgrid_curl(rng, v):
    return (
        "shell session",
        f'$ curl -s https://api.sendgrid.com/v3/scopes -H "Authorization: Bearer {v}"\n{{"scopes":["mail.send"]}}\n',
    )


def shopify_curl(rng, v):
    return (
        "shell session",
        f'$ curl -s -H "X-Shopify-Access-Token: {v}" https://{rng.choice(PROJECTS)}.myshopify.com/admin/api/2024-07/shop.json | jq .shop.plan_name\n"shopify_plus"\n',
    )


def do_cli(rng, v):
    return (
        "shell session",
        f"$ doctl auth init --access-token {v}\nValidating token... ✔\n$ doctl kubernetes cluster list\nID                                      Name        Region    Version\n{uid(rng)}    prod-ams3   ams3      1.30.4-do.0\n",
    )


def do_tf(rng, v):
    return (
        "terraform provider block",
        f'provider "digitalocean" {{\n  token = "{v}"\n}}\n\nresource "digitalocean_droplet" "web" {{\n  image  = "ubuntu-24-04-x64"\n  name   = "web-1"\n  region = "fra1"\n  size   = "s-1vcpu-1gb"\n}}\n',
    )


def atl_curl(rng, v):
    return (
        "shell session",
        f"$ curl -s -u \"$JIRA_USER:{v}\" -H 'Accept: application/json' https://{rng.choice(ORGS)}.atlassian.net/rest/api/3/myself | jq .active\ntrue\n",
    )


def vault_login(rng, v):
    return "shell session", (
        f"$ vault login -method=oidc\nSuccess! You are now authenticated.\n\nKey                  Value\n---                  -----\ntoken                {v}\n"
        f'token_accessor       {pick(rng, F.ALNUM, 24)}\ntoken_duration       768h\ntoken_renewable      true\ntoken_policies       ["default" "dev"]\n'
    )


def tf_credentials(rng, v):
    return "~/.terraform.d/credentials.tfrc.json", json.dumps(
        {"credentials": {"app.terraform.io": {"token": v}}}, indent=2
    )


def databrickscfg(rng, v):
    return (
        "~/.databrickscfg",
        f"[DEFAULT]\nhost  = https://dbc-{pick(rng, HEX, 8)}-{pick(rng, HEX, 4)}.cloud.databricks.com\ntoken = {v}\n\n[staging]\nhost  = https://adb-{rng.randint(10**15, 10**16)}.7.azuredatabricks.net\n",
    )


def dd_yaml(rng, v):
    return (
        "datadog.yaml",
        f"site: datadoghq.eu\napi_key: {v}\nlogs_enabled: true\napm_config:\n  enabled: true\nprocess_config:\n  process_collection:\n    enabled: false\n",
    )


def dd_helm(rng, v):
    return (
        "helm values",
        f"datadog:\n  apiKey: {v}\n  site: datadoghq.com\n  logs:\n    enabled: true\n    containerCollectAll: true\nclusterAgent:\n  enabled: true\n",
    )


def openai_python(rng, v):
    return "python source", numbered(
        f'from openai import OpenAI\n\nclient = OpenAI(api_key="{v}")\nresp = client.responses.create(model="gpt-4.1-mini", input="ping")\nprint(resp.output_text)\n'
    )


def openai_curl(rng, v):
    return (
        "shell session",
        f'$ curl https://api.openai.com/v1/models -H "Authorization: Bearer {v}" | head -5\n{{\n  "object": "list",\n  "data": [\n',
    )


def anthropic_python(rng, v):
    return "python source", numbered(
        f'import anthropic\n\nclient = anthropic.Anthropic(api_key="{v}")\nmsg = client.messages.create(model="claude-sonnet-4-5", max_tokens=256, messages=[{{"role": "user", "content": "hi"}}])\n'
    )


def anthropic_curl(rng, v):
    return (
        "shell session",
        f'$ curl https://api.anthropic.com/v1/messages -H "x-api-key: {v}" -H "anthropic-version: 2023-06-01" -H "content-type: application/json" -d @req.json\n{{"type":"error","error":{{"type":"overloaded_error"}}}}\n',
    )


def gcp_key_curl(rng, v):
    return (
        "shell session",
        f'$ curl "https://maps.googleapis.com/maps/api/geocode/json?address=Rotterdam&key={v}" | jq .status\n"OK"\n',
    )


def gcp_key_server(rng, v):
    return "python source", numbered(
        f'import googlemaps\n\n# server-side geocoding for the nightly address clean-up job\ngmaps = googlemaps.Client(key="{v}")\nresult = gmaps.geocode("Stationsplein 1, Rotterdam")\n'
    )


SERVICES = [
    # subcategory, count, value factory, env var names, specific carriers
    (
        "github",
        7,
        lambda r: F.github(r, "ghp"),
        ["GITHUB_TOKEN", "GH_TOKEN", "GITHUB_PAT"],
        [gh_remote, gh_curl, gh_git_credentials, gh_netrc, gh_npmrc],
    ),
    ("github", 5, lambda r: F.github(r, "gho"), ["GH_TOKEN", "GITHUB_OAUTH_TOKEN"], [gh_hosts, gh_oauth_json, gh_curl]),
    ("github", 4, lambda r: F.github(r, "ghu"), ["GITHUB_USER_TOKEN"], [gh_oauth_json, gh_curl]),
    (
        "github",
        5,
        lambda r: F.github(r, "ghs"),
        ["GITHUB_TOKEN", "GH_APP_INSTALLATION_TOKEN"],
        [gh_actions_log, gh_remote],
    ),
    ("github", 4, lambda r: F.github(r, "ghr"), ["GITHUB_REFRESH_TOKEN"], [gh_refresh_json]),
    (
        "github",
        9,
        F.github_pat,
        ["GITHUB_TOKEN", "GH_PAT", "RENOVATE_TOKEN"],
        [gh_remote, gh_curl, gh_git_credentials, gh_npmrc],
    ),
    ("gitlab", 6, lambda r: F.gitlab(r, "glpat"), ["GITLAB_TOKEN", "GL_TOKEN"], [gl_remote, gl_curl, gl_ci]),
    ("gitlab", 3, lambda r: F.gitlab(r, "glrt"), ["RUNNER_TOKEN"], [gl_runner]),
    ("gitlab", 2, lambda r: F.gitlab(r, "gldt"), ["GITLAB_DEPLOY_TOKEN"], [gl_remote]),
    ("gitlab", 1, lambda r: F.gitlab(r, "glptt"), ["TRIGGER_TOKEN"], []),
    ("gitlab", 1, lambda r: F.gitlab(r, "gloas"), ["GITLAB_OAUTH_SECRET"], []),
    ("gitlab", 1, lambda r: F.gitlab(r, "glft"), ["GITLAB_FEED_TOKEN"], []),
    ("npm", 10, F.npm, ["NPM_TOKEN", "NODE_AUTH_TOKEN"], [npmrc, yarnrc, npm_publish_log]),
    ("pypi", 10, F.pypi, ["PYPI_TOKEN", "TWINE_PASSWORD", "POETRY_PYPI_TOKEN_PYPI"], [pypirc, twine, poetry]),
    ("docker", 8, F.docker_pat, ["DOCKERHUB_TOKEN", "DOCKER_PASSWORD"], [docker_login, docker_ci]),
    ("huggingface", 8, F.huggingface, ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"], [hf_cli, hf_python]),
    ("slack", 5, F.slack_bot, ["SLACK_BOT_TOKEN"], [slack_python]),
    ("slack", 3, F.slack_user, ["SLACK_USER_TOKEN"], [slack_python]),
    ("slack", 2, F.slack_app, ["SLACK_APP_TOKEN"], [slack_bolt_env]),
    ("slack", 4, F.slack_webhook, ["SLACK_WEBHOOK_URL"], [slack_webhook_curl, slack_webhook_yaml]),
    (
        "stripe",
        7,
        lambda r: F.stripe(r, "sk_live_"),
        ["STRIPE_SECRET_KEY", "STRIPE_API_KEY"],
        [stripe_python, stripe_curl, stripe_node],
    ),
    ("stripe", 3, lambda r: F.stripe(r, "rk_live_"), ["STRIPE_RESTRICTED_KEY"], [stripe_node]),
    ("twilio", 5, lambda r: pick(r, HEX, 32), ["TWILIO_AUTH_TOKEN"], [twilio_python, twilio_curl]),
    ("twilio", 3, F.twilio_key, ["TWILIO_API_KEY"], [twilio_apikey]),
    ("sendgrid", 7, F.sendgrid, ["SENDGRID_API_KEY"], [sendgrid_curl]),
    ("shopify", 5, lambda r: F.shopify(r, "shpat_"), ["SHOPIFY_ACCESS_TOKEN"], [shopify_curl]),
    ("shopify", 2, lambda r: F.shopify(r, "shpss_"), ["SHOPIFY_API_SECRET"], []),
    ("digitalocean", 7, F.digitalocean, ["DIGITALOCEAN_TOKEN", "DO_API_TOKEN"], [do_cli, do_tf]),
    ("atlassian", 7, F.atlassian, ["JIRA_API_TOKEN", "CONFLUENCE_TOKEN", "ATLASSIAN_API_TOKEN"], [atl_curl]),
    ("vault", 5, F.vault, ["VAULT_TOKEN"], [vault_login]),
    ("vault", 2, lambda r: F.vault(r, legacy=True), ["VAULT_TOKEN"], []),
    ("terraform_cloud", 6, F.terraform, ["TF_TOKEN_app_terraform_io", "TFE_TOKEN"], [tf_credentials]),
    ("databricks", 7, F.databricks, ["DATABRICKS_TOKEN"], [databrickscfg]),
    ("datadog", 5, F.datadog_api, ["DD_API_KEY", "DATADOG_API_KEY"], [dd_yaml, dd_helm]),
    ("datadog", 2, F.datadog_app, ["DD_APP_KEY", "DATADOG_APP_KEY"], []),
    ("openai", 10, F.openai, ["OPENAI_API_KEY"], [openai_python, openai_curl]),
    ("anthropic", 8, F.anthropic, ["ANTHROPIC_API_KEY"], [anthropic_python, anthropic_curl]),
    ("anthropic", 2, lambda r: F.anthropic(r, admin=True), ["ANTHROPIC_ADMIN_KEY"], []),
    ("gcp_api_key", 4, F.gcp_api_key, ["GOOGLE_MAPS_API_KEY", "GOOGLE_API_KEY"], [gcp_key_curl, gcp_key_server]),
]


def _service_records(rng: random.Random, ids: Ids) -> list[dict]:
    out = []
    for sub, count, make, envs, specific in SERVICES:
        for i in range(count):
            v = make(rng)
            var = rng.choice(envs)
            place = "tool_result"
            roll, where = rng.random(), rng.random()
            if len(out) % 29 == 7:
                kind, text = G.system_prompt(rng, var, v)
                place = "system"
            elif len(out) % 29 == 19:
                kind, text = G.tool_definition(rng, var, v)
                place = "tool_definition"
            elif where < 0.12:
                kind, text = G.user_paste(rng, var, v)
                place = "user"
            elif specific and (i % 2 == 0 or roll < 0.3):
                kind, text = specific[(i // 2) % len(specific)](rng, v)
            else:
                fn = G.pick_generic(rng, i + len(out))
                kind, text = fn(rng, var, v)
                place = G.PLACE_OF.get(fn, "tool_result")
            out.append(record(ids(sub), place, kind, "credential", sub, text, v))
    return out


# -- AWS ----------------------------------------------------------------------------------


def _aws_records(rng: random.Random, ids: Ids) -> list[dict]:
    out = []
    for i in range(18):
        kid = F.aws_key_id(rng, "ASIA" if i % 6 == 5 else "AKIA")
        sec = F.aws_secret(rng)
        value = sec if i % 3 else kid
        form = i % 9
        if form == 0:
            kind, text = (
                "~/.aws/credentials",
                f"[default]\naws_access_key_id = {kid}\naws_secret_access_key = {sec}\n\n[{rng.choice(['staging', 'prod', 'sandbox'])}]\nrole_arn = arn:aws:iam::{rng.randint(10**11, 10**12 - 1)}:role/deploy\nsource_profile = default\n",
            )
        elif form == 1:
            kind, text = (
                "shell session",
                f"$ export AWS_ACCESS_KEY_ID={kid}\n$ export AWS_SECRET_ACCESS_KEY={sec}\n$ aws s3 ls\n2025-11-02 09:14:31 exports-prod-eu\n2026-02-19 16:40:02 tf-state-{pick(rng, HEX, 6)}\n",
            )
        elif form == 2:
            kind, text = (
                "python source",
                numbered(
                    f'import boto3\n\ns3 = boto3.client(\n    "s3",\n    region_name="eu-west-1",\n    aws_access_key_id="{kid}",\n    aws_secret_access_key="{sec}",\n)\n'
                ),
            )
        elif form == 3:
            kind, text = (
                "terraform provider block",
                f'provider "aws" {{\n  region     = "us-east-1"\n  access_key = "{kid}"\n  secret_key = "{sec}"\n}}\n',
            )
        elif form == 4:
            kind, text = (
                "GitHub Actions workflow",
                f"    steps:\n      - uses: aws-actions/configure-aws-credentials@v4\n        with:\n          aws-access-key-id: {kid}\n          aws-secret-access-key: {sec}\n          aws-region: eu-central-1\n",
            )
        elif form == 5:
            tok = F.aws_session_token(rng)
            kind, text = (
                "aws sts assume-role output",
                json.dumps(
                    {
                        "Credentials": {
                            "AccessKeyId": kid,
                            "SecretAccessKey": sec,
                            "SessionToken": tok,
                            "Expiration": "2026-11-30T18:04:11+00:00",
                        },
                        "AssumedRoleUser": {
                            "AssumedRoleId": f"AROA{pick(rng, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', 17)}:ci",
                            "Arn": f"arn:aws:sts::{rng.randint(10**11, 10**12 - 1)}:assumed-role/ci/ci",
                        },
                    },
                    indent=4,
                ),
            )
        elif form == 6:
            kind, text = (
                "JavaScript source",
                numbered(
                    f"const {{ S3Client }} = require('@aws-sdk/client-s3');\n\nconst s3 = new S3Client({{\n  region: 'eu-west-1',\n  credentials: {{ accessKeyId: '{kid}', secretAccessKey: '{sec}' }},\n}});\n"
                ),
            )
        elif form == 7:
            kind, text = (
                "chat message",
                f"The upload script says SignatureDoesNotMatch. I'm using\nAWS_ACCESS_KEY_ID={kid}\nAWS_SECRET_ACCESS_KEY={sec}\nIs the region wrong?",
            )
        else:
            kind, text = (
                "docker-compose.yml",
                f"services:\n  worker:\n    image: {rng.choice(ORGS)}/worker:2.3\n    environment:\n      AWS_ACCESS_KEY_ID: {kid}\n      AWS_SECRET_ACCESS_KEY: {sec}\n      AWS_DEFAULT_REGION: eu-west-1\n",
            )
        out.append(record(ids("aws"), "user" if form == 7 else "tool_result", kind, "credential", "aws", text, value))
    return out


# -- Azure, GCP service accounts --------------------------------------------------------


def _azure_records(rng: random.Random, ids: Ids) -> list[dict]:
    out = []
    for i in range(6):
        acct = rng.choice(["nwfreightprod", "tallgrassexports", "kestrelassets", "pcrhealthdata"]) + str(
            rng.randint(1, 99)
        )
        key = F.azure_account_key(rng)
        cs = f"DefaultEndpointsProtocol=https;AccountName={acct};AccountKey={key};EndpointSuffix=core.windows.net"
        form = i % 3
        if form == 0:
            kind, text = (
                "appsettings.json",
                json.dumps(
                    {
                        "Logging": {"LogLevel": {"Default": "Information"}},
                        "ConnectionStrings": {"Blob": cs},
                        "AllowedHosts": "*",
                    },
                    indent=2,
                ),
            )
        elif form == 1:
            kind, text = (
                "Azure Functions local.settings.json",
                json.dumps(
                    {"IsEncrypted": False, "Values": {"AzureWebJobsStorage": cs, "FUNCTIONS_WORKER_RUNTIME": "python"}},
                    indent=2,
                ),
            )
        else:
            kind, text = (
                "shell session",
                f'$ az storage blob list --container-name exports --connection-string "{cs}" -o table\nName                      Blob Type    Length\n------------------------  -----------  --------\nreport-2026-11.csv        BlockBlob    184302\n',
            )
        out.append(record(ids("azure_storage"), "tool_result", kind, "credential", "azure_storage", text, key))
    for i in range(4):
        ns = rng.choice(["nw-orders", "tallgrass-events", "kestrel-bus"]) + f"-{rng.choice(['prod', 'weu'])}"
        key = F.azure_sas_key(rng)
        cs = f"Endpoint=sb://{ns}.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={key}"
        if i % 2:
            kind, text = (
                "appsettings.Production.json",
                json.dumps({"ServiceBus": {"ConnectionString": cs, "Queue": "orders"}}, indent=2),
            )
        else:
            kind, text = (
                "python source",
                numbered(
                    f'from azure.servicebus import ServiceBusClient\n\nCONN = "{cs}"\nclient = ServiceBusClient.from_connection_string(CONN)\n'
                ),
            )
        out.append(record(ids("azure_servicebus"), "tool_result", kind, "credential", "azure_servicebus", text, key))
    return out


def _gcp_records(rng: random.Random, ids: Ids, keys) -> list[dict]:
    out = []
    for i in range(7):
        proj = f"{rng.choice(PROJECTS)}-{rng.randint(100000, 999999)}"
        pk = keys.pem_pkcs8(rng) + "\n"
        sa = {
            "type": "service_account",
            "project_id": proj,
            "private_key_id": pick(rng, HEX, 40),
            "private_key": pk,
            "client_email": f"{rng.choice(['ci-deployer', 'exporter', 'bq-reader'])}@{proj}.iam.gserviceaccount.com",
            "client_id": str(rng.randint(10**20, 10**21 - 1)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/ci-deployer%40{proj}.iam.gserviceaccount.com",
            "universe_domain": "googleapis.com",
        }
        body = json.dumps(sa, indent=2)
        value = json.dumps(pk)[1:-1]
        if i % 3 == 0:
            text, kind = f"$ cat ~/Downloads/{proj}-{sa['private_key_id'][:12]}.json\n{body}\n", "shell session"
        elif i % 3 == 1:
            text, kind = body, "service account key file"
        else:
            text = (
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: gcp-sa\ntype: Opaque\nstringData:\n  key.json: |\n"
                + "\n".join("    " + ln for ln in body.splitlines())
                + "\n"
            )
            kind = "kubernetes Secret manifest"
        assert value in text
        out.append(
            record(ids("gcp_service_account"), "tool_result", kind, "credential", "gcp_service_account", text, value)
        )
    return out


def build() -> list[dict]:
    from . import _cred_forms as C

    rng = random.Random("heldout-credential-2026-12-08")
    pool = C.KeyPool("heldout-rsa-pool-2026-12-08")
    ids = Ids("cred")
    out = _service_records(rng, ids)
    out += _aws_records(rng, ids)
    out += _azure_records(rng, ids)
    out += _gcp_records(rng, ids, pool)
    out += C.private_keys(rng, ids, pool)
    out += C.jwts(rng, ids)
    out += C.passwords(rng, ids)
    out += C.bearer(rng, ids)
    out += C.basic(rng, ids)
    makers = [(sub, envs[0], make) for sub, _, make, envs, _ in SERVICES]
    makers.append(("aws", "AWS_SECRET_ACCESS_KEY", F.aws_secret))
    out += C.buried(rng, ids, pool, makers)
    return out
