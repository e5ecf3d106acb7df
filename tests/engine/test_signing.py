"""Invocation messages signed with the cluster's secret: a message published by anyone else
(straight to the queue, or altered on the way) is dropped and logged, never run."""
import logging

import gevent
import pytest

from mr.engine.messages import MAP, InvocationMessage
from mr.engine.signing import ForgedMessage, MessageSigner
from mr.models.names import topic_name
from tests.engine.conftest import start_cluster

SECRET = "a cluster secret"


@pytest.fixture(params=["embedded", "distributed"])
def signed_cluster(request, executor, tmp_path):
    yield from start_cluster(request, request.param, executor, tmp_path, message_secret=SECRET)


def test_a_signed_payload_is_verified_and_any_change_is_refused():
    signer = MessageSigner(SECRET)
    body = signer.sign(b"payload")
    assert body != b"payload" and signer.verified(body) == b"payload"
    altered = body[:-1] + b"P"
    not_signed = "^it is not signed \\(MR_MESSAGE_SECRET is set here\\)$"
    does_not_match = "^its signature does not match this cluster's MR_MESSAGE_SECRET$"
    for forged, reason in [(altered, does_not_match), (b"payload", not_signed),
                           (MessageSigner("another secret").sign(b"payload"), does_not_match),
                           (body[:len(body) - len(b"payload")], not_signed),  # no payload
                           (body[:10], not_signed)]:
        with pytest.raises(ForgedMessage, match=reason):
            signer.verified(forged)
    unsigned = MessageSigner("")
    assert unsigned.sign(b"payload") == b"payload"
    assert unsigned.verified(b"payload") == unsigned.verified(body) == b"payload"


def test_requests_run_with_signed_messages(signed_cluster):
    signed_cluster.handler("echo", "mapper", "yield MrConfigureToReturn()\nyield from arguments\n")
    signed_cluster.handler("total", "reducer",
                           "for key, values in results:\n    yield key, sum(values)\n")
    signed_cluster.step("total", "echo", "total")
    signed_cluster.job("total", "total")
    finished = signed_cluster.run("total", {"a": 1, "b": 2})
    assert finished.state == "done", finished.error
    assert sorted(signed_cluster.engine.result(finished)) == [["a", 1], ["b", 2]]


@pytest.mark.parametrize("forge", ["unsigned", "altered"])
def test_a_message_published_by_anyone_else_is_dropped_and_logged(signed_cluster, tmp_path,
                                                                   caplog, forge):
    """While a request runs, a message for it (its root mapper, with other arguments) goes
    straight to the queue: were it run, the mapper would record those arguments."""
    runs, release = tmp_path / "runs", tmp_path / "release"
    signed_cluster.handler("gated", "mapper", f"""
import os, time
with open({str(runs)!r}, "a") as log:
    log.write(repr(arguments) + "\\n")
while not os.path.exists({str(release)!r}):
    time.sleep(0.02)
yield MrConfigureToReturn()
yield from arguments
""")
    signed_cluster.handler("total", "reducer",
                           "for key, values in results:\n    yield key, sum(values)\n")
    signed_cluster.step("gated", "gated", "total")
    signed_cluster.job("gated", "gated")
    engine = signed_cluster.engine
    accepted = engine.submit(signed_cluster.workflow, "gated", {"real": 1}, blocking=False)
    with gevent.Timeout(10):
        while not runs.exists():
            gevent.sleep(0.02)
    root = engine.dispatch.root(engine.get_request(signed_cluster.workflow, accepted.request_id))
    forged = InvocationMessage(root.workflow, root.request_id, "forgedinvocation", MAP,
                               root.step, pair=["forged", 1])
    body = forged.encode()
    if forge == "altered":  # a real signature, over other bytes
        body = engine.signer.sign(root.encode())[:-len(root.encode())] + forged.encode()
    caplog.set_level(logging.ERROR, logger="mr.engine.engine")
    engine.queue.publish(topic_name(signed_cluster.workflow, MAP, "general"), body)
    with gevent.Timeout(10):
        while "dropping message" not in caplog.text:
            gevent.sleep(0.02)
    release.touch()
    finished = engine.wait(signed_cluster.workflow, accepted.request_id, 30)
    assert finished.state == "done", finished.error
    assert engine.result(finished) == [["real", 1]]
    assert runs.read_text() == "[['real', 1]]\n"  # the forged message never ran
    assert "signature does not match" in caplog.text or "not signed" in caplog.text
