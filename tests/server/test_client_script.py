"""The browser client the server serves: the built pushwire.js and pushwire.mjs, as they are."""

from __future__ import annotations

from importlib import resources

from pushwire.server.app import _client_script

STATIC = resources.files("pushwire") / "static"


def test_the_classic_script_is_the_built_file_and_has_no_export() -> None:
    script = _client_script(module=False)

    assert script == (STATIC / "pushwire.js").read_bytes()
    assert b"\nexport " not in script


def test_the_module_is_the_built_mjs_file_as_it_is() -> None:
    script = _client_script(module=True)

    assert script == (STATIC / "pushwire.mjs").read_bytes()
    assert b"as default" in script
