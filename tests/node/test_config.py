"""The node's configuration file: what it refuses to start with."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from node.config import CONFIG_NAME, load_config, render_config
from node.federation import Federation, Member
from protocol.errors import ConfigError

FR = "FR:MJ"


@pytest.mark.parametrize("field", ["header_timeout", "body_timeout"])
@pytest.mark.parametrize("value", [0.0, -1.0])
def test_a_peer_timeout_must_be_positive(tmp_path: Path, field: str, value: float) -> None:
    """A zero would switch aiohttp's keep-alive timer off, and with it the bound on slow heads."""
    home = Federation.create(tmp_path, [Member(FR, "Ministère de la Justice")]).home(FR)
    config = load_config(home)
    assert (config.header_timeout, config.body_timeout) == (30.0, 60.0)
    (home / CONFIG_NAME).write_text(
        render_config(dataclasses.replace(config, **{field: value})), "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(home)
    assert caught.value.code == "config.invalid" and field in caught.value.message
