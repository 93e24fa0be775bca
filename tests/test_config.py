import pytest

from central.settings import load_settings as load_hub
from edge.settings import load_settings as load_edge
from runtime.config import SettingsError


def test_edge_settings_from_file_and_env(tmp_path):
    conf = tmp_path / "edge.toml"
    conf.write_text('checkpoint = "SD-DZ-001"\n[http]\nport = 9000\n[[cameras]]\nid = "lane1"\ntoken = "t"\n')
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    s = load_edge(
        conf,
        {"CORDON_EDGE_HTTP__PORT": "9100", "CORDON_EDGE_MQTT__PASSWORD_FILE": str(secret), "UNRELATED": "x"},
    )
    assert s.http.port == 9100
    assert s.mqtt.password == "s3cret"
    assert s.cameras[0].id == "lane1"


def test_unknown_key_is_named(tmp_path):
    conf = tmp_path / "edge.toml"
    conf.write_text('checkpoint = "SD-DZ-001"\n[mqtt]\nurll = "mqtt://x"\n')
    with pytest.raises(SettingsError, match="urll"):
        load_edge(conf, {})


def test_wrong_type_is_named(tmp_path):
    conf = tmp_path / "hub.toml"
    conf.write_text('[http]\nport = "eighty"\n')
    with pytest.raises(SettingsError, match="http.port"):
        load_hub(conf, {})


def test_invalid_checkpoint_id(tmp_path):
    conf = tmp_path / "edge.toml"
    conf.write_text('checkpoint = "SD/DZ/#"\n')
    with pytest.raises(SettingsError, match="checkpoint"):
        load_edge(conf, {})


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_hub(tmp_path / "nope.toml", {})
    bad = tmp_path / "bad.toml"
    bad.write_text("[http\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_hub(bad, {})


def test_keys_named_file_are_set_from_env_directly_and_as_secret_files(tmp_path):
    """``mqtt.ca_file`` is a path: CORDON_EDGE_MQTT__CA_FILE sets it, it is not a secret-file reference."""
    conf = tmp_path / "edge.toml"
    conf.write_text('checkpoint = "SD-DZ-001"\n')
    holder = tmp_path / "holder"
    holder.write_text("/etc/cordon/client.key\n")
    s = load_edge(
        conf,
        {"CORDON_EDGE_MQTT__CA_FILE": "/etc/cordon/ca.crt", "CORDON_EDGE_MQTT__KEY_FILE_FILE": str(holder)},
    )
    assert s.mqtt.ca_file == "/etc/cordon/ca.crt"
    assert s.mqtt.key_file == "/etc/cordon/client.key"
    h = load_hub(None, {"CORDON_HUB_HTTP__CERT_FILE": "/etc/cordon/hub.crt"})
    assert h.http.cert_file == "/etc/cordon/hub.crt"


def test_tls_files_are_checked_at_start_up_naming_the_key(tmp_path):
    from cordon.cli import https_context
    from cordon.pki import Pki
    from edge.app import create_app
    from edge.settings import EdgeSettings, HttpSettings, MqttSettings
    from runtime.tls import mqtt_endpoint

    pki = Pki(tmp_path / "pki")
    pki.init()
    folder = pki.issue("SD-DZ-001", ["127.0.0.1"])
    ca, crt, key = str(folder / "ca.crt"), str(folder / "client.crt"), str(folder / "client.key")
    host, port, ctx = mqtt_endpoint("mqtts://broker.example", ca, crt, key)
    assert (host, port, ctx is not None) == ("broker.example", 8883, True)
    assert mqtt_endpoint("mqtt://broker.example", None, None, None) == ("broker.example", 1883, None)
    with pytest.raises(SettingsError, match=r"\[mqtt\] cert_file and key_file go together"):
        mqtt_endpoint("mqtts://b", ca, crt, None)
    with pytest.raises(SettingsError, match=r"\[mqtt\] ca_file .*missing.crt: not found"):
        mqtt_endpoint("mqtts://b", str(tmp_path / "missing.crt"), None, None)
    with pytest.raises(SettingsError, match="not mqtts://"):
        mqtt_endpoint("mqtt://b", ca, None, None)
    with pytest.raises(SettingsError, match="mqtt:// or mqtts://"):
        mqtt_endpoint("tcp://b", None, None, None)
    with pytest.raises(SettingsError, match=r"\[mqtt\] cert_file .*cannot load"):
        mqtt_endpoint("mqtts://b", ca, crt, str(folder / "server.key"))  # a key of another certificate
    with pytest.raises(SettingsError, match=r"\[http\] key_file is set without cert_file"):
        https_context(HttpSettings(key_file=key))
    assert https_context(HttpSettings()) is None
    assert https_context(
        HttpSettings(cert_file=str(folder / "server.crt"), key_file=str(folder / "server.key"))
    )
    # the edge refuses to start on them, before anything runs
    with pytest.raises(SettingsError, match="mqtt"):
        create_app(
            EdgeSettings(
                checkpoint="SD-DZ-001",
                data_dir=str(tmp_path / "edge"),
                mqtt=MqttSettings(url="mqtts://b", cert_file=crt),
            )
        )


def test_the_console_session_key_comes_from_a_file_and_must_be_long(tmp_path):
    """Hubs behind one front door sign sessions with one key, from a file each of them names."""
    from central.app import create_app
    from runtime.web import Principal, Sessions

    key = tmp_path / "session-key"
    key.write_text("k" * 48 + "\n")
    settings = load_hub(None, {"CORDON_HUB_CONSOLE__SESSION_KEY_FILE": str(key)})
    assert settings.console.session_key() == b"k" * 48
    cookie = Sessions(settings.console.session_key()).issue(Principal("wang", "commander"))
    assert Sessions(
        load_hub(None, {"CORDON_HUB_CONSOLE__SESSION_KEY_FILE": str(key)}).console.session_key()
    ).verify(cookie) == Principal("wang", "commander")
    assert load_hub(None, {}).console.session_key() is None  # none named: a new key at every start
    key.write_text("short\n")
    with pytest.raises(SettingsError, match="console.session_key_file: .* 5 bytes; 32 or more"):
        create_app(
            load_hub(
                None, {"CORDON_HUB_CONSOLE__SESSION_KEY_FILE": str(key), "CORDON_HUB_DATA_DIR": str(tmp_path)}
            )
        )
    with pytest.raises(SettingsError, match="cannot read"):
        load_hub(None, {"CORDON_HUB_CONSOLE__SESSION_KEY_FILE": str(tmp_path / "none")}).console.session_key()
