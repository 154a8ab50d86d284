"""The dashboard's address: parsed once, loopback told apart, and the setting's defaults and `off`."""

import pytest
from pydantic import ValidationError

from hyperhive_core.config import HiveConfig
from hyperhive_core.dashboard.address import DEFAULT_ADDRESS, Address, parse_address, parse_setting
from hyperhive_core.dashboard.security import allowed_hosts


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("127.0.0.1:8420", "127.0.0.1", 8420, True),
        ("localhost:0", "localhost", 0, True),
        ("[::1]:9000", "::1", 9000, True),
        ("127.9.9.9:1", "127.9.9.9", 1, True),
        ("0.0.0.0:8420", "0.0.0.0", 8420, False),
        ("hive.example:443", "hive.example", 443, False),
    ],
    ids=["ipv4", "localhost", "ipv6", "127/8", "any", "name"],
)
def test_an_address_is_host_and_port(text: str, host: str, port: int, loopback: bool) -> None:
    address = parse_address(text)
    assert (address.host, address.port, address.loopback) == (host, port, loopback)
    assert str(address) == text


@pytest.mark.parametrize(
    "text",
    [
        "8420",
        "127.0.0.1",
        "127.0.0.1:",
        ":8420",
        "127.0.0.1:99999",
        "[::1:8420",
        "::1:8420",
        "a b:1",
        "h/x:1",
        "x:-1",
        "127.0.0.1:²",
    ],
)
def test_a_bad_address_says_what_shape_to_give(text: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        parse_address(text)


def test_off_means_no_dashboard_and_nothing_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_setting("off") is None
    assert parse_setting(" OFF ") is None
    monkeypatch.delenv("HYPERHIVE_DASHBOARD", raising=False)
    assert HiveConfig().dashboard == DEFAULT_ADDRESS
    monkeypatch.setenv("HYPERHIVE_DASHBOARD", "off")
    assert HiveConfig().dashboard_address is None
    monkeypatch.setenv("HYPERHIVE_DASHBOARD", "[::1]:0")
    assert HiveConfig().dashboard_address == Address("::1", 0)
    with pytest.raises(ValidationError, match="is not HOST:PORT"):
        HiveConfig(dashboard="nonsense")


def test_the_host_allowlist_has_the_address_its_loopback_names_and_the_configured_ones() -> None:
    assert allowed_hosts(parse_address("127.0.0.1:0"), 8421) == {"127.0.0.1:8421", "localhost:8421", "[::1]:8421"}
    assert allowed_hosts(parse_address("10.1.2.3:80"), 80, ["Hive.Example", "proxy:8443"]) == {
        "10.1.2.3:80",
        "hive.example:80",
        "proxy:8443",
    }
