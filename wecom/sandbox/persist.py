"""Keeping a sandbox's state in a file across restarts (``manage.py sandbox --state FILE``)."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

from .state import SandboxState

__all__ = ["StateSaver", "load_state", "save_state"]


def load_state(path: Path, *, seed: int | None = None) -> SandboxState | None:
    """The state saved in ``path``, or None when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return SandboxState.from_snapshot(json.loads(text), seed=seed)


def save_state(state: SandboxState, path: Path) -> int:
    """Write a snapshot atomically (temporary file, then rename); returns the saved version."""
    with state.lock:
        version = state.version
        snapshot = state.snapshot()
    data = json.dumps(snapshot, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return version


class StateSaver:
    """Saves the state at most once per ``interval`` seconds when it changed, and at ``stop``."""

    def __init__(self, state: SandboxState, path: Path, *, interval: float = 1.0) -> None:
        self.state = state
        self.path = path
        self.interval = interval
        self._saved_version: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> StateSaver:
        self._thread = threading.Thread(target=self._run, name="sandbox-state-saver", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.save_if_changed()

    def save_if_changed(self) -> bool:
        if self.state.version == self._saved_version:
            return False
        self._saved_version = save_state(self.state, self.path)
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.save_if_changed()
