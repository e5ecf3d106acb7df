"""Runs handler code in pre-started child processes, never in the worker's gevent loop."""
from mr.executor.pool import ExecutorPool
from mr.executor.protocol import Outcome, Task

__all__ = ["ExecutorPool", "Outcome", "Task"]
