"""Fuzz the safetensors header and metadata parser (hypothesis).

Property: on any bytes, `read_header` / `inspect_checkpoint` return or raise NotReady /
Rejected, nothing else, and never hang; whatever they accept the reference implementation
(the `safetensors` package) accepts too, with the same tensors and metadata.

Examples: EPOCHWATCH_FUZZ_EXAMPLES if set, else 10,000 when the chaos suite is selected
(`make chaos` runs `pytest -m chaos`), else 2,000 (the short form in `make test`).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import save_file

from watcher.epoch.settle import (
    DTYPE_SIZES,
    CheckpointInfo,
    NotReady,
    Rejected,
    SafetensorsHeader,
    inspect_checkpoint,
    read_header,
)

NAME = "fz"
FILE = f"{NAME}-000001.safetensors"


def example_count(config: pytest.Config) -> int:
    if os.environ.get("EPOCHWATCH_FUZZ_EXAMPLES"):
        return int(os.environ["EPOCHWATCH_FUZZ_EXAMPLES"])
    return 10_000 if "chaos" in (config.option.markexpr or "") else 2_000


def valid_lora(tmp: Path) -> bytes:
    rng = np.random.default_rng(0)
    tensors = {
        "lora_unet_a.lora_down.weight": rng.standard_normal((2, 4)).astype(np.float16),
        "lora_unet_a.lora_up.weight": rng.standard_normal((4, 2)).astype(np.float16),
        "lora_unet_a.alpha": np.array(1.0, np.float32),
        "lora_te_b.lora_down.weight": rng.standard_normal((2, 3)).astype(np.float32),
        "lora_te_b.lora_up.weight": rng.standard_normal((3, 2)).astype(np.float32),
    }
    path = tmp / "seed.safetensors"
    save_file(tensors, str(path), metadata={"ss_epoch": "1", "ss_output_name": NAME})
    return path.read_bytes()


# --------------------------------------------------------------------- strategies

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
dtypes = st.sampled_from(sorted(DTYPE_SIZES)) | st.text(max_size=6) | junk
dims = st.lists(st.integers(0, 6), max_size=4)


@st.composite
def consistent_tensors(draw: st.DrawFn) -> dict[str, Any]:
    """Tensors whose offsets are right, so some files are valid and mutations land near valid."""
    out: dict[str, Any] = {}
    offset = 0
    names = draw(st.lists(st.text(min_size=1, max_size=12), max_size=5, unique=True))
    for name in names:
        dtype = draw(st.sampled_from(sorted(DTYPE_SIZES)))
        shape = draw(dims)
        size = int(np.prod(shape, dtype=np.int64)) * DTYPE_SIZES[dtype]
        out[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    return out


@st.composite
def header_files(draw: st.DrawFn) -> bytes:
    tensors = draw(consistent_tensors())
    header: dict[str, Any] = dict(tensors)
    if draw(st.booleans()):
        header["__metadata__"] = draw(
            st.dictionaries(st.text(max_size=10), st.text(max_size=10) | junk, max_size=4)
        )
    if tensors and draw(st.booleans()):  # corrupt one field of one tensor
        name = draw(st.sampled_from(sorted(tensors)))
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "extra"]))
        header[name] = {**header[name], field: draw(junk | dtypes | dims)}
    blob = json.dumps(header, ensure_ascii=draw(st.booleans())).encode()
    blob += b" " * draw(st.integers(0, 8))  # safetensors pads headers with spaces
    data_len = max((t["data_offsets"][1] for t in tensors.values()), default=0)
    length = draw(st.sampled_from(["right", "random", "near"]))
    n = {"right": len(blob), "random": draw(st.integers(0, 2**64 - 1)),
         "near": max(0, len(blob) + draw(st.integers(-3, 3)))}[length]  # fmt: skip
    data = draw(st.binary(min_size=data_len, max_size=data_len))
    tail = draw(st.sampled_from(["exact", "short", "long"]))
    raw = struct.pack("<Q", n) + blob + data
    if tail == "short":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    elif tail == "long":
        raw += draw(st.binary(min_size=1, max_size=16))
    return raw


@st.composite
def mutated_lora(draw: st.DrawFn, seed: bytes) -> bytes:
    raw = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "length"]))
        if op == "flip" and raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        elif op == "cut":
            del raw[draw(st.integers(0, len(raw))) :]
        elif op == "insert":
            at = draw(st.integers(0, len(raw)))
            raw[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "length" and len(raw) >= 8:
            raw[:8] = struct.pack("<Q", draw(st.integers(0, 2**64 - 1)))
    return bytes(raw)


# --------------------------------------------------------------------- the property


def reference(path: Path) -> tuple[set[str], dict[str, str]] | None:
    """What the safetensors package makes of the file, or None if it refuses it."""
    try:
        with safe_open(str(path), framework="np") as fh:
            return set(fh.keys()), dict(fh.metadata() or {})
    except Exception:  # noqa: BLE001 - any refusal counts as a refusal
        return None


def check_one(path: Path, raw: bytes) -> str:
    path.write_bytes(raw)
    try:
        header = read_header(path)
    except (NotReady, Rejected) as exc:
        assert isinstance(exc.reason, str) and "\n" not in exc.reason and len(exc.reason) < 400
        header = None
    ref = reference(path)
    if isinstance(header, SafetensorsHeader):
        assert header.expected_size == len(raw)
        assert ref is not None, "we accepted a file the reference implementation refuses"
        assert ref[0] == set(header.tensors)
        assert ref[1] == header.metadata
    elif ref is not None:
        # the reference accepted it: we may only disagree on dtypes we do not know
        with pytest.raises(Rejected, match="unknown dtype"):
            read_header(path)
    try:
        result = inspect_checkpoint(path, path.parent, NAME, 10)
        assert isinstance(result, CheckpointInfo) and header is not None
        return "checkpoint"
    except (NotReady, Rejected):
        return "valid header" if header is not None else "refused"


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_fuzz_header_parser(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    n = example_count(request.config)
    seed = valid_lora(tmp_path)
    path = tmp_path / FILE
    assert check_one(path, seed) == "checkpoint"
    outcomes: dict[str, int] = {}

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.function_scoped_fixture],  # fmt: skip
    )
    @given(st.one_of(st.binary(max_size=300), header_files(), mutated_lora(seed)))
    def run(raw: bytes) -> None:
        kind = check_one(path, raw)
        outcomes[kind] = outcomes.get(kind, 0) + 1

    run()
    print(f"fuzz: {n} examples, outcomes {outcomes}")
    assert sum(outcomes.values()) >= n
    # the generators must reach every branch, or the fuzzing proves little
    assert outcomes.get("refused", 0) > 0 and outcomes.get("valid header", 0) > 0
    assert outcomes.get("checkpoint", 0) > 0
