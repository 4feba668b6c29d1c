"""bench.peers: the peers' generated configuration, the wrk script with extra headers,
and the loopback shim that keeps the Portkey gateway off other interfaces."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import peers, wrk
from bench.bodies import MODEL
from bench.targets import FAKE_KEY


def test_nginx_conf_is_a_plain_keepalive_reverse_proxy_on_loopback(tmp_path: Path) -> None:
    conf = peers.nginx_conf(tmp_path, 8081, 9000, "root")
    assert "${" not in conf
    assert "listen 127.0.0.1:8081;" in conf
    assert "server 127.0.0.1:9000;" in conf
    for line in ("worker_processes 1;", "keepalive 64;", "proxy_pass http://fake;", "proxy_http_version 1.1;",
                 'proxy_set_header Connection "";', "proxy_buffering off;", "client_max_body_size 0;",
                 "user root;", f"pid {tmp_path}/nginx.pid;"):
        assert line in conf, line
    assert "user " not in peers.nginx_conf(tmp_path, 8081, 9000, None)


@pytest.mark.skipif(not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()), reason="nginx not installed")
def test_nginx_accepts_the_conf(tmp_path: Path) -> None:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = tmp_path / "nginx.conf"
    conf.write_text(peers.nginx_conf(tmp_path, 8081, 9000, None))
    done = subprocess.run([binary, "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"),
                           "-c", str(conf)], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr


def test_litellm_config_routes_the_bench_model_to_the_fake() -> None:
    text = peers.litellm_config(9000, "sk-master")
    assert "${" not in text
    assert f"  - model_name: {MODEL}\n" in text
    assert f"      model: anthropic/{MODEL}\n" in text
    assert "      api_base: http://127.0.0.1:9000\n" in text
    assert f"      api_key: {FAKE_KEY}\n" in text
    assert "  master_key: sk-master\n" in text


def test_only_portkey_needs_extra_headers() -> None:
    assert peers.extra_headers("portkey", 9000) == {
        "x-portkey-provider": "anthropic", "x-portkey-custom-host": "http://127.0.0.1:9000/v1"}
    for name in ("nginx", "litellm", "direct", "passthrough", "aiogw"):
        assert peers.extra_headers(name, 9000) == {}


def test_wrk_script_sets_the_headers_before_post_lua(tmp_path: Path) -> None:
    assert peers.wrk_script("nginx", {}, tmp_path) == wrk.SCRIPT
    path = peers.wrk_script("portkey", {"x-a": "1", "x-b": "http://h:1/v1"}, tmp_path)
    text = path.read_text()
    assert path.parent == tmp_path
    assert 'wrk.headers["x-a"] = "1"\nwrk.headers["x-b"] = "http://h:1/v1"\n' in text
    assert text.endswith(wrk.SCRIPT.read_text())
    with pytest.raises(ValueError):
        peers.wrk_script("x", {"x-a": 'say "hi"'}, tmp_path)


# How hono's node server listens (port, undefined, callback), and the other port-only forms.
_LISTEN = """
const http = require("http");
const forms = [
  (s, cb) => s.listen(0, undefined, cb),
  (s, cb) => s.listen(0, cb),
  (s, cb) => s.listen({ port: 0 }, cb),
];
let left = forms.length;
const out = [];
for (const listen of forms) {
  const server = http.createServer();
  listen(server, () => {
    out.push(server.address().address);
    server.close();
    if (--left === 0) console.log(JSON.stringify(out));
  });
}
"""


@pytest.mark.skipif(not shutil.which("node"), reason="Node.js not installed")
def test_loopback_shim_keeps_a_port_only_listen_on_127_0_0_1() -> None:
    done = subprocess.run(["node", "--require", str(peers.TEMPLATES / "loopback.cjs"), "-e", _LISTEN],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["127.0.0.1"] * 3
