"""A private ``mr run`` (embedded mode) for a pipeline given no server: it serves the pipeline's
workflow definition directories on a free loopback port for as long as the pipeline lives, and
dies with the process that started it (a killed pipeline leaves nothing running)."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from mr import devservers


class EmbeddedServer:
    """``mr run DIR...`` in a child process, stopped by its pid; its log in a temporary
    directory, named in the error when it does not start."""

    def __init__(self, definitions: list[Path]):
        self._log_dir = tempfile.TemporaryDirectory(prefix="mr-pipeline-")
        port = devservers.free_port()
        self.url = f"http://{devservers.LOOPBACK}:{port}"
        self._process = devservers.ServerProcess(
            "mr-run", [sys.executable, "-m", "mr.cli.main", "run",
                       *(str(Path(path).resolve()) for path in definitions), "--port", str(port)],
            Path(self._log_dir.name), {"http": self.url}, f"{self.url}/health",
            tie_to_parent=True, env={"MR_HTTP_HOST": devservers.LOOPBACK})

    def start(self) -> "EmbeddedServer":
        try:
            self._process.start()
        except devservers.ServerError:
            self._log_dir.cleanup()
            raise
        return self

    def stop(self) -> None:
        self._process.stop()
        self._log_dir.cleanup()
