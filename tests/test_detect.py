"""detect: real folders, real inotify/polling observers, real threads (and settle behind them)."""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watcher.epoch.detect import CheckpointDetector
from watcher.epoch.settle import CheckpointInfo, Settler
from watcher.testing import lora_bytes

NAME = "px_lora"
WAIT_S = 15.0  # generous: the machine is shared; nothing here asserts speed


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class Seen:
    """A thread-safe record of on_path calls."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.lock = threading.Lock()

    def __call__(self, path: Path) -> None:
        with self.lock:
            self.paths.append(path)

    def count(self, path: Path) -> int:
        with self.lock:
            return self.paths.count(path)


def test_observer_reports_a_new_file(tmp_path: Path) -> None:
    seen = Seen()
    # a one-hour rescan: only the observer can report files made after the first listing
    with CheckpointDetector(tmp_path, seen, rescan_interval_s=3600) as det:
        assert wait_for(det.observer_alive)
        path = tmp_path / f"{NAME}-000001.safetensors"
        path.write_bytes(b"x" * 100)
        assert wait_for(lambda: seen.count(path) >= 1)
        assert det.events_seen >= 1
        (tmp_path / "notes.txt").write_text("not a checkpoint")
        (tmp_path / "sample").mkdir()
        time.sleep(0.3)
    assert all(p.suffix == ".safetensors" for p in seen.paths)


def test_folder_created_after_start(tmp_path: Path) -> None:
    seen = Seen()
    watched = tmp_path / "output"
    with CheckpointDetector(watched, seen, rescan_interval_s=0.2) as det:
        time.sleep(0.3)
        assert not det.observer_alive()
        watched.mkdir()
        assert wait_for(det.observer_alive)
        path = watched / f"{NAME}-000001.safetensors"
        path.write_bytes(b"x")
        assert wait_for(lambda: seen.count(path) >= 1)


def test_rescan_reports_new_changed_and_gone(tmp_path: Path) -> None:
    seen = Seen()
    det = CheckpointDetector(tmp_path, seen)  # never started: rescan alone
    a, b = tmp_path / f"{NAME}-000001.safetensors", tmp_path / f"{NAME}-000002.ckpt"
    a.write_bytes(b"1")
    b.write_bytes(b"2")
    (tmp_path / "x.json").write_text("{}")
    assert det.rescan_now() == [a, b]
    assert det.rescan_now() == []
    a.write_bytes(b"11")
    b.unlink()
    assert det.rescan_now() == [a, b]  # changed, then gone (so settle can forget it)
    assert seen.paths == [a, b, a, b]


def test_observer_restarts_after_the_folder_is_replaced(tmp_path: Path) -> None:
    seen = Seen()
    watched = tmp_path / "output"
    watched.mkdir()
    with CheckpointDetector(watched, seen, rescan_interval_s=3600) as det:
        assert wait_for(det.observer_alive)
        shutil.rmtree(watched)  # inotify drops the watch and the emitter thread ends
        assert wait_for(lambda: not det.observer_alive())
        watched.mkdir()
        assert wait_for(lambda: det.observer_restarts >= 1 and det.observer_alive())
        before = det.events_seen
        path = watched / f"{NAME}-000003.safetensors"
        path.write_bytes(b"x")
        assert wait_for(lambda: seen.count(path) >= 1)
        assert det.events_seen > before  # seen by the new observer, not a rescan


def test_a_failing_callback_does_not_stop_detection(tmp_path: Path) -> None:
    calls: list[Path] = []

    def flaky(path: Path) -> None:
        calls.append(path)
        if len(calls) == 1:
            raise RuntimeError("queue full")

    with CheckpointDetector(tmp_path, flaky, rescan_interval_s=3600) as det:
        assert wait_for(det.observer_alive)
        (tmp_path / f"{NAME}-000001.safetensors").write_bytes(b"1")
        assert wait_for(lambda: len(calls) >= 1)
        second = tmp_path / f"{NAME}-000002.safetensors"
        second.write_bytes(b"2")
        assert wait_for(lambda: second in calls)
        assert det.observer_alive()


def test_polling_observer(tmp_path: Path) -> None:
    seen = Seen()
    with CheckpointDetector(tmp_path, seen, rescan_interval_s=3600, polling=True) as det:
        assert wait_for(det.observer_alive)
        time.sleep(0.2)
        path = tmp_path / f"{NAME}-000004.safetensors"
        path.write_bytes(b"x")
        assert wait_for(lambda: seen.count(path) >= 1)
        assert det.events_seen >= 1


def test_detect_and_settle_a_slowly_written_file(tmp_path: Path) -> None:
    """Writer pauses longer than the settle interval between chunks: no partial report."""
    data = lora_bytes(1, NAME)
    path = tmp_path / f"{NAME}-000001.safetensors"
    paths: queue.Queue[Path] = queue.Queue()
    finished = threading.Event()
    settler = Settler(tmp_path, NAME, 10, settle_interval_s=0.05)
    chunks = [data[i : i + 200] for i in range(0, len(data), 200)]
    assert len(chunks) >= 4

    def writer() -> None:
        with path.open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                fh.flush()
                time.sleep(0.15)  # each partial state is stable for 3 settle intervals
        finished.set()

    results: list[object] = []
    with CheckpointDetector(tmp_path, paths.put, rescan_interval_s=0.2):
        thread = threading.Thread(target=writer)
        thread.start()
        end = time.monotonic() + WAIT_S
        while time.monotonic() < end and not (finished.is_set() and results):
            try:
                settler.offer(paths.get(timeout=0.02))
            except queue.Empty:
                pass
            results += settler.poll()
        thread.join()
    (info,) = results  # exactly one report, and it is the whole file
    assert isinstance(info, CheckpointInfo) and info.epoch == 1
    assert info.size == len(data)


def test_rewrite_and_delete_through_detect(tmp_path: Path) -> None:
    offered: list[Path] = []
    paths: queue.Queue[Path] = queue.Queue()
    settler = Settler(tmp_path, NAME, 10, settle_interval_s=0.05)
    path = tmp_path / f"{NAME}-000002.safetensors"

    def run_until(predicate: Callable[[list[object]], bool]) -> list[object]:
        out: list[object] = []
        end = time.monotonic() + WAIT_S
        while time.monotonic() < end and not predicate(out):
            try:
                got = paths.get(timeout=0.02)
                offered.append(got)
                settler.offer(got)
            except queue.Empty:
                pass
            out += settler.poll()
        return out

    with CheckpointDetector(tmp_path, paths.put, rescan_interval_s=0.2):
        path.write_bytes(lora_bytes(2, NAME, seed=1))
        (first,) = run_until(lambda out: len(out) >= 1)
        path.write_bytes(lora_bytes(2, NAME, seed=2))
        (second,) = run_until(lambda out: len(out) >= 1)
        assert isinstance(first, CheckpointInfo) and isinstance(second, CheckpointInfo)
        assert first.sha256 != second.sha256 and first.epoch == second.epoch == 2
        same_bytes = path.read_bytes()
        offered.clear()
        path.unlink()  # save_last_n_epochs removes old epochs under us
        assert run_until(lambda out: path in offered and settler.pending() == []) == []
        assert path in offered and settler.next_deadline() is None
        # forgotten: the same bytes coming back are reported again
        path.write_bytes(same_bytes)
        (again,) = run_until(lambda out: len(out) >= 1)
        assert isinstance(again, CheckpointInfo) and again.sha256 == second.sha256
