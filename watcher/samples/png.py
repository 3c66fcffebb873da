"""PNG completeness without decoding a pixel, and the settler for sample images.

PIL writes a PNG in place, chunk by chunk: signature, IHDR, ..., IDAT..., IEND. A file is
complete when its chunk list parses from the signature to an IEND chunk that ends exactly at
the end of the file, every chunk's CRC is right, and that stays true (same size, mtime and
inode) across two looks `settle_interval_s` apart, the same care watcher/epoch/settle.py takes with
checkpoints. A half-written PNG is "not ready", never scored; one that stays incomplete and
untouched for `stale_after_s` is refused as truncated.
"""

from __future__ import annotations

import os
import stat
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from watcher.epoch.settle import NotReady, Rejected, describe_name
from watcher.samples.names import NameRefused, SampleName, parse_sample_name

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PNG_BYTES = 256 * 1024 * 1024  # a 512 px sample is well under 1 MB
_MAX_CHUNK = 1 << 31  # the PNG spec's limit on one chunk's length


def check_png(path: Path | str) -> int:
    """The size of a complete PNG at `path`; NotReady while it is being written, Rejected
    if it can never be a PNG."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never block on a FIFO
    except FileNotFoundError:
        raise NotReady("file vanished") from None
    except OSError as exc:
        raise Rejected(f"cannot open: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise Rejected("not a regular file")
        if st.st_size > MAX_PNG_BYTES:
            raise Rejected(f"{st.st_size} bytes, over the {MAX_PNG_BYTES} byte limit for a sample")
        data = fh.read()
    return _walk_chunks(data)


def _walk_chunks(data: bytes) -> int:
    head = data[: len(PNG_SIGNATURE)]
    if head != PNG_SIGNATURE[: len(head)]:
        raise Rejected("not a PNG (bad signature)")
    if len(data) < len(PNG_SIGNATURE):
        raise NotReady(f"only {len(data)} bytes so far")
    pos, first = len(PNG_SIGNATURE), True
    while True:
        if len(data) < pos + 8:
            raise NotReady(f"chunk header incomplete at byte {pos} of {len(data)}")
        length, kind = struct.unpack(">I4s", data[pos: pos + 8])
        if length >= _MAX_CHUNK or not kind.isalpha():
            raise Rejected(f"corrupt PNG chunk at byte {pos}")
        if first and kind != b"IHDR":
            raise Rejected("corrupt PNG: the first chunk is not IHDR")
        end = pos + 12 + int(length)
        if len(data) < end:
            raise NotReady(f"{kind.decode()} chunk incomplete: {len(data)} of {end} bytes")
        (crc,) = struct.unpack(">I", data[end - 4: end])
        if zlib.crc32(data[pos + 4: end - 4]) != crc:
            raise Rejected(f"corrupt PNG: CRC mismatch in the {kind.decode()} chunk at byte {pos}")
        if kind == b"IEND":
            if end != len(data):
                raise Rejected(f"{len(data) - end} bytes after the IEND chunk")
            return end
        pos, first = end, False


_Signature = tuple[int, int, int]  # size, mtime_ns, inode


@dataclass(frozen=True)
class SettledSample:
    name: SampleName
    size: int

    @property
    def path(self) -> Path:
        return self.name.path


@dataclass(frozen=True)
class SampleRefusal:
    path: Path
    reason: str  # one line, naming the file


@dataclass
class _Candidate:
    due: float
    sig: _Signature | None = None
    complete_at: float | None = None
    changed_at: float = 0.0


@dataclass
class SampleSettler:
    """Tracks sample PNGs in the trainer's sample folder until each is complete or refused.

    Each refusal is returned once per file version (a file rewritten later is looked at
    again). Not thread-safe: one thread calls offer/poll.
    """

    folder: Path
    output_name: str | None
    settle_interval_s: float = 0.25
    stale_after_s: float = 300.0
    _pending: dict[Path, _Candidate] = field(default_factory=dict, init=False)
    _decided: dict[Path, _Signature] = field(default_factory=dict, init=False)

    def offer(self, path: Path | str, now: float | None = None) -> None:
        path = Path(path)
        now = time.time() if now is None else now
        cand = self._pending.setdefault(path, _Candidate(due=now, changed_at=now))
        cand.due = min(cand.due, now)

    def next_deadline(self) -> float | None:
        return min((c.due for c in self._pending.values()), default=None)

    def pending(self) -> list[Path]:
        return sorted(self._pending)

    def poll(self, now: float | None = None) -> list[SettledSample | SampleRefusal]:
        now = time.time() if now is None else now
        out: list[SettledSample | SampleRefusal] = []
        for path in sorted(p for p, c in self._pending.items() if c.due <= now):
            result = self._check(path, self._pending[path], now)
            if result is not None:
                out.append(result)
        return out

    def expire_incomplete(self, now: float | None = None, quiet_s: float = 2.0) -> list[SampleRefusal]:
        """The trainer has ended: a PNG still incomplete and untouched for quiet_s will stay
        so; refuse it now. Complete ones are left to settle as usual."""
        now = time.time() if now is None else now
        out: list[SampleRefusal] = []
        for path in sorted(self._pending):
            try:
                if now - os.stat(path).st_mtime < quiet_s:
                    continue
                check_png(path)
            except OSError:
                continue  # vanished or unreadable: poll() deals with it
            except NotReady as exc:
                out.append(self._refuse(path, f"incomplete when the trainer ended: {exc.reason}"))
            except Rejected as exc:
                out.append(self._refuse(path, exc.reason))
        return out

    def _check(self, path: Path, cand: _Candidate, now: float) -> SettledSample | SampleRefusal | None:
        try:
            sig = _sig(path)
        except FileNotFoundError:
            self._pending.pop(path, None)
            self._decided.pop(path, None)
            return None
        except OSError as exc:
            return self._refuse(path, f"cannot stat: {exc.strerror or exc}")
        if self._decided.get(path) == sig:
            self._pending.pop(path, None)  # nothing changed since it was decided
            return None
        try:
            name = parse_sample_name(path, self.output_name)  # refuse by name before reading
        except NameRefused as exc:
            return self._refuse(path, exc.reason, named=True, sig=sig)
        if sig != cand.sig:
            cand.sig, cand.complete_at, cand.changed_at = sig, None, now
        try:
            size = check_png(path)
        except NotReady as exc:
            cand.complete_at = None
            if now - cand.changed_at >= self.stale_after_s:
                return self._refuse(path, f"incomplete and unchanged for "
                                          f"{now - cand.changed_at:.0f} s: {exc.reason}", sig=sig)
            cand.due = now + self.settle_interval_s
            return None
        except Rejected as exc:
            return self._refuse(path, exc.reason, sig=sig)
        if cand.complete_at is None or now - cand.complete_at < self.settle_interval_s:
            cand.complete_at = now if cand.complete_at is None else cand.complete_at
            cand.due = cand.complete_at + self.settle_interval_s
            return None
        self._pending.pop(path, None)
        self._decided[path] = sig
        return SettledSample(name, size)

    def _refuse(self, path: Path, reason: str, *, named: bool = False,
                sig: _Signature | None = None) -> SampleRefusal:
        self._pending.pop(path, None)
        try:
            self._decided[path] = sig or _sig(path)
        except OSError:
            pass
        text = reason if named else f"{describe_name(path)}: {reason}"
        return SampleRefusal(path, text)


def _sig(path: Path) -> _Signature:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino)
