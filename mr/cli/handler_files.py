"""Reading a handler file into the Handler the KV would store, for the commands that take one."""
from __future__ import annotations

from pathlib import Path

from mr.cli.errors import UserError
from mr.handlers import HandlerFormatError
from mr.handlers.load import read_handler
from mr.models import Handler, ModelError


def read_handler_file(path: Path, workflow: str, name: str | None = None) -> Handler:
    """The handler ``path`` defines, named ``name`` (default: the file's stem)."""
    try:
        handler = read_handler(path, workflow, name or path.stem)
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None
    except (HandlerFormatError, ModelError, ValueError) as error:
        raise UserError(str(error)) from None
    if handler is None:
        raise UserError(f"{path}: not a handler file (a *.py file, or an executable starting "
                        f"with #!)")
    return handler
