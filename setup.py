"""Packaging for mr, a distributed MapReduce service."""
import importlib.util
from pathlib import Path

from setuptools import find_packages, setup


def jobx_scripts() -> list[str]:
    """JobX's script names, from the table of mr.cli.jobx (read without importing mr)."""
    path = Path(__file__).parent / "mr" / "cli" / "jobx.py"
    spec = importlib.util.spec_from_file_location("mr_cli_jobx", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [f"{name} = mr.cli.jobx:{name}" for name in module.SCRIPTS]


setup(
    name="mr",
    version="0.1.0",
    description="A distributed MapReduce service: handlers as stored code, run on gevent workers over etcd and NSQ",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    python_requires=">=3.11",
    packages=find_packages(include=["mr", "mr.*"]),
    install_requires=[
        "Flask>=3.0",
        "fsspec>=2023.1",
        "gevent>=24.2",
        "gnsq>=1.0.2",
        "gunicorn[gevent]>=22",
        "msgpack>=1.0",
        "PyYAML>=6.0",
        "urllib3>=2.0",
    ],
    extras_require={
        "test": ["pytest>=8"],
    },
    entry_points={
        "console_scripts": [
            "mr = mr.cli.main:main",
            "mr_start_gunicorn_dev = mr.web.gunicorn_dev:main",
            *jobx_scripts(),
        ],
    },
)
