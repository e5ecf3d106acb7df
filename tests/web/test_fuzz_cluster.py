"""The fuzzing of the HTTP API against a live local cluster (tests/web/fuzz_cluster.py), as
``scripts/fuzz-api`` runs it but with 1,000 requests instead of 10,000, and how it judges and
reports an answer."""
import subprocess
from pathlib import Path
from types import SimpleNamespace

import requests
from schemathesis.core.transport import Response

from tests.web.fuzz_cluster import Failure, Tally, is_json_error, main, start
from tests.web.fuzzing import GENERATED, Credential

REPOSITORY = Path(__file__).resolve().parents[2]


def test_a_thousand_generated_requests_get_only_answers_the_description_lists(tmp_path, capsys):
    exit_status = main(["--requests", "1000", "--data-dir", str(tmp_path)])
    report = capsys.readouterr().out
    assert exit_status == 0, report
    assert "requests sent: 1000 over" in report
    for figure in ("server errors (5xx): 0", "4xx not a JSON error: 0",
                   "conformance failures: 0", "PASS"):
        assert f"\n{figure}\n" in report, report


def test_a_request_line_over_gunicorns_limit_is_a_json_414(tmp_path):
    cluster = start(tmp_path)
    try:
        response = requests.get(f"{cluster.url}/health?padding={'x' * 5000}", timeout=30)
    finally:
        cluster.stop()
    assert response.status_code == 414
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["type"] == "RequestURITooLarge"
    host, _, pid = response.headers["X-FULFILLED-BY"].rpartition("/")
    assert host and pid.isdigit()


def test_scripts_fuzz_api_runs_the_program():
    shown = subprocess.run([REPOSITORY / "scripts" / "fuzz-api", "--help"], capture_output=True,
                           text=True, timeout=600, check=False)
    assert shown.returncode == 0, shown.stderr
    assert all(option in shown.stdout for option in ("--requests", "--seed", "--data-dir"))


def answer(status: int, content_type: str, body: bytes) -> Response:
    return Response(status, {"content-type": [content_type]}, body,
                    requests.Request("GET", "http://127.0.0.1/").prepare(), 0.01, True)


def test_only_a_json_error_object_is_a_json_error():
    assert is_json_error(answer(400, "application/json",
                                b'{"error": {"type": "InvalidBody", "message": "no"}}'))
    assert not is_json_error(answer(400, "text/html", b"<h1>Bad Request</h1>"))
    assert not is_json_error(answer(400, "application/json", b'{"error": "no"}'))
    assert not is_json_error(answer(400, "application/json", b'["error"]'))
    assert not is_json_error(answer(400, "application/json", b"{"))


def case_of(operation_id: str):
    return SimpleNamespace(operation=SimpleNamespace(definition=SimpleNamespace(
        raw={"operationId": operation_id})))


def test_a_token_is_judged_by_what_it_may_reach():
    reader = Credential("read", "Bearer mrt_reader.x", valid=True,
                        refused=frozenset({"submitRequest"}))
    assert reader.judge(case_of("submitRequest"), 403) is None
    assert "let through" in reader.judge(case_of("submitRequest"), 200)
    assert reader.judge(case_of("describeJob"), 200) is None
    assert GENERATED.judge(case_of("describeJob"), 401) is None
    assert "instead of 401" in GENERATED.judge(case_of("describeJob"), 403)
    assert GENERATED.judge(case_of("health"), 200) is None


def test_a_failed_case_fails_the_run_and_is_shown_as_a_curl_line():
    tally = Tally()
    tally.failures.append(Failure("GET /health", "no", 500,
                                  (("Server error", "500 Internal Server Error"),),
                                  "curl -X GET http://127.0.0.1:1/health"))
    report = tally.render({"in all": 1.0})
    assert not tally.ok
    assert "FAILED GET /health -> 500, 1 case(s): Server error" in report
    assert "  curl -X GET http://127.0.0.1:1/health" in report
    assert report.endswith("FAIL")
