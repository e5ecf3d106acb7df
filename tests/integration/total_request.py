"""One small request run end to end over the given backends (a workflow ``total``: the mapper
returns its arguments, the reducer sums them), for the tests of secured servers."""
import gevent

from mr.data.memory import MemoryDataStore
from mr.engine.engine import Engine
from mr.executor import ExecutorPool
from mr.kv.base import KV
from mr.models import EntityStore, Handler, Job, Step, Workflow
from mr.queue.base import Queue
from mr.settings import Settings
from mr.worker.worker import Worker

WORKFLOW = "total"


def run_total_request(settings: Settings, kv: KV, queue: Queue) -> None:
    """Define the workflow, run one request through an engine and a worker, check its result;
    the backends are closed at the end."""
    store = EntityStore(kv, settings.kv_prefix)
    store.create(Workflow(name=WORKFLOW, description="one small request"))
    for name, handler_type, argument, code in [
            ("echo", "mapper", "arguments", "yield MrConfigureToReturn()\nyield from arguments\n"),
            ("sum", "reducer", "results",
             "for key, values in results:\n    yield key, sum(values)\n")]:
        store.create(Handler(workflow=WORKFLOW, name=name, description=name,
                             handler_type=handler_type, argument_spec=[[argument, "list"]],
                             source_type="python", source_code=code))
    store.create(Step(workflow=WORKFLOW, name="total", description="total",
                      map_handler_name="echo", reduce_handler_name="sum"))
    store.create(Job(workflow=WORKFLOW, name="total", description="total",
                     initial_step_name="total"))
    with ExecutorPool(size=1) as executor:
        engine = Engine(settings, kv, queue, MemoryDataStore(), executor).serve()
        worker = Worker(engine).start()
        try:
            request = engine.submit(WORKFLOW, "total", {"a": 1, "b": 2}, blocking=True)
            with gevent.Timeout(30):
                finished = engine.wait(WORKFLOW, request.request_id, 30)
            assert finished.state == "done", finished.error
            assert sorted(engine.result(finished)) == [["a", 1], ["b", 2]]
        finally:
            worker.stop(timeout=2)
            engine.stop()
            queue.close()
            kv.close()
