"""Detect: candidate checkpoint paths from a watchdog observer plus a periodic rescan.

inotify drops events under load and an exception kills the observer's thread, so events are
only a fast path: a rescan thread lists the folder every `rescan_interval_s`, reports files
that are new, changed (size, mtime) or gone, and restarts the observer when it has died.
The folder may not exist yet when watching starts (the trainer creates it).

`on_path` is called from the observer and the rescan threads; it must be cheap and
thread-safe (the daemon puts the path on a queue). Deciding what a file is belongs to settle.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from watcher.logs import get_logger

# Reported so settle can refuse them loudly (kohya's save_model_as=ckpt/pt writes pickles).
CANDIDATE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
_SUPERVISE_S = 0.5
log = get_logger(stage="detect")


def is_candidate(name: str) -> bool:
    return name.lower().endswith(CANDIDATE_SUFFIXES)


class _Handler(FileSystemEventHandler):
    def __init__(self, detector: CheckpointDetector) -> None:
        self._detector = detector

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path]
        if event.event_type == "moved":
            paths.append(event.dest_path)
        for raw in paths:
            path = os.fsdecode(raw)
            if path and self._detector.accept(os.path.basename(path)):
                self._detector.events_seen += 1
                self._detector._emit(Path(path))


class CheckpointDetector:
    def __init__(
        self,
        watched_dir: Path | str,
        on_path: Callable[[Path], None],
        rescan_interval_s: float = 2.0,
        polling: bool = False,
        accept: Callable[[str], bool] = is_candidate,  # which file names to report
    ) -> None:
        self.watched_dir = Path(watched_dir)
        self.accept = accept
        self.on_path = on_path
        self.rescan_interval_s = rescan_interval_s
        self.polling = polling
        self.observer_restarts = 0
        self.events_seen = 0
        self.rescans = 0
        self._observer: BaseObserver | None = None
        self._snapshot: dict[str, tuple[int, int]] = {}
        self._scan_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("detector already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name="epochwatch-detect", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._stop_observer()

    def __enter__(self) -> CheckpointDetector:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def observer_alive(self) -> bool:
        obs = self._observer
        return bool(obs is not None and obs.is_alive() and all(e.is_alive() for e in obs.emitters))

    # ------------------------------------------------------------------ work

    def rescan_now(self) -> list[Path]:
        """List the folder once; report and return paths that are new, changed or gone."""
        with self._scan_lock:
            self.rescans += 1
            current: dict[str, tuple[int, int]] = {}
            try:
                with os.scandir(self.watched_dir) as entries:
                    for entry in entries:
                        if not self.accept(entry.name):
                            continue
                        try:
                            st = entry.stat()  # follows symlinks; a dangling one is still reported
                            current[entry.name] = (st.st_size, st.st_mtime_ns)
                        except OSError:
                            current[entry.name] = (-1, -1)
            except FileNotFoundError:
                pass  # not created yet, or removed: every known file is gone
            except OSError as exc:
                log.warning("rescan_failed", folder=str(self.watched_dir), error=str(exc))
                return []
            changed = [n for n, sig in current.items() if self._snapshot.get(n) != sig]
            gone = [n for n in self._snapshot if n not in current]
            self._snapshot = current
        paths = [self.watched_dir / n for n in sorted(changed) + sorted(gone)]
        for path in paths:
            self._emit(path)
        return paths

    def _emit(self, path: Path) -> None:
        try:
            self.on_path(path)
        except Exception as exc:  # a failing callback must not kill the observer thread
            log.error("on_path_failed", path=ascii(str(path)), error=repr(exc))

    def _supervise(self) -> None:
        next_rescan = 0.0
        while not self._stop.is_set():
            if self.watched_dir.is_dir() and not self.observer_alive():
                self._restart_observer()
            now = time.monotonic()
            if now >= next_rescan:
                self.rescan_now()
                next_rescan = now + self.rescan_interval_s
            wait = min(_SUPERVISE_S, max(0.0, next_rescan - time.monotonic()))
            if self._stop.wait(wait):
                break

    def _restart_observer(self) -> None:
        had_one = self._observer is not None
        self._stop_observer()
        observer = PollingObserver(timeout=1.0) if self.polling else Observer()
        try:
            observer.schedule(_Handler(self), str(self.watched_dir), recursive=False)
            observer.start()
        except OSError as exc:  # folder vanished between the check and the watch
            log.warning("observer_start_failed", folder=str(self.watched_dir), error=str(exc))
            return
        self._observer = observer
        if had_one:
            self.observer_restarts += 1
            log.warning("observer_restarted", folder=str(self.watched_dir))
        # Files written between the old watch dying and this one starting: look now.
        self.rescan_now()

    def _stop_observer(self) -> None:
        obs, self._observer = self._observer, None
        if obs is None:
            return
        try:
            obs.stop()
            if obs.is_alive():
                obs.join(timeout=2.0)
        except Exception as exc:  # stopping a crashed observer can itself raise
            log.debug("observer_stop_failed", error=repr(exc))
