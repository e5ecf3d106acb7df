"""The front end over a real Engine on the embedded backends, with the workflow of
tests/web/workflow.py. Without a worker nothing finishes, which is what the error paths need;
``with_worker=True`` adds the worker side (an executor pool, the queue consumer) in this process.
"""
import pytest

from mr.data.memory import MemoryDataStore
from mr.engine.engine import Engine
from mr.executor import ExecutorPool
from mr.kv.memory import MemoryKV
from mr.models import EntityStore
from mr.queue.memory import MemoryQueue
from mr.settings import Settings
from mr.web.app import create_app
from mr.worker.worker import Worker
from tests.web.workflow import WORKFLOW, populate


@pytest.fixture
def make_engine():
    """``make_engine(with_worker=False, **settings)``: an engine over fresh embedded backends."""
    stoppers = []

    def make(with_worker: bool = False, **overrides) -> Engine:
        settings = Settings.load({}).with_overrides(workflow_names=(WORKFLOW,), **overrides)
        kv, queue = MemoryKV(), MemoryQueue(message_timeout_s=settings.message_timeout_s)
        populate(EntityStore(kv, settings.kv_prefix))
        executor = ExecutorPool(size=1) if with_worker else None
        engine = Engine(settings, kv, queue, MemoryDataStore(), executor).serve()
        stoppers.extend([engine.stop, queue.close, kv.close])
        if with_worker:
            stoppers[:0] = [Worker(engine).start().stop, executor.close]
        return engine

    yield make
    for stop in stoppers:
        stop()


@pytest.fixture
def engine(make_engine):
    return make_engine()


@pytest.fixture
def client(engine):
    return create_app(engine).test_client()
