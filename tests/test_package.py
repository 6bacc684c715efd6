"""The top-level package: what ``import pushwire`` loads, and what it offers."""

from __future__ import annotations

import subprocess
import sys

import pushwire


def _modules_loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def test_importing_the_client_loads_none_of_the_server() -> None:
    loaded = _modules_loaded_by("from pushwire import Client, ApiClient")

    assert "pushwire.client" in loaded
    assert not {"httptools", "uvloop", "pushwire.server.app", "pushwire.core.node"} & loaded


def test_importing_the_server_loads_none_of_the_client() -> None:
    loaded = _modules_loaded_by("from pushwire import Server, Config")

    assert "pushwire.server.app" in loaded
    assert not {"httpx", "pushwire.client"} & loaded


def test_every_public_name_resolves() -> None:
    for name in pushwire.__all__:
        assert getattr(pushwire, name) is not None, name


def test_the_mqtt_library_is_loaded_only_with_the_bridge() -> None:
    loaded = _modules_loaded_by(
        'from pushwire import Config, Server\nServer(Config(history="memory", demo=False))'
    )

    assert not {"aiomqtt", "paho", "pushwire.server.mqtt_bridge"} & loaded
