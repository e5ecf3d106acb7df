"""Where a finished request's result goes: its result writer.

- inline (no ``output``): the pairs are kept for the client, up to MR_INLINE_RESULT_MAX_BYTES
  encoded: in the final request record, committed with the state, when they fit
  INLINE_LIMIT_BYTES, else in the data store; a larger result fails the request with
  ``ResultTooLarge``, which points at the file writer;
- file (``{"url", "format"}``): the parts the reducers wrote beside the output are moved into
  place and ``_SUCCESS`` is written; the request names the parts;
- HTTP (``{"http": url}``): the result, within the inline limit, is posted as JSON, retried with
  backoff, and kept for the client as with inline. Delivery is at least once (a crash after the
  POST posts again): receivers deduplicate by the ``X-Mr-Request-Id`` header.

Each runs once per delivery of the root's completion, before the request's final state commits,
so a crash in between repeats it: moving parts and writing ``_SUCCESS`` are idempotent.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from mr import codec
from mr.engine.errors import engine_error
from mr.models import Request
from mr.models.request import INLINE_LIMIT_BYTES
from mr.results.http_post import ResultDeliveryError, post_result

if TYPE_CHECKING:
    from mr.engine.engine import Engine

HTTP_ATTEMPTS = 5
HTTP_BACKOFF_S = 1.0
HTTP_TIMEOUT_S = 30.0


class Results:
    def __init__(self, engine: "Engine"):
        self.engine = engine

    def finish(self, request: Request, root_id: str, result: list | dict,
               writes: list) -> None:
        """Deliver the result of the root ``root_id`` (pairs, or ``{"parts"}``) and finish the
        request, with ``writes`` in the same transaction."""
        output = request.output or {}
        if "url" in output:
            parts = self.engine.shuffle.commit_output(request, result["parts"])
            self.engine.finish(request, "done", output_parts=parts, writes=writes)
            return
        pairs = result
        if isinstance(result, dict):  # parts, measured before they are read: they may be huge
            size = self.engine.shuffle.parts_size(result["parts"])
            if self._too_large(request, root_id, size, writes):
                return
            pairs = self.engine.shuffle.read_parts(result["parts"])
        encoded = codec.encode(pairs)
        if self._too_large(request, root_id, len(encoded), writes):
            return
        if "http" in output:
            try:
                self._post(request, output["http"], pairs)
            except (ResultDeliveryError, ValueError) as error:
                self._fail(request, root_id, "ResultDeliveryFailed", str(error), writes)
                return
        if len(encoded) <= INLINE_LIMIT_BYTES:  # in the final record, committed with the state
            self.engine.finish(request, "done", result=pairs, writes=writes)
            return
        result_ref = self.engine.dispatch.put_encoded(request.workflow, request.request_id,
                                                      root_id, "reduced", encoded)
        self.engine.finish(request, "done", result_ref=result_ref, writes=writes)

    def _post(self, request: Request, url: str, pairs: list) -> None:
        try:
            body = json.dumps({"workflow": request.workflow, "job": request.job_name,
                               "request_id": request.request_id, "result": {"pairs": pairs}},
                              ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as error:
            raise ValueError(f"the result cannot be posted as JSON: {error}") from None
        post_result(url, body, {"X-Mr-Request-Id": request.request_id,
                                "X-Mr-Workflow": request.workflow, "X-Mr-Job": request.job_name},
                    attempts=HTTP_ATTEMPTS, backoff_s=HTTP_BACKOFF_S, timeout_s=HTTP_TIMEOUT_S)

    def _too_large(self, request: Request, root_id: str, size: int, writes: list) -> bool:
        """Fail the request if its result of ``size`` bytes is over the inline limit."""
        limit = self.engine.settings.inline_result_max_bytes
        if size > limit:
            self._fail(request, root_id, "ResultTooLarge",
                       f"the result takes {size} bytes encoded, more than the {limit} "
                       f"(MR_INLINE_RESULT_MAX_BYTES) a request keeps for its client or posts; "
                       f"write it to files instead: \"output\": {{\"url\": ...}}", writes)
        return size > limit

    def _fail(self, request: Request, root_id: str, error_type: str, message: str,
              writes: list) -> None:
        """Fail the request at its root, with what the root's commit writes beside (its
        session, what it counted)."""
        self.engine.finish(request, "failed", failed_invocation_id=root_id,
                           error=engine_error(error_type, message), writes=writes)
