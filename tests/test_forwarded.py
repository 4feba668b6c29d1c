"""The client behind a load balancer (`[server] trusted_proxies`, aiogw.forwarded), and
forwarding headers never reaching the provider."""

from __future__ import annotations

import anthropic
import pytest

from aiogw import config
from aiogw.config_reader import ConfigError, ip_networks
from aiogw.forwarded import client_of
from tests.conftest import PROVIDER_KEYS, poll
from tests.served import BASE_TOML, LimitedGateway

LB = ip_networks(("127.0.0.1", "10.0.0.0/8"))


@pytest.mark.parametrize(("peer", "header", "client"), [
    ("127.0.0.1", "203.0.113.9", "203.0.113.9"),  # one balancer
    ("127.0.0.1", "203.0.113.9, 10.1.2.3", "203.0.113.9"),  # two, both trusted
    ("127.0.0.1", "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # the client's own entry is not believed
    ("127.0.0.1", "not-an-address", "127.0.0.1"),
    ("127.0.0.1", "10.1.2.3", "10.1.2.3"),  # every hop trusted: the farthest
    ("127.0.0.1", None, "127.0.0.1"),
    ("192.0.2.7", "203.0.113.9", "192.0.2.7"),  # not from a balancer: the header is anyone's
    ("127.0.0.1", "2001:db8::1", "2001:db8::1"),
])
def test_the_client_is_the_nearest_hop_no_trusted_proxy_added(peer, header, client):
    assert client_of(peer, header, LB) == client


def test_trusted_proxies_must_be_networks(tmp_path):
    path = tmp_path / "aiogw.toml"
    path.write_text('[server]\ntrusted_proxies = ["10.0.0.0/8", "lb.internal"]\n')
    with pytest.raises(ConfigError, match=r"'lb\.internal' is not an address or network"):
        config.load(path, env=PROVIDER_KEYS)


@pytest.mark.parametrize("trusted", ['["127.0.0.1"]', "[]"])
def test_the_record_names_the_agent_and_the_provider_never_sees_forwarding_headers(servers, gateway, tmp_path,
                                                                                   trusted):
    toml = BASE_TOML.replace("port = 0\n", f"port = 0\ntrusted_proxies = {trusted}\n")
    g = LimitedGateway(servers, gateway.fake, gateway.fake_url, tmp_path / "state.db", toml=toml,
                       extra='[[users]]\nname = "alice"\n')
    try:
        client = g.anthropic("alice", max_retries=0, default_headers={
            "X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.9", "Forwarded": "for=203.0.113.9",
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": "llm.internal.example"})
        client.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
        sent = gateway.fake.received[-1].headers
        assert not {"x-forwarded-for", "x-real-ip", "forwarded", "x-forwarded-proto", "x-forwarded-host"} & set(sent)
        assert g.last("alice").client == ("203.0.113.9" if trusted != "[]" else "127.0.0.1")
        with pytest.raises(anthropic.AuthenticationError):  # a refusal names the agent too
            anthropic.Anthropic(base_url=f"{g.base}/anthropic", api_key="aiogw-wrong", max_retries=0,
                                default_headers={"X-Forwarded-For": "203.0.113.10"}).messages.create(
                model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
        refused = poll(lambda: [ex for ex in g.exchanges if ex.status == 401])
        assert refused and refused[-1].client == ("203.0.113.10" if trusted != "[]" else "127.0.0.1")
    finally:
        g.stop()
