"""How far a running request has come: map invocations known and reduced, in its status."""
import gevent

from mr.web.app import create_app


def test_a_running_requests_status_counts_its_invocations_known_and_reduced(cluster, tmp_path):
    release = tmp_path / "release"
    cluster.handler("fan", "mapper", "yield MrConfigureToMap('leaf')\n"
                                     "for number in range(5):\n    yield number, number\n")
    cluster.handler("gated", "mapper", f"""
import os, time
for key, value in arguments:
    while key == 4 and not os.path.exists({str(release)!r}):  # holds one executor child
        time.sleep(0.02)
yield MrConfigureToReturn()
yield from arguments
""")
    cluster.handler("total", "reducer", "for key, values in results:\n    yield key, sum(values)\n")
    cluster.step("leaf", "gated", "total")
    cluster.step("fan", "fan", "total")
    cluster.job("fan", "fan")
    client = create_app(cluster.engine).test_client()
    accepted = cluster.engine.submit(cluster.workflow, "fan", {"a": 1}, blocking=False)
    status_url = f"/request/{cluster.workflow}/{accepted.request_id}"
    with gevent.Timeout(20):  # children 0 to 3 reduce; 4 waits for the release
        while (status := client.get(status_url).get_json())["progress"]["done"] < 4:
            gevent.sleep(0.02)
    assert status["state"] == "running"
    assert status["progress"] == {"done": 4, "known": 6}  # the root and its five children
    release.touch()
    finished = cluster.engine.wait(cluster.workflow, accepted.request_id, 30)
    assert finished.state == "done", finished.error
    assert "progress" not in client.get(status_url).get_json()
