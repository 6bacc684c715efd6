"""Configuration precedence: defaults < TOML file < PUSHWIRE_* variables < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushwire import ChannelRule, UsageError, load_config


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('port = 9000\nhost = "0.0.0.0"\nallowed_origins = ["https://a"]\n')

    config = load_config(
        path, environ={"PUSHWIRE_PORT": "9100", "PUSHWIRE_ECHO": "true"}, overrides={"port": 9200}
    )

    assert config.port == 9200
    assert config.host == "0.0.0.0"
    assert config.echo is True
    assert config.allowed_origins == ("https://a",)


def test_channel_rules_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[channels]]\nprefix = "chat:"\nhistory_size = 50\n')

    from_file = load_config(path, environ={})
    from_env = load_config(environ={"PUSHWIRE_CHANNELS": '[{"prefix": "x:", "history_size": 1}]'})

    assert from_file.channels == (ChannelRule(prefix="chat:", history_size=50),)
    assert from_env.channels == (ChannelRule(prefix="x:", history_size=1),)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PUSHWIRE_PORT": "eighty"}, "port"),
        ({"PUSHWIRE_ECHO": "maybe"}, "echo"),
        ({"PUSHWIRE_HISTORY": "redis"}, "history"),
        ({"PUSHWIRE_CHANNELS": "[{"}, "CHANNELS"),
        ({"PUSHWIRE_CHANNELS": '[{"prefx": "a"}]'}, "channels"),
        ({"PUSHWIRE_CHANNELS": '[{"prefix": 5}]'}, "prefix"),
        ({"PUSHWIRE_CHANNELS": '[{"presence": "no"}]'}, "presence"),
        ({"PUSHWIRE_CHANNELS": '[{"history_size": 1.5}]'}, "history_size"),
        # nan passes every range check (each comparison is false); inf never times out.
        ({"PUSHWIRE_PRESENCE_TTL_SECONDS": "nan"}, "presence_ttl_seconds must be a finite"),
        ({"PUSHWIRE_WS_PING_INTERVAL_SECONDS": "inf"}, "ws_ping_interval_seconds"),
        ({"PUSHWIRE_REQUEST_HEAD_TIMEOUT_SECONDS": "-inf"}, "request_head_timeout_seconds"),
        ({"PUSHWIRE_MAX_PUBLISHES_PER_SECOND": "1e999"}, "max_publishes_per_second"),
        ({"PUSHWIRE_MEMORY_TRIM_INTERVAL_SECONDS": "-1"}, "memory_trim_interval_seconds must"),
    ],
)
def test_bad_values_name_the_option(environ: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_config(environ=environ)


def test_nan_and_inf_in_a_file_are_refused_in_rules_and_the_mqtt_table(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[channels]]\nprefix = "a:"\nhistory_ttl_seconds = inf\n')
    mqtt = tmp_path / "mqtt.toml"
    mqtt.write_text(
        '[mqtt]\nurl = "mqtt://127.0.0.1:1883"\npublish_timeout_seconds = nan\n'
        '[[mqtt.routes]]\nprefix = "devices:"\n'
    )

    with pytest.raises(UsageError, match="history_ttl_seconds must be a finite number"):
        load_config(rules, environ={})
    with pytest.raises(UsageError, match="mqtt publish_timeout_seconds must be a finite number"):
        load_config(mqtt, environ={})


def test_unknown_file_options_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("prot = 1\n")

    with pytest.raises(UsageError, match="prot"):
        load_config(path, environ={})


def test_the_old_allow_client_publish_option_names_its_replacement() -> None:
    with pytest.raises(UsageError, match='publish = "none"'):
        load_config(
            environ={"PUSHWIRE_CHANNELS": '[{"prefix": "a:", "allow_client_publish": false}]'}
        )


def test_allowed_origins_come_from_the_environment_comma_separated() -> None:
    config = load_config(environ={"PUSHWIRE_ALLOWED_ORIGINS": "https://a, https://b"})

    assert config.allowed_origins == ("https://a", "https://b")


@pytest.mark.parametrize(
    ("environ", "text"),
    [({"PUSHWIRE_CORS_ORIGINS": "*"}, "allowed_origins"), ({}, "allowed_origins")],
)
def test_the_old_cors_origins_option_names_its_replacement(
    tmp_path: Path, environ: dict[str, str], text: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text("" if environ else 'cors_origins = ["*"]\n')

    with pytest.raises(UsageError, match=text):
        load_config(path, environ=environ)


def test_token_options_have_open_defaults() -> None:
    config = load_config(environ={})

    assert (config.token_secret, config.token_public_key, config.token_algorithm) == ("", "", "")
    assert config.allow_anonymous is True
    assert config.token_refresh_timeout_seconds == 10.0
    assert config.max_token_bytes == 8192


def test_token_options_come_from_the_environment() -> None:
    environ = {
        "PUSHWIRE_TOKEN_SECRET": "s" * 32,
        "PUSHWIRE_TOKEN_ALGORITHM": "HS256",
        "PUSHWIRE_ALLOW_ANONYMOUS": "false",
        "PUSHWIRE_TOKEN_REFRESH_TIMEOUT_SECONDS": "2.5",
        "PUSHWIRE_MAX_TOKEN_BYTES": "4096",
    }

    config = load_config(environ=environ)

    assert config.token_secret == "s" * 32
    assert config.token_algorithm == "HS256"
    assert config.allow_anonymous is False
    assert config.token_refresh_timeout_seconds == 2.5
    assert config.max_token_bytes == 4096


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"PUSHWIRE_TOKEN_SECRET": "s", "PUSHWIRE_TOKEN_PUBLIC_KEY": "k.pem"},
            "token_secret or token_public_key, not both",
        ),
        ({"PUSHWIRE_TOKEN_SECRET": "s", "PUSHWIRE_TOKEN_ALGORITHM": "none"}, "never allowed"),
        ({"PUSHWIRE_TOKEN_SECRET": "s", "PUSHWIRE_TOKEN_ALGORITHM": "HS512"}, "one of HS256"),
        ({"PUSHWIRE_TOKEN_SECRET": "s", "PUSHWIRE_TOKEN_ALGORITHM": "RS256"}, "token_public_key"),
        (
            {"PUSHWIRE_TOKEN_PUBLIC_KEY": "k.pem", "PUSHWIRE_TOKEN_ALGORITHM": "HS256"},
            "HS256 needs token_secret",
        ),
        ({"PUSHWIRE_TOKEN_ALGORITHM": "ES256"}, "no token_secret or token_public_key"),
        ({"PUSHWIRE_ALLOW_ANONYMOUS": "false"}, "nobody could connect"),
        ({"PUSHWIRE_MAX_TOKEN_BYTES": "0"}, "max_token_bytes"),
        ({"PUSHWIRE_TOKEN_REFRESH_TIMEOUT_SECONDS": "-1"}, "token_refresh_timeout_seconds"),
    ],
)
def test_token_options_that_cannot_work_stop_the_start(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        load_config(environ=environ)
