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
    # The OpenAPI description that GET /openapi.json serves; the web UI's templates and files.
    package_data={"mr.web": ["openapi.yaml"], "mr.web.ui": ["templates/*.html", "static/*"]},
    install_requires=[
        "Flask>=3.0",
        "fsspec>=2023.1",
        "gevent>=24.2",
        "gnsq>=1.0.2",
        "graphviz>=0.20",
        "gunicorn[gevent]>=22",
        "msgpack>=1.0",
        "prometheus_client>=0.26",
        "PyYAML>=6.0",
    ],
    extras_require={
        # S3 and S3-compatible object stores in s3:// URLs (MR_DATA_STORE_URL, inputs, outputs);
        # a botocore this recent reads an S3-compatible endpoint from AWS_ENDPOINT_URL_S3.
        "s3": ["s3fs>=2024.2", "botocore>=1.34"],
        # moto's standalone S3 server: a real S3 API on loopback for the object store tests;
        # schemathesis fuzzes the HTTP API against its OpenAPI description, which
        # openapi-spec-validator checks.
        # cryptography makes the certificates of the TLS tests (etcd, nsqd); aiosmtpd is the
        # SMTP server of the email notification tests; playwright drives Debian's chromium
        # through the web UI. urllib3 is the benchmarks' HTTP client.
        "test": ["pytest>=8", "urllib3>=2.0", "moto[server]>=5.2", "schemathesis>=4.32,<5",
                 "openapi-spec-validator>=0.7", "cryptography>=42", "aiosmtpd>=1.4.6",
                 "playwright>=1.65,<1.66"],
    },
    entry_points={
        "console_scripts": [
            "mr = mr.cli.main:main",
            "mr_start_gunicorn_dev = mr.web.gunicorn_dev:main",
            *jobx_scripts(),
        ],
    },
)
