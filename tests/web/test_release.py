"""A delivered request is removed after its answer went out, never on the client's wait; a front
end that dies in between leaves it to the cleanup entry its finish wrote."""
import http.client
import json

import gevent.event
import pytest
from gevent.pywsgi import WSGIServer

from mr.models import Request
from mr.web.app import create_app
from tests.web.test_api import JSON, assert_error, eventually, post_job


@pytest.fixture
def served(make_engine):
    """An engine with a worker, behind a WSGI server on loopback (gevent's, as ``mr run``'s)."""
    engine = make_engine(with_worker=True)
    server = WSGIServer(("127.0.0.1", 0), create_app(engine), log=None)
    server.start()
    yield engine, server.server_port
    server.stop()


def test_a_delivered_request_is_removed_after_its_answer_was_sent(served, monkeypatch):
    engine, port = served
    answered = gevent.event.Event()
    answered_before_removal = []
    delete_trees = engine.data.delete_trees

    def removing(prefixes):
        answered_before_removal.append(answered.wait(timeout=5))
        return delete_trees(prefixes)

    monkeypatch.setattr(engine.data, "delete_trees", removing)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/job/w/j", body=b'{"arguments": {"a": 1}}', headers=JSON)
        response = connection.getresponse()
        body = json.loads(response.read())
        answered.set()
    finally:
        connection.close()
    assert response.status == 200 and body["result"]["pairs"] == [["a", 1]]
    assert eventually(lambda: engine.store.list(Request, "w") == [])
    assert answered_before_removal == [True]


def test_a_delivered_request_its_front_end_did_not_remove_goes_when_its_cleanup_entry_is_due(
        make_engine, monkeypatch):
    engine = make_engine(with_worker=True, result_retention_s=0.0)
    engine.sweeper.stop()  # this test runs the removal pass itself
    # The front end dies right after its answer, before it removed the request.
    monkeypatch.setattr(engine.cleaner, "release_soon", lambda request: None)
    client = create_app(engine).test_client()
    response = post_job(client, buffered=True)
    assert response.status_code == 200
    request_id = response.headers["X-MR-REQUEST-ID"]
    (entry,) = engine.kv.range(engine.keys.cleanups(), prefix=True).kvs
    assert entry.key.endswith(f"/w/{request_id}")
    assert engine.cleaner.remove_due() == 1  # by the worker that sweeps, in a real deployment
    assert_error(client.get(f"/request/w/{request_id}"), 404, "NotFound")
    assert engine.kv.range(engine.keys.run("w", request_id), prefix=True).kvs == []
    assert engine.kv.range(engine.keys.cleanups(), prefix=True).kvs == []
    assert engine.data.list_tree() == []
