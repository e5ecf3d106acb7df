"""The job form: the arguments as a JSON object and as name/value rows (as ``mr submit``'s
``--args`` and ``--arg``), and an optional deadline."""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from werkzeug.datastructures import MultiDict

from mr.web.parsing import MAX_ARGUMENT_DEPTH
from mr.web.parsing import nesting_depth

#: Empty name/value rows the form offers beyond those filled in.
EMPTY_ROWS = 3


class FormError(ValueError):
    """What is wrong with the form, said to the person who filled it in."""


@dataclasses.dataclass
class SubmitForm:
    arguments_json: str = ""
    rows: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    deadline: str = ""

    @classmethod
    def read(cls, form: MultiDict) -> "SubmitForm":
        rows = [(name.strip(), value) for name, value in zip(form.getlist("name"),
                                                             form.getlist("value"))
                if name.strip() or value.strip()]
        return cls(form.get("arguments", "").strip(), rows, form.get("deadline_s", "").strip())

    @property
    def shown_rows(self) -> list[tuple[str, str]]:
        return [*self.rows, *[("", "")] * EMPTY_ROWS]

    def arguments(self) -> dict[str, Any]:
        """The JSON object's arguments, then each row's over them."""
        arguments = self._json_arguments()
        for name, value in self.rows:
            if not name:
                raise FormError(f"the row of value {shown_value(value)} has no name")
            arguments[name] = json_or_text(value)
        if nesting_depth(arguments) > MAX_ARGUMENT_DEPTH:
            raise FormError(f"the arguments are nested more than {MAX_ARGUMENT_DEPTH} levels deep")
        return arguments

    def _json_arguments(self) -> dict[str, Any]:
        if not self.arguments_json:
            return {}
        try:
            arguments = json.loads(self.arguments_json, parse_constant=_not_json)
        except ValueError as error:
            raise FormError(f"the arguments are not JSON: {error}") from None
        except RecursionError:
            raise FormError("the arguments are nested too deeply") from None
        if not isinstance(arguments, dict):
            raise FormError("the arguments must be a JSON object of name -> value, like "
                            '{"a": 1}')
        return arguments

    def deadline_s(self) -> float | None:
        if not self.deadline:
            return None
        seconds = positive_number(self.deadline)
        if seconds is None:
            raise FormError(f"the deadline must be a number of seconds > 0, got "
                            f"{shown_value(self.deadline)}")
        return seconds


def positive_number(text: str) -> float | None:
    """``text`` as a finite number > 0; None when it is not one."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if 0 < number < math.inf else None


def json_or_text(value: str) -> Any:
    """A row's value: read as JSON when it is JSON (42, true, [1, 2], "x"), else the text."""
    try:
        return json.loads(value, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return value


def shown_value(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _not_json(constant: str) -> None:
    """NaN and Infinity, which Python's parser takes, are not JSON."""
    raise ValueError(f"{constant} is not JSON")
