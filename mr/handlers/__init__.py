"""Handlers as files: the file format, its compilation, and the names handlers are given."""
from mr.handlers.format import (HandlerFormatError, HandlerSource, compile_handler,
                                parse_handler_source)
from mr.handlers.scope import MrConfigureToMap, MrConfigureToReturn

__all__ = ["HandlerFormatError", "HandlerSource", "MrConfigureToMap", "MrConfigureToReturn",
           "compile_handler", "parse_handler_source"]
