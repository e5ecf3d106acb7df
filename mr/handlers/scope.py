"""The markers a mapper yields first, saying where its pairs go (JobX's names, unchanged)."""
from __future__ import annotations

from mr.models.names import check_name


class MrConfigureToMap:
    """Branch: every following ``(k, v)`` becomes one map invocation of step ``step_name``."""

    def __init__(self, step_name: str):
        # Checked here, so that a bad step name fails at the handler's own line.
        self.step_name = check_name(step_name, "step name")

    def __repr__(self) -> str:
        return f"MrConfigureToMap({self.step_name!r})"


class MrConfigureToReturn:
    """Leaf: the following pairs go through the step's combiner to its reducer."""

    def __repr__(self) -> str:
        return "MrConfigureToReturn()"
