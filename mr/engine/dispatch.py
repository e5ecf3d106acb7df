"""From invocations to queue messages: the pinned code a step runs, the topic of the capability
it needs, and the messages of a branch's children and of a parent's reduce.

Shared by the tree (which publishes as it runs) and the sweeper (which publishes again what was
lost), so that both build exactly the same messages: a child's id derives from its parent's id
and its position, never from chance.
"""
from __future__ import annotations

import hashlib
import uuid
from typing import Callable, Iterable, Iterator

from mr import codec
from mr.data.base import DataStore
from mr.engine.errors import HandlerFailure, engine_error
from mr.engine.messages import MAP, REDUCE, Ancestor, InvocationMessage
from mr.engine.signing import MessageSigner
from mr.kv.base import KV
from mr.models import Request
from mr.models.keys import Keys
from mr.models.names import topic_name
from mr.queue.base import Queue

#: A child's argument pair larger than this (encoded) goes to the data store, not the message.
INLINE_PAIR_LIMIT_BYTES = 64 * 1024
#: Messages per multi-publish, and their total size, kept under nsqd's default body limit.
PUBLISH_BATCH_COUNT = 1000
PUBLISH_BATCH_BYTES = 4 * 1024 * 1024
#: A request record larger than this (encoded) is read by the worker, not carried by the root.
CARRIED_RECORD_LIMIT_BYTES = 8 * 1024


def child_id(parent_id: str, position: int) -> str:
    """The id of a branching invocation's child: the same on every redelivery of the parent."""
    return hashlib.sha256(f"{parent_id}/{position}".encode()).hexdigest()[:32]


class Dispatcher:
    def __init__(self, kv: KV, queue: Queue, data: DataStore, keys: Keys,
                 signer: MessageSigner):
        self.kv = kv
        self.queue = queue
        self.data = data
        self.keys = keys
        self.signer = signer
        self._code_cache: dict[tuple[str, str], dict] = {}

    def step(self, request: Request, step: str) -> list:
        """The step's [mapper, combiner or None, reducer] as the request pinned them."""
        try:
            return request.steps[step]
        except KeyError:
            raise HandlerFailure(None, engine_error(
                "UnknownStep", f"workflow {request.workflow!r} had no step {step!r} when the "
                               f"request was accepted")) from None

    def code(self, request: Request, handler_name: str, invocation_id: str | None) -> tuple:
        """The pinned version of a handler and its code record (cached: versions never change)."""
        version = request.handler_versions.get(handler_name)
        if version is None:
            raise HandlerFailure(invocation_id, engine_error(
                "UnknownHandler", f"handler {handler_name!r} did not exist in workflow "
                                  f"{request.workflow!r} when the request was accepted"))
        cached = self._code_cache.get((request.workflow, version))
        if cached is None:
            stored = self.kv.get(self.keys.handler_code(request.workflow, version))
            if stored is None:
                raise HandlerFailure(invocation_id, engine_error(
                    "MissingHandlerCode", f"the code of handler {handler_name!r} version "
                                          f"{version} is gone"))
            cached = self._code_cache[(request.workflow, version)] = codec.decode(stored.value)
        return version, cached

    def capability(self, request: Request, handler_name: str) -> str:
        return self.code(request, handler_name, None)[1]["required_capability"]

    def put_pairs(self, workflow: str, request_id: str, invocation_id: str, name: str,
                  pairs: list) -> str:
        """Store pairs under a fresh path (never overwritten, so never read half-written)."""
        return self.put_encoded(workflow, request_id, invocation_id, name, codec.encode(pairs))

    def put_encoded(self, workflow: str, request_id: str, invocation_id: str, name: str,
                    data: bytes) -> str:
        """As put_pairs, for pairs the caller encoded already."""
        path = f"{workflow}/{request_id}/{invocation_id}/{name}-{uuid.uuid4().hex[:12]}"
        self.data.put(path, data)
        return path

    def children(self, request: Request, parent: InvocationMessage, step: str, pairs: list,
                 positions: Iterable[int] | None = None,
                 redelivered: bool = False) -> list[InvocationMessage]:
        """The map messages of a branch's children (of those at ``positions``, default all)."""
        ancestors = (Ancestor(parent.invocation_id, parent.step, len(pairs)), *parent.ancestors)
        messages = []
        for position in range(len(pairs)) if positions is None else positions:
            identity, pair = child_id(parent.invocation_id, position), pairs[position]
            if len(codec.encode(pair)) <= INLINE_PAIR_LIMIT_BYTES:
                inline, reference = pair, None
            else:
                inline, reference = None, self.put_pairs(request.workflow, request.request_id,
                                                         identity, "arguments", [pair])
            messages.append(InvocationMessage(request.workflow, request.request_id, identity,
                                              MAP, step, ancestors, pair=inline,
                                              data_ref=reference, redelivered=redelivered))
        return messages

    @staticmethod
    def reduce_of(request: Request, invocation_id: str, step: str,
                  ancestors: tuple[Ancestor, ...], data_ref: str | None = None,
                  redelivered: bool = False) -> InvocationMessage:
        """The reduce message of a branch (over its children's results) or of a leaf combined
        on a worker of another capability (over ``data_ref``)."""
        return InvocationMessage(request.workflow, request.request_id, invocation_id, REDUCE,
                                 step, ancestors, data_ref=data_ref, redelivered=redelivered)

    def root(self, request: Request) -> InvocationMessage:
        """The root's message, with the request's record when it is small (``record``)."""
        encoded = request.encode()
        carried = (None if request.mod_revision is None
                   or len(encoded) > CARRIED_RECORD_LIMIT_BYTES
                   else (request.mod_revision, encoded))
        return InvocationMessage(request.workflow, request.request_id,
                                 request.root_invocation_id, MAP, request.root_step,
                                 data_ref=request.arguments_ref, record=carried)

    def publish(self, request: Request, messages: list[InvocationMessage],
                on_batch: Callable[[InvocationMessage], None] | None = None) -> None:
        """Publish ``messages`` in batches, in their order within each topic; ``on_batch`` is
        called after each batch but the last with the batch's last message: every message of
        its topic up to that one is published."""
        by_topic: dict[str, list[tuple[InvocationMessage, bytes]]] = {}
        for message in messages:
            mapper, _, reducer = self.step(request, message.step)
            handler = mapper if message.kind == MAP else reducer
            topic = topic_name(request.workflow, message.kind, self.capability(request, handler))
            by_topic.setdefault(topic, []).append((message, self.signer.sign(message.encode())))
        published = 0
        for topic, signed in by_topic.items():
            for batch in _batches(signed):
                if len(batch) == 1:
                    self.queue.publish(topic, batch[0][1])
                else:
                    self.queue.multi_publish(topic, [body for _, body in batch])
                published += len(batch)
                if on_batch is not None and published < len(messages):
                    on_batch(batch[-1][0])


def _batches(signed: list[tuple[InvocationMessage, bytes]]
             ) -> Iterator[list[tuple[InvocationMessage, bytes]]]:
    batch: list[tuple[InvocationMessage, bytes]] = []
    size = 0
    for message, body in signed:
        if batch and (len(batch) >= PUBLISH_BATCH_COUNT or size + len(body) > PUBLISH_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((message, body))
        size += len(body)
    if batch:
        yield batch
