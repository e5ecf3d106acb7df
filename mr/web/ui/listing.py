"""The recent requests of a workflow, newest first, a page at a time.

Request ids are random, so the records are in no useful key order: the listing reads them
page by page and keeps only the newest ones asked for, never all of them at once.
"""
from __future__ import annotations

import heapq
from typing import NamedTuple

from mr.engine.engine import Engine
from mr.models import Request

#: Request records read per KV round trip.
READ_PAGE_SIZE = 500


class RecentRequests(NamedTuple):
    requests: list[Request]
    #: Whether older ones (of the owner, before the first shown) exist.
    more: bool


def recent_requests(engine: Engine, workflow: str, limit: int, *, before: float | None = None,
                    owner: str | None = None) -> RecentRequests:
    """The newest ``limit`` requests of ``workflow`` created before ``before`` (epoch seconds,
    None: any), of the token named ``owner`` only (None: of every token)."""
    collection = engine.store.collection(Request, workflow)
    candidates = (Request.decode(stored.key.rsplit("/", 1)[1], stored.value)
                  for page in engine.kv.pages(collection, READ_PAGE_SIZE) for stored in page)
    newest = heapq.nlargest(limit + 1, (
        request for request in candidates
        if (before is None or request.created_at < before)
        and (owner is None or request.context.get("token") == owner)),
        key=lambda request: request.created_at)
    return RecentRequests(newest[:limit], len(newest) > limit)
