"""The entities of mr (docs/keys.rst): checked models, stored over the KV interface."""
from mr.models.errors import (AlreadyExistsError, ConflictError, InUseError,
                              InvalidReferenceError, ModelError, NotFoundError,
                              ReadOnlySessionError, ValidationError)
from mr.models.handler import Handler
from mr.models.invocation import Invocation
from mr.models.job import Job
from mr.models.keys import Keys
from mr.models.request import Request
from mr.models.session import ReadOnlySession, Session
from mr.models.step import Step
from mr.models.store import EntityStore
from mr.models.workflow import Workflow

__all__ = [
    "AlreadyExistsError", "ConflictError", "EntityStore", "Handler", "InUseError",
    "InvalidReferenceError", "Invocation", "Job", "Keys", "ModelError", "NotFoundError",
    "ReadOnlySession", "ReadOnlySessionError", "Request", "Session", "Step", "ValidationError",
    "Workflow",
]
