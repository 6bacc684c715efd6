"""The [mqtt] configuration: file, environment and flag, and refusals at start (exit 2)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pushwire import UsageError, load_config
from pushwire.cli import main
from pushwire.server.mqtt_settings import MqttEndpoint, MqttRoute, MqttSettings

ROUTES = '[{"prefix": "devices:", "direction": "both", "qos": 1}]'


def test_the_table_from_a_file_with_routes(tmp_path: Path) -> None:
    path = tmp_path / "pushwire.toml"
    path.write_text(
        "[mqtt]\n"
        'url = "mqtts://broker.example:8884"\n'
        'client_id = "node-1"\n'
        'username = "pushwire"\n'
        'password = "s3cret"\n'
        "[[mqtt.routes]]\n"
        'prefix = "devices:"\n'
        'direction = "in"\n'
        "qos = 0\n"
        "[[mqtt.routes]]\n"
        'prefix = "commands:"\n'
    )

    mqtt = load_config(path, environ={}).mqtt

    assert mqtt is not None
    assert mqtt.client_id == "node-1"
    assert mqtt.routes == (MqttRoute("devices:", "in", 0), MqttRoute("commands:", "both", 1))
    assert mqtt.endpoint() == MqttEndpoint("broker.example", 8884, True, "pushwire", "s3cret")
    assert [route.topic_filter for route in mqtt.routes] == ["devices/#", "commands/#"]
    assert "s3cret" not in repr(mqtt)


def test_the_environment_and_the_flag_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pushwire.toml"
    path.write_text('[mqtt]\nurl = "mqtt://a"\n[[mqtt.routes]]\nprefix = "x:"\n')
    environ = {"PUSHWIRE_MQTT_URL": "mqtt://b", "PUSHWIRE_MQTT_KEEPALIVE_SECONDS": "15"}

    from_env = load_config(path, environ=environ).mqtt
    from_flag = load_config(path, environ=environ, overrides={"mqtt": {"url": "mqtt://c"}}).mqtt
    env_only = load_config(
        environ={"PUSHWIRE_MQTT_URL": "mqtt://d", "PUSHWIRE_MQTT_ROUTES": ROUTES}
    )

    assert from_env is not None
    assert from_flag is not None
    assert env_only.mqtt is not None
    assert (from_env.url, from_env.keepalive_seconds) == ("mqtt://b", 15)
    assert from_flag.url == "mqtt://c"
    assert env_only.mqtt.routes == (MqttRoute("devices:"),)
    assert load_config(environ={}).mqtt is None


def test_a_login_in_the_url_is_decoded_and_the_port_defaults() -> None:
    settings = MqttSettings("mqtt://dev%40home:p%3Ass@10.0.0.5", routes=(MqttRoute("d:"),))

    assert settings.endpoint() == MqttEndpoint("10.0.0.5", 1883, False, "dev@home", "p:ss")
    assert settings.display_url == "mqtt://dev%40home:***@10.0.0.5"


def test_the_client_id_defaults_to_one_fixed_per_host_and_port() -> None:
    settings = MqttSettings("mqtt://a", routes=(MqttRoute("d:"),))

    assert settings.client_id_for(8000) == settings.client_id_for(8000)
    assert settings.client_id_for(8000) != settings.client_id_for(8001)
    assert settings.client_id_for(8000).startswith("pushwire-")


def _with_routes(**environ: str) -> dict[str, str]:
    return {"PUSHWIRE_MQTT_ROUTES": ROUTES, **environ}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (_with_routes(PUSHWIRE_MQTT_URL="http://broker"), "mqtt:// or mqtts://"),
        (_with_routes(PUSHWIRE_MQTT_URL="mqtt://broker:http"), "bad port"),
        (_with_routes(PUSHWIRE_MQTT_URL="mqtt://broker:0"), "bad port"),
        (_with_routes(PUSHWIRE_MQTT_URL="mqtt://[::1"), "Invalid IPv6 URL"),
        (_with_routes(PUSHWIRE_MQTT_URL="mqtt://:1883"), "names no host"),
        (_with_routes(PUSHWIRE_MQTT_URL="mqtt://broker/devices/#"), "nothing may follow"),
        ({"PUSHWIRE_MQTT_URL": "mqtt://broker"}, "no [[mqtt.routes]]"),
        ({"PUSHWIRE_MQTT_ROUTES": ROUTES}, "needs a url"),
        ({"PUSHWIRE_MQTT_URL": "mqtt://b", "PUSHWIRE_MQTT_ROUTES": "[{"}, "not valid JSON"),
        (
            _with_routes(PUSHWIRE_MQTT_URL="mqtt://b", PUSHWIRE_MQTT_KEEPALIVE_SECONDS="soon"),
            "not a number",
        ),
        (_with_routes(PUSHWIRE_MQTT_URL="mqtt://u:p@b", PUSHWIRE_MQTT_USERNAME="v"), "not both"),
        (_with_routes(PUSHWIRE_MQTT_URL="mqtt://b", PUSHWIRE_MQTT_PASSWORD="p"), "no username"),
        (_with_routes(PUSHWIRE_MQTT_URL="mqtt://b", PUSHWIRE_MQTT_GROUP="a/b"), "group"),
        (_with_routes(PUSHWIRE_MQTT_URL="mqtt://b", PUSHWIRE_MQTT_CLIENT_ID="a b"), "client_id"),
    ],
)
def test_a_bad_url_or_setting_is_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        load_config(environ=environ)


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ('[{"prefix": "devices"}]', "must end with ':'"),
        ('[{"prefix": "dev/ices:"}]', "has no MQTT topic"),
        ('[{"prefix": "devices::"}]', "empty level"),
        ('[{"prefix": "devices:", "direction": "sideways"}]', "direction"),
        ('[{"prefix": "devices:", "qos": 2}]', "qos must be 0 or 1"),
        ('[{"prefix": "devices:", "qos": true}]', "qos must be of type int"),
        ('[{"prefix": "devices:", "retain": true}]', "unknown [[mqtt.routes]] key"),
        ('[{"direction": "in"}]', "needs a prefix"),
        ('[{"prefix": "a:"}, {"prefix": "a:b:"}]', "overlap"),
        ('{"prefix": "a:"}', "list of tables"),
    ],
)
def test_a_bad_route_is_named(routes: str, message: str) -> None:
    environ = {"PUSHWIRE_MQTT_URL": "mqtt://b", "PUSHWIRE_MQTT_ROUTES": routes}

    with pytest.raises(UsageError, match=re.escape(message)):
        load_config(environ=environ)


def test_serve_stops_at_start_with_the_message_and_exit_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pushwire.toml"
    config.write_text('[[mqtt.routes]]\nprefix = "devices:"\nqos = 3\n')

    bad_url = main(["serve", "--memory", "--mqtt", "mqtt//broker:1883"])
    url_error = capsys.readouterr().err
    bad_route = main(["serve", "--memory", "--mqtt", "mqtt://127.0.0.1", "--config", str(config)])
    route_error = capsys.readouterr().err

    assert bad_url == 2
    assert "pushwire: mqtt url must start mqtt:// or mqtts://" in url_error
    assert bad_route == 2
    assert "pushwire: mqtt route 'devices:': qos must be 0 or 1" in route_error


def test_each_worker_gets_a_client_id_of_its_own() -> None:
    settings = MqttSettings("mqtt://a", client_id="node-1", routes=(MqttRoute("d:"),))

    ids = {settings.for_worker(index, 8000).client_id for index in (1, 2)}

    assert ids == {"node-1-w1", "node-1-w2"}
