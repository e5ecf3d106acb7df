"""``mr_start_gunicorn_dev`` (JobX's command): the front end under gunicorn's development config.

The config is read as a module (``python:mr.web.gunicorn_dev_conf``), so it is found wherever
mr is installed; ``config/gunicorn_dev.py`` is the same config as a file, for operators.
"""
from __future__ import annotations

import os
import sys

CONFIG = "python:mr.web.gunicorn_dev_conf"
APP = "mr.web.wsgi:app"


def main() -> None:
    """Extra command-line arguments go to gunicorn, e.g. ``-b 0.0.0.0:8080``."""
    command = [sys.executable, "-m", "gunicorn", "--config", CONFIG, *sys.argv[1:], APP]
    os.execv(sys.executable, command)


if __name__ == "__main__":
    main()
