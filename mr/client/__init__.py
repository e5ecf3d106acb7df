"""A Python client of mr's HTTP API (``docs/http.rst``): submit requests to jobs, follow, wait
for and cancel them, and read what a job would run. It speaks HTTP only, so it works the same
against ``mr run`` (embedded mode) and a cluster's front end.
"""
from mr.client.client import Client
from mr.client.errors import ApiError, Cancelled, ClientError, JobFailed, Unreachable

__all__ = ["Client", "ApiError", "Cancelled", "ClientError", "JobFailed", "Unreachable"]
