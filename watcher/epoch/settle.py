"""Settle: decide when a checkpoint file is complete, what it is, and whether to trust it.

Pure stdlib (no torch, no safetensors package): the safetensors header is an 8-byte
little-endian length followed by that many bytes of JSON, so it can be parsed and checked
without loading a single tensor. Nothing here ever unpickles anything.

A file is complete when its header parses, its size equals 8 + header length + the largest
data offset, and that stays true across two looks `settle_interval_s` apart (kohya writes the
file in place, so a half-written file is normal and only "not ready").
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from watcher.kohya import split_lora_key, unsupported_family

MAX_HEADER_BYTES = 100 * 1024 * 1024
_HASH_CHUNK = 1024 * 1024
# Largest tensor byte count we accept arithmetic on; far above any LoRA, below int64 overflow.
_MAX_TENSOR_BYTES = 1 << 50

DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
LORA_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
# kohya stores alpha as torch.tensor(network_alpha): an int64 scalar without save_precision when
# the alpha is an int (a --config_file's `network_alpha = 2`, or the default 1; sd-scripts 48d368fa).
ALPHA_DTYPES = LORA_DTYPES | {"I32", "I64"}

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class NotReady(Exception):
    """The file is not complete yet (still being written); it may become valid later."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Rejected(Exception):
    """The file can never be a valid checkpoint for this run; `reason` is one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


TensorSpec = tuple[str, tuple[int, ...], tuple[int, int]]


@dataclass(frozen=True)
class SafetensorsHeader:
    metadata: dict[str, str]
    tensors: dict[str, TensorSpec]  # name -> (dtype, shape, (begin, end)) relative to data start
    header_len: int
    expected_size: int  # 8 + header_len + largest end offset


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path
    size: int
    mtime: float
    header: SafetensorsHeader
    epoch: int
    session_id: str | None
    output_name: str
    sha256: str
    final: bool  # the unnumbered {output_name}.safetensors written at the end of training

    @property
    def metadata(self) -> dict[str, str]:
        return self.header.metadata


@dataclass(frozen=True)
class Rejection:
    path: Path
    reason: str
    size: int | None = None
    mtime: float | None = None


def describe_name(path: Path | str) -> str:
    """A file name safe for one log line: control characters and bad bytes escaped."""
    name = Path(path).name
    return ascii(name) if _CONTROL_CHARS.search(name) or _has_surrogates(name) else repr(name)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# ---------------------------------------------------------------- header parsing


def read_header(path: Path | str) -> SafetensorsHeader:
    """Parse and validate the safetensors header of `path` (no tensor data is read)."""
    with _open_regular(Path(path), follow=True) as fh:
        return _parse_header(fh, os.fstat(fh.fileno()).st_size)


def _open_regular(path: Path, follow: bool) -> BinaryIO:
    """Open a regular file for reading; never block on a FIFO. follow=False refuses a symlink
    (used on an already resolved path, so a link swapped in afterwards is not followed)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise NotReady("file vanished") from None
    except OSError as exc:
        raise Rejected(f"cannot open: {exc.strerror or exc}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise Rejected("not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _parse_header(fh: BinaryIO, size: int) -> SafetensorsHeader:
    head = fh.read(8)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        raise Rejected("zip archive (a PyTorch .pt/.ckpt pickle container), not safetensors")
    if len(head) < 8:
        raise NotReady(f"only {len(head)} bytes so far")
    (header_len,) = struct.unpack("<Q", head)
    if head[0] == 0x80 and 2 <= head[1] <= 5 and header_len > MAX_HEADER_BYTES:
        # pickle PROTO opcode; read as a length it is absurd, so this is not safetensors
        raise Rejected("pickle data, not safetensors (refusing to unpickle)")
    if header_len > MAX_HEADER_BYTES:
        raise Rejected(f"header length {header_len} exceeds the {MAX_HEADER_BYTES} byte limit")
    if header_len < 2:
        raise Rejected(f"header length {header_len} is too small to hold a JSON object")
    first = fh.read(1)
    if first and first != b"{":
        raise Rejected("header does not start with '{': not a safetensors file")
    if size < 8 + header_len:
        raise NotReady(f"header incomplete: {size} of {8 + header_len} bytes")
    raw = first + fh.read(header_len - 1)
    if len(raw) < header_len:
        raise NotReady("header incomplete (file shrank while reading)")
    header = _decode_header_json(raw)
    metadata, tensors, data_len = _validate_header(header)
    expected = 8 + header_len + data_len
    if size < expected:
        raise NotReady(f"data incomplete: {size} of {expected} bytes")
    if size > expected:
        raise Rejected(f"file has {size - expected} bytes past the end its header declares")
    return SafetensorsHeader(metadata, tensors, header_len, expected)


def _decode_header_json(raw: bytes) -> dict[str, object]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(f"header is not UTF-8 (byte {exc.start})") from None
    try:
        header = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise Rejected("header JSON is nested too deeply") from None
    except ValueError as exc:
        raise Rejected(f"header is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(header, dict):
        raise Rejected("header JSON is not an object")
    return header


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-standard JSON constant {name}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_header(
    header: dict[str, object],
) -> tuple[dict[str, str], dict[str, TensorSpec], int]:
    metadata: dict[str, str] = {}
    raw_meta = header.get("__metadata__", {})
    if not isinstance(raw_meta, dict):
        raise Rejected("__metadata__ is not an object")
    for key, value in raw_meta.items():
        if not isinstance(value, str):
            raise Rejected(f"metadata {key!r:.60} is not a string")
        metadata[key] = value
    tensors: dict[str, TensorSpec] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        tensors[name] = _validate_tensor(name, spec)
    end = 0
    for name, (_, _, (begin, stop)) in sorted(tensors.items(), key=lambda kv: kv[1][2]):
        if begin != end:
            kind = "overlaps the previous tensor" if begin < end else "leaves a gap after the previous tensor"
            raise Rejected(f"tensor {name!r:.80} data offset {begin} {kind} (expected {end})")
        end = stop
    return metadata, tensors, end


def _validate_tensor(name: str, spec: object) -> TensorSpec:
    label = f"tensor {name!r:.80}"
    # Extra fields are ignored, as the reference implementation does.
    if not isinstance(spec, dict) or not {"dtype", "shape", "data_offsets"} <= set(spec):
        raise Rejected(f"{label}: entry must have dtype, shape and data_offsets")
    dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise Rejected(f"{label}: unknown dtype {str(dtype)[:20]!r}")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise Rejected(f"{label}: shape must be a list of non-negative integers")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise Rejected(f"{label}: data_offsets must be [begin, end] with 0 <= begin <= end")
    count = 1
    for dim in shape:
        count *= dim
        if count > _MAX_TENSOR_BYTES:
            raise Rejected(f"{label}: shape is implausibly large")
    nbytes = count * DTYPE_SIZES[dtype]
    if nbytes != offsets[1] - offsets[0]:
        raise Rejected(
            f"{label}: shape {shape} x {dtype} is {nbytes} bytes but its offsets span "
            f"{offsets[1] - offsets[0]}"
        )
    return dtype, tuple(shape), (offsets[0], offsets[1])


# ---------------------------------------------------------------- identity and trust


def check_location(path: Path, watched_dir: Path) -> Path:
    """Reject odd names, non-safetensors suffixes and symlinks leading out of watched_dir.

    Returns the resolved path to open.
    """
    name = path.name
    if _CONTROL_CHARS.search(name):
        raise Rejected(f"file name {describe_name(path)} contains control characters")
    if _has_surrogates(name):
        raise Rejected(f"file name {describe_name(path)} is not valid UTF-8")
    if not name.endswith(".safetensors"):
        raise Rejected(
            f"{describe_name(path)} is not a .safetensors file (save_model_as must be safetensors; "
            "pickled checkpoints are never loaded)"
        )
    real = Path(os.path.realpath(path))
    root = Path(os.path.realpath(watched_dir))
    if real.parent != root:
        where = "outside the watched folder" if root not in real.parents else "into a subfolder"
        raise Rejected(f"{describe_name(path)} is a symlink pointing {where} ({real})")
    return real


def _check_lora_keys(tensors: dict[str, TensorSpec]) -> None:
    if not tensors:
        raise Rejected("checkpoint holds no tensors")
    modules: dict[str, dict[str, TensorSpec]] = {}
    for key, spec in tensors.items():
        split = split_lora_key(key)
        if split is None:
            family = unsupported_family(key)
            if family:
                raise Rejected(f"{family} network weights are not supported (key {key!r:.80})")
            raise Rejected(f"key {key!r:.80} is not a kohya LoRA key (lora_unet_*/lora_te_*)")
        module, part = split
        modules.setdefault(module, {})[part] = spec
    for module, parts in modules.items():
        down, up = parts.get("lora_down.weight"), parts.get("lora_up.weight")
        if down is None or up is None:
            raise Rejected(f"module {module!r:.80} lacks its lora_down or lora_up weight")
        for part, (dtype, shape, _) in parts.items():
            if dtype not in (ALPHA_DTYPES if part == "alpha" else LORA_DTYPES):
                raise Rejected(f"{module}.{part} has dtype {dtype}; LoRA weights are floats")
            if part == "alpha" and len(shape) > 1:
                raise Rejected(f"{module}.alpha has shape {list(shape)}; expected a scalar")
        d_shape, u_shape = down[1], up[1]
        if len(d_shape) not in (2, 4) or len(u_shape) != len(d_shape):
            raise Rejected(
                f"{module}: lora_down {list(d_shape)} / lora_up {list(u_shape)} are not 2-D or 4-D"
            )
        if d_shape[0] != u_shape[1] or d_shape[0] == 0:
            raise Rejected(
                f"{module}: rank mismatch, lora_down {list(d_shape)} vs lora_up {list(u_shape)}"
            )


def identify(
    path: Path, metadata: dict[str, str], output_name: str, max_epochs: int | None
) -> tuple[int, bool]:
    """(epoch, final) from metadata, the file name as a fallback; Rejected if foreign."""
    meta_name = metadata.get("ss_output_name")
    if meta_name is not None and meta_name != output_name:
        raise Rejected(
            f"foreign checkpoint: ss_output_name {meta_name!r:.80} is not this run's {output_name!r}"
        )
    stem = path.name[: -len(".safetensors")]
    name_epoch: int | None = None
    final = stem == output_name
    if not final:
        prefix = output_name + "-"
        tail = stem[len(prefix):] if stem.startswith(prefix) else ""
        if re.fullmatch(r"step\d+", tail):
            raise Rejected(f"{describe_name(path)} is a step checkpoint, not an epoch checkpoint")
        if not re.fullmatch(r"\d{6}", tail):
            raise Rejected(
                f"foreign checkpoint: {describe_name(path)} is not named "
                f"{output_name}-NNNNNN.safetensors or {output_name}.safetensors"
            )
        name_epoch = int(tail)
    meta_epoch = _int_or_none(metadata.get("ss_epoch"))
    epoch = meta_epoch if meta_epoch is not None else name_epoch
    if epoch is None:
        epoch = max_epochs
    if epoch is None:
        raise Rejected(f"{describe_name(path)}: no ss_epoch metadata and max_train_epochs unknown")
    if epoch < 1:
        raise Rejected(f"{describe_name(path)}: epoch {epoch} is not a training epoch")
    return epoch, final


def _int_or_none(text: str | None) -> int | None:
    if text is None or not re.fullmatch(r"\s*\d{1,9}\s*", text):
        return None
    return int(text)


def inspect_checkpoint(
    path: Path | str, watched_dir: Path | str, output_name: str, max_epochs: int | None
) -> CheckpointInfo:
    """Full check of one complete file: location, header, size, LoRA keys, identity, sha256.

    Raises NotReady if the file is incomplete or changed while being hashed, Rejected if it
    can never be a checkpoint of this run.
    """
    path = Path(path)
    real = check_location(path, Path(watched_dir))
    with _open_regular(real, follow=False) as fh:
        before = os.fstat(fh.fileno())
        header = _parse_header(fh, before.st_size)
        _check_lora_keys(header.tensors)
        epoch, final = identify(path, header.metadata, output_name, max_epochs)
        fh.seek(0)
        digest = hashlib.sha256()
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
        after = os.fstat(fh.fileno())
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise NotReady("file changed while it was being hashed")
    return CheckpointInfo(
        path=path,
        size=before.st_size,
        mtime=before.st_mtime,
        header=header,
        epoch=epoch,
        session_id=header.metadata.get("ss_session_id"),
        output_name=output_name,
        sha256=digest.hexdigest(),
        final=final,
    )


# ---------------------------------------------------------------- the settler

_Signature = tuple[int, int, int]  # size, mtime_ns, inode


@dataclass
class _Candidate:
    due: float
    last_sig: _Signature | None = None
    last_complete_at: float | None = None  # when it last parsed complete with last_sig
    unchanged_since: float | None = None


@dataclass
class Settler:
    """Tracks candidate files until they are complete (or hopeless). Not thread-safe:
    the daemon calls offer/poll from one thread; detect's callbacks only enqueue paths.

    Times are `time.time()` seconds unless the caller passes its own `now` everywhere.
    """

    watched_dir: Path
    output_name: str
    max_epochs: int | None
    settle_interval_s: float = 0.25
    # An incomplete file that has not changed for this long is reported as truncated.
    stale_after_s: float = 300.0
    _pending: dict[Path, _Candidate] = field(default_factory=dict, init=False)
    _done: dict[Path, tuple[_Signature, str]] = field(default_factory=dict, init=False)
    _rejected: dict[Path, _Signature] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.watched_dir = Path(self.watched_dir)

    def offer(self, path: Path | str, now: float | None = None) -> None:
        """A candidate path from detect (new, changed or deleted); checked on the next poll."""
        path = Path(path)
        now = time.time() if now is None else now
        if path not in self._pending:
            self._pending[path] = _Candidate(due=now)
        else:
            self._pending[path].due = min(self._pending[path].due, now)

    def next_deadline(self) -> float | None:
        """When the next re-check is due (same clock as `now`), or None when nothing is pending."""
        return min((c.due for c in self._pending.values()), default=None)

    def pending(self) -> list[Path]:
        return sorted(self._pending)

    def poll(self, now: float | None = None) -> list[CheckpointInfo | Rejection]:
        """Re-check every candidate that is due; return what became complete or was refused."""
        now = time.time() if now is None else now
        out: list[CheckpointInfo | Rejection] = []
        for path in [p for p, c in self._pending.items() if c.due <= now]:
            result = self._check(path, self._pending[path], now)
            if result is not None:
                out.append(result)
        return out

    def expire_incomplete(self, now: float | None = None, quiet_s: float = 2.0) -> list[Rejection]:
        """The writer is gone (the trainer has ended): a candidate that is still incomplete
        and untouched for quiet_s will never complete, so refuse it now rather than after
        stale_after_s. Candidates that parse complete are left to settle as usual."""
        now = time.time() if now is None else now
        out: list[Rejection] = []
        for path in list(self._pending):
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished or unreadable: poll() deals with it
            if now - st.st_mtime < quiet_s:
                continue  # still being written by someone: not ours to judge yet
            try:
                read_header(check_location(path, self.watched_dir))
            except NotReady as exc:
                out.append(self._reject(path, f"incomplete when the trainer ended: {exc.reason}", st))
            except Rejected as exc:
                out.append(self._reject(path, exc.reason, st))
        return out

    def _forget(self, path: Path) -> None:
        self._pending.pop(path, None)
        self._done.pop(path, None)
        self._rejected.pop(path, None)

    def _check(self, path: Path, cand: _Candidate, now: float) -> CheckpointInfo | Rejection | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._forget(path)  # deleted (save_last_n_epochs) or renamed away
            return None
        except OSError as exc:
            return self._reject(path, f"cannot stat: {exc.strerror or exc}", None)
        sig: _Signature = (st.st_size, st.st_mtime_ns, st.st_ino)
        if self._rejected.get(path) == sig or (path in self._done and self._done[path][0] == sig):
            self._pending.pop(path, None)  # nothing changed since we last decided
            return None
        if sig != cand.last_sig:
            cand.last_sig, cand.last_complete_at, cand.unchanged_since = sig, None, now
        try:
            real = check_location(path, self.watched_dir)
            read_header(real)
            if cand.last_complete_at is None or now - cand.last_complete_at < self.settle_interval_s:
                if cand.last_complete_at is None:
                    cand.last_complete_at = now
                cand.due = cand.last_complete_at + self.settle_interval_s
                return None
            info = inspect_checkpoint(path, self.watched_dir, self.output_name, self.max_epochs)
        except NotReady as exc:
            cand.last_complete_at = None
            waited = now - (now if cand.unchanged_since is None else cand.unchanged_since)
            if waited >= self.stale_after_s:
                return self._reject(path, f"incomplete and unchanged for {waited:.0f} s: {exc.reason}", st)
            cand.due = now + self.settle_interval_s
            return None
        except Rejected as exc:
            return self._reject(path, exc.reason, st)
        self._pending.pop(path, None)
        previous = self._done.get(path)
        self._done[path] = (sig, info.sha256)
        self._rejected.pop(path, None)
        if previous is not None and previous[1] == info.sha256:
            return None  # touched or copied over with identical bytes: same checkpoint
        return info

    def _reject(self, path: Path, reason: str, st: os.stat_result | None) -> Rejection:
        self._pending.pop(path, None)
        self._done.pop(path, None)
        if st is not None:
            self._rejected[path] = (st.st_size, st.st_mtime_ns, st.st_ino)
        return Rejection(
            path=path,
            reason=reason,
            size=st.st_size if st is not None else None,
            mtime=st.st_mtime if st is not None else None,
        )
