"""``mr settings`` prints the effective settings, but never a secret's value."""
import json
import os
import subprocess
import sys

SECRETS = {"MR_MESSAGE_SECRET": "s3cret-signing", "MR_ETCD_PASSWORD": "s3cret-etcd",
           "MR_TOKEN": "s3cret-token"}


def test_secrets_are_shown_as_set_never_printed():
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith("MR_")}
    shown = subprocess.run([sys.executable, "-m", "mr.cli.main", "settings"],
                           env={**environment, "MR_CONFIG_FILE": "", **SECRETS,
                                "MR_ETCD_USER": "mr"},
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert not any(value in shown for value in SECRETS.values())
    settings = json.loads(shown)
    assert (settings["message_secret"], settings["etcd_password"], settings["token"]) == (
        "(set)", "(set)", "(set)")
    assert settings["etcd_user"] == "mr"  # not a secret
