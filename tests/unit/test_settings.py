from pathlib import Path

import pytest

from mr.settings import Settings, SettingsError, settings_table_rst


def test_defaults_without_environment():
    settings = Settings.load({})
    assert settings.kv_backend == "memory" and settings.queue_backend == "memory"
    assert settings.nsqd_hosts == ("127.0.0.1:4150",)
    assert settings.system_capabilities == ("general",)


def test_environment_variables_use_jobx_names_and_parse_types():
    settings = Settings.load({
        "MR_ETCD_HOST": "10.0.0.5", "MR_ETCD_PORT": "2400", "MR_ETCD_IS_SSL": "1",
        "MR_NSQD_HOSTS": "a:4150, b:4150", "MR_WORKFLOW_NAMES": "wf1,wf2",
        "MR_SYSTEM_CAPABILITIES": "general,gpu", "MR_CONSUME": "0",
    })
    assert (settings.etcd_host, settings.etcd_port, settings.etcd_is_ssl) == ("10.0.0.5", 2400, True)
    assert settings.nsqd_hosts == ("a:4150", "b:4150")
    assert settings.workflow_names == ("wf1", "wf2")
    assert settings.system_capabilities == ("general", "gpu")
    assert settings.consume is False


@pytest.mark.parametrize("variable, value, message", [
    ("MR_ETCD_PORT", "abc", "MR_ETCD_PORT: invalid literal"),
    ("MR_ETCD_PORT", "-1", "MR_ETCD_PORT: expected an integer > 0"),
    ("MR_ETCD_PORT", "0", "MR_ETCD_PORT: expected an integer > 0"),
    ("MR_RESULT_RETENTION_S", "-0.5", "MR_RESULT_RETENTION_S: expected a number >= 0"),
    ("MR_DATA_STORE_URL", " ", "MR_DATA_STORE_URL: expected a value"),
    ("MR_CONSUME", "maybe", "MR_CONSUME: expected a boolean"),
    ("MR_KV_BACKEND", "redis", "MR_KV_BACKEND: expected one of memory, etcd"),
])
def test_bad_values_name_the_variable(variable, value, message):
    with pytest.raises(SettingsError, match=message):
        Settings.load({variable: value})


def test_config_file_is_read_and_environment_wins(tmp_path):
    config = tmp_path / "mr.toml"
    config.write_text('etcd_port = 3000\nkv_backend = "etcd"\nnsqd_hosts = ["x:1", "y:2"]\n')
    settings = Settings.load({"MR_CONFIG_FILE": str(config), "MR_ETCD_PORT": "4000"})
    assert settings.kv_backend == "etcd"
    assert settings.nsqd_hosts == ("x:1", "y:2")
    assert settings.etcd_port == 4000


def test_config_file_errors_are_clear(tmp_path):
    config = tmp_path / "mr.toml"
    config.write_text("etcd_prot = 3000\n")
    with pytest.raises(SettingsError, match="unknown settings etcd_prot"):
        Settings.load({"MR_CONFIG_FILE": str(config)})
    config.write_text("etcd_port = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        Settings.load({"MR_CONFIG_FILE": str(config)})
    with pytest.raises(SettingsError, match="cannot read"):
        Settings.load({"MR_CONFIG_FILE": str(tmp_path / "missing.toml")})


def test_documented_table_lists_every_setting():
    table = settings_table_rst()
    for field, spec in Settings.specs():
        assert f"``{spec.env}``" in table and f"``{field.name}``" in table


def test_settings_page_holds_the_current_table():
    page = Path(__file__).resolve().parents[2] / "docs" / "settings.rst"
    assert settings_table_rst() in page.read_text(), "regenerate with: mr settings --doc"
