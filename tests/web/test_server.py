"""How the front end is served: the app gunicorn imports and the gunicorn configs."""
import importlib
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from mr.settings import Settings, SettingsError
from mr.web.app import create_server_app

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "mr.conf"
CONFIG_DIR = ROOT / "config"


@pytest.mark.parametrize("overrides, named", [
    ({}, "MR_KV_BACKEND, MR_QUEUE_BACKEND, MR_DATA_STORE_URL"),
    ({"kv_backend": "etcd", "queue_backend": "nsq"}, "MR_DATA_STORE_URL name"),
])
def test_server_app_refuses_the_embedded_backends(overrides, named):
    with pytest.raises(SettingsError, match=named):
        create_server_app(Settings.load({}).with_overrides(**overrides))


def test_wsgi_module_refuses_a_process_gevent_did_not_patch():
    imported = subprocess.run([sys.executable, "-c", "import mr.web.wsgi"],
                              capture_output=True, text=True)
    assert imported.returncode != 0
    assert "must be imported by a gunicorn gevent worker" in imported.stderr


def load_config(name, monkeypatch, **environment):
    """A gunicorn config module as gunicorn would read it under ``environment``."""
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    importlib.reload(importlib.import_module("mr.web.gunicorn_base_conf"))
    return importlib.reload(importlib.import_module(f"mr.web.gunicorn_{name}_conf"))


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_configs_serve_with_gevent_in_each_worker(name, monkeypatch):
    config = load_config(name, monkeypatch, MR_REQUEST_WAIT_TIMEOUT_S="100.5")
    assert config.worker_class == "gevent"
    assert config.preload_app is False
    assert config.graceful_timeout > 100.5


def test_dev_config_binds_the_http_setting_with_one_worker(monkeypatch):
    config = load_config("dev", monkeypatch, MR_HTTP_HOST="0.0.0.0", MR_HTTP_PORT="9999")
    assert config.bind == "0.0.0.0:9999"
    assert config.workers == 1


def test_prod_config_binds_the_socket_nginx_proxies_to(monkeypatch):
    config = load_config("prod", monkeypatch)
    assert f"server {config.bind} " in SITE.read_text()
    assert config.workers == 2 * os.cpu_count() + 1


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_operator_config_files_are_the_package_configs(name, monkeypatch):
    package_config = load_config(name, monkeypatch)
    operator_config = runpy.run_path(str(CONFIG_DIR / f"gunicorn_{name}.py"))
    for setting in ("bind", "workers", "worker_class", "preload_app", "graceful_timeout",
                    "loglevel", "accesslog"):
        assert operator_config[setting] == getattr(package_config, setting)
