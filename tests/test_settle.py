"""settle: safetensors header checks, identity, LoRA keys and the Settler, on real files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from watcher.epoch.settle import (
    CheckpointInfo,
    NotReady,
    Rejected,
    Rejection,
    Settler,
    inspect_checkpoint,
    read_header,
)

NAME = "px_lora"
UNET = "lora_unet_down_blocks_0_attentions_0_proj_in"
TE = "lora_te_text_model_encoder_layers_0_self_attn_q_proj"


def lora_tensors(rank: int = 4, seed: int = 0, dtype: type = np.float16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for module, width in ((UNET, 32), (TE, 16)):
        out[f"{module}.lora_down.weight"] = rng.standard_normal((rank, width)).astype(dtype)
        out[f"{module}.lora_up.weight"] = rng.standard_normal((width, rank)).astype(dtype)
        out[f"{module}.alpha"] = np.array(rank / 2, dtype=dtype)
    return out


def kohya_meta(epoch: int | None, name: str = NAME, session: str = "1700000000") -> dict[str, str]:
    meta = {"ss_output_name": name, "ss_session_id": session, "ss_network_dim": "4",
            "ss_network_module": "networks.lora"}  # fmt: skip
    if epoch is not None:
        meta["ss_epoch"] = str(epoch)
    return meta


def save_lora(path: Path, epoch: int | None = 1, seed: int = 0, **meta: str) -> Path:
    save_file(lora_tensors(seed=seed), str(path), metadata={**kohya_meta(epoch), **meta})
    return path


def raw_file(path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    blob = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(blob) if length is None else length) + blob + data)
    return path


def rejected(path: Path, watched: Path | None = None, max_epochs: int | None = 10) -> str:
    with pytest.raises(Rejected) as info:
        inspect_checkpoint(path, watched or path.parent, NAME, max_epochs)
    assert "\n" not in info.value.reason
    return info.value.reason


# --------------------------------------------------------------------- headers


def test_read_header_of_a_kohya_file(tmp_path: Path) -> None:
    path = save_lora(tmp_path / f"{NAME}-000003.safetensors", epoch=3)
    header = read_header(path)
    assert header.expected_size == path.stat().st_size
    assert header.metadata["ss_epoch"] == "3"
    assert header.tensors[f"{UNET}.lora_down.weight"][:2] == ("F16", (4, 32))
    assert header.tensors[f"{TE}.alpha"][:2] == ("F16", ())
    ends = sorted(end for _, _, (_, end) in header.tensors.values())
    assert header.expected_size == 8 + header.header_len + ends[-1]


def test_inspect_checkpoint_identity_and_sha(tmp_path: Path) -> None:
    path = save_lora(tmp_path / f"{NAME}-000002.safetensors", epoch=2)
    info = inspect_checkpoint(path, tmp_path, NAME, 10)
    assert (info.epoch, info.session_id, info.output_name, info.final) == (2, "1700000000", NAME, False)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.size == path.stat().st_size and info.metadata["ss_network_dim"] == "4"


def test_epoch_from_name_and_final_file(tmp_path: Path) -> None:
    by_name = save_lora(tmp_path / f"{NAME}-000007.safetensors", epoch=None)
    assert inspect_checkpoint(by_name, tmp_path, NAME, 10).epoch == 7
    final = save_lora(tmp_path / f"{NAME}.safetensors", epoch=None)
    info = inspect_checkpoint(final, tmp_path, NAME, 10)
    assert (info.epoch, info.final) == (10, True)
    save_lora(final, epoch=9, ss_epoch="9")
    assert inspect_checkpoint(final, tmp_path, NAME, 10).epoch == 9  # metadata wins
    save_lora(final, epoch=None)
    assert "no ss_epoch metadata and max_train_epochs unknown" in rejected(final, max_epochs=None)
    save_lora(by_name, epoch=None, ss_epoch="not a number")
    assert inspect_checkpoint(by_name, tmp_path, NAME, 10).epoch == 7


def test_foreign_and_step_checkpoints(tmp_path: Path) -> None:
    other = save_lora(tmp_path / f"{NAME}-000001.safetensors", ss_output_name="other_run")
    assert rejected(other).startswith("foreign checkpoint: ss_output_name 'other_run'")
    copy = save_lora(tmp_path / f"{NAME}-000001 (1).safetensors")
    assert rejected(copy).startswith("foreign checkpoint: 'px_lora-000001 (1).safetensors' is not named")
    step = save_lora(tmp_path / f"{NAME}-step00000500.safetensors")
    assert "is a step checkpoint" in rejected(step)
    zero = save_lora(tmp_path / f"{NAME}-000000.safetensors", epoch=None)
    assert "epoch 0 is not a training epoch" in rejected(zero)


@pytest.mark.parametrize("cut", [0, 3, 8, 9, 40, -200, -1])
def test_truncated_file_is_not_ready(tmp_path: Path, cut: int) -> None:
    whole = save_lora(tmp_path / "whole.safetensors").read_bytes()
    part = tmp_path / f"{NAME}-000001.safetensors"
    part.write_bytes(whole[:cut])
    with pytest.raises(NotReady):
        read_header(part)
    with pytest.raises(NotReady):
        inspect_checkpoint(part, tmp_path, NAME, 10)


def test_pickles_and_zips_are_refused_unread(tmp_path: Path) -> None:
    for protocol in (2, 3, 4, 5):
        path = tmp_path / f"{NAME}-00000{protocol}.safetensors"
        path.write_bytes(pickle.dumps({"state_dict": list(range(100))}, protocol=protocol))
        assert rejected(path) == "pickle data, not safetensors (refusing to unpickle)"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # the layout torch.save writes
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}))
        zf.writestr("archive/version", "3\n")
    path = tmp_path / f"{NAME}-000006.safetensors"
    path.write_bytes(buf.getvalue())
    assert rejected(path).startswith("zip archive (a PyTorch .pt/.ckpt pickle container)")
    ckpt = tmp_path / f"{NAME}-000001.ckpt"
    ckpt.write_bytes(b"\x80\x02}q\x00.")
    assert "is not a .safetensors file" in rejected(ckpt)


def test_huge_header_length_and_offsets_past_eof(tmp_path: Path) -> None:
    huge = raw_file(tmp_path / "a.safetensors", b"{}", length=1 << 40)
    with pytest.raises(Rejected, match="header length 1099511627776 exceeds"):
        read_header(huge)
    claims_50mb = raw_file(tmp_path / "b.safetensors", b'{"__metadata__":{}}', length=50_000_000)
    with pytest.raises(NotReady, match="header incomplete"):
        read_header(claims_50mb)
    past_eof = raw_file(tmp_path / "c.safetensors", {
        "x": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}, b"\0" * 64)  # fmt: skip
    with pytest.raises(NotReady, match="data incomplete: .* of 4000"):
        read_header(past_eof)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (b"[1, 2]", "header does not start with '{'"),
        (b"{not json", "header is not valid JSON"),
        (b'{"a": NaN}', "header is not valid JSON"),
        (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "header JSON is nested too deeply"),
        (b'{"__metadata__": {"ss_epoch": 3}}', "metadata 'ss_epoch' is not a string"),
        (b'{"__metadata__": []}', "__metadata__ is not an object"),
        (b'{"t": {"dtype": "Q8", "shape": [1], "data_offsets": [0, 1]}}', "unknown dtype 'Q8'"),
        (b'{"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', "shape [2] x F32 is 8 bytes"),
        (b'{"t": {"dtype": "F32", "shape": [true], "data_offsets": [0, 4]}}', "shape must be a list"),
        (b'{"t": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}', "data_offsets must be"),
        (b'{"t": {"dtype": "F32", "shape": [1]}}', "must have dtype, shape and data_offsets"),
        (b'{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},'
         b' "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}', "overlaps the previous tensor"),
        (b'{"a": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}}', "leaves a gap"),
        (b'\xff{"a": 1}', "header does not start with '{'"),
        (b'{"\xff": 1}', "header is not UTF-8"),
    ],
)
def test_malformed_headers_are_rejected(tmp_path: Path, header: bytes, reason: str) -> None:
    path = raw_file(tmp_path / "x.safetensors", header, b"\0" * 8)
    with pytest.raises(Rejected) as info:
        read_header(path)
    assert reason in info.value.reason
    assert len(info.value.reason) < 300


def test_trailing_bytes_are_rejected(tmp_path: Path) -> None:
    path = save_lora(tmp_path / f"{NAME}-000001.safetensors")
    with path.open("ab") as fh:
        fh.write(b"junk")
    assert rejected(path) == "file has 4 bytes past the end its header declares"


# --------------------------------------------------------------------- LoRA keys


def test_non_lora_and_unsupported_networks(tmp_path: Path) -> None:
    path = tmp_path / f"{NAME}-000001.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": np.zeros((4, 4), np.float16)},
              str(path), metadata=kohya_meta(1))  # fmt: skip
    assert "is not a kohya LoRA key" in rejected(path)
    save_file({f"{UNET}.hada_w1_a": np.zeros((4, 4), np.float16)}, str(path), metadata=kohya_meta(1))
    assert rejected(path).startswith("LoHa (hada_*) network weights are not supported")
    save_file({f"{UNET}.lokr_w1": np.zeros((4, 4), np.float16)}, str(path), metadata=kohya_meta(1))
    assert rejected(path).startswith("LoKr (lokr_*) network weights are not supported")
    save_file({}, str(path), metadata=kohya_meta(1))
    assert rejected(path) == "checkpoint holds no tensors"


def test_lora_dtype_and_shape_checks(tmp_path: Path) -> None:
    path = tmp_path / f"{NAME}-000001.safetensors"
    save_file(lora_tensors(dtype=np.int32), str(path), metadata=kohya_meta(1))
    assert "has dtype I32; LoRA weights are floats" in rejected(path)
    tensors = lora_tensors()
    tensors[f"{UNET}.lora_up.weight"] = np.zeros((32, 8), np.float16)
    save_file(tensors, str(path), metadata=kohya_meta(1))
    assert "rank mismatch" in rejected(path)
    tensors = lora_tensors()
    del tensors[f"{TE}.lora_up.weight"]
    save_file(tensors, str(path), metadata=kohya_meta(1))
    assert "lacks its lora_down or lora_up weight" in rejected(path)
    tensors = lora_tensors()
    tensors[f"{TE}.alpha"] = np.ones((2, 2), np.float16)
    save_file(tensors, str(path), metadata=kohya_meta(1))
    assert "expected a scalar" in rejected(path)
    tensors = lora_tensors()  # conv LoRA layers (4-D) are fine
    tensors[f"{UNET}.lora_down.weight"] = np.zeros((4, 32, 3, 3), np.float16)
    tensors[f"{UNET}.lora_up.weight"] = np.zeros((32, 4, 1, 1), np.float16)
    save_file(tensors, str(path), metadata=kohya_meta(1))
    assert inspect_checkpoint(path, tmp_path, NAME, 10).epoch == 1


def test_integer_alpha_as_kohya_writes_it(tmp_path: Path) -> None:
    # train_network.py with `network_alpha = 2` in its --config_file and no save_precision
    # saves every alpha as an int64 scalar (found by make e2e-kohya); the weights stay floats.
    path = tmp_path / f"{NAME}-000002.safetensors"
    tensors = lora_tensors()
    for module in (UNET, TE):
        tensors[f"{module}.alpha"] = np.array(2, dtype=np.int64)
    save_file(tensors, str(path), metadata=kohya_meta(2))
    assert read_header(path).tensors[f"{TE}.alpha"][:2] == ("I64", ())
    assert inspect_checkpoint(path, tmp_path, NAME, 10).epoch == 2
    tensors[f"{UNET}.lora_up.weight"] = tensors[f"{UNET}.lora_up.weight"].astype(np.int64)
    save_file(tensors, str(path), metadata=kohya_meta(2))
    assert "lora_up.weight has dtype I64; LoRA weights are floats" in rejected(path)


# --------------------------------------------------------------------- hostile locations and names


def test_symlinks_out_of_the_folder_and_special_files(tmp_path: Path) -> None:
    watched, outside = tmp_path / "out", tmp_path / "elsewhere"
    watched.mkdir(), outside.mkdir()
    target = save_lora(outside / f"{NAME}-000001.safetensors")
    link = watched / f"{NAME}-000001.safetensors"
    link.symlink_to(target)
    assert "is a symlink pointing outside the watched folder" in rejected(link, watched)
    (watched / f"{NAME}-000002.safetensors").symlink_to("/etc/passwd")
    assert "outside the watched folder" in rejected(watched / f"{NAME}-000002.safetensors", watched)
    fifo = watched / f"{NAME}-000003.safetensors"
    os.mkfifo(fifo)  # opening a FIFO for reading would block forever
    assert rejected(fifo, watched) == "not a regular file"
    inside = watched / f"{NAME}-000004.safetensors"
    save_lora(watched / "real.bin")
    inside.symlink_to(watched / "real.bin")  # a link that stays inside is read through
    assert inspect_checkpoint(inside, watched, NAME, 10).epoch == 1


def test_odd_file_names(tmp_path: Path) -> None:
    newline = save_lora(tmp_path / f"{NAME}-000001\n.safetensors")
    reason = rejected(newline)
    assert "contains control characters" in reason and "\\n" in reason
    spaced = save_lora(tmp_path / "my lora-000001.safetensors")
    assert rejected(spaced).startswith("foreign checkpoint: ss_output_name 'px_lora'") is False
    assert "foreign checkpoint" in rejected(spaced)
    uni = tmp_path / "ピクセル 像-000002.safetensors"
    save_file(lora_tensors(), str(uni), metadata=kohya_meta(2, name="ピクセル 像"))
    assert inspect_checkpoint(uni, tmp_path, "ピクセル 像", 10).epoch == 2
    bad_bytes = os.fsencode(tmp_path) + b"/px_lora-\xff-000001.safetensors"
    with open(bad_bytes, "wb") as fh:
        fh.write(b"x")
    assert "is not valid UTF-8" in rejected(Path(os.fsdecode(bad_bytes)))


# --------------------------------------------------------------------- Settler


def results_of(settler: Settler, now: float) -> list[CheckpointInfo | Rejection]:
    return settler.poll(now)


def test_settler_waits_for_a_slow_writer(tmp_path: Path) -> None:
    whole = save_lora(tmp_path / "source.bin").read_bytes()
    path = tmp_path / f"{NAME}-000001.safetensors"
    settler = Settler(tmp_path, NAME, 10, settle_interval_s=0.25)
    assert settler.next_deadline() is None
    now = 1000.0
    last = len(whole) - 100
    with path.open("wb") as fh:
        for start in range(0, last, 700):
            fh.write(whole[start : min(start + 700, last)])
            fh.flush()
            settler.offer(path, now)
            assert settler.next_deadline() <= now  # due at once
            assert settler.poll(now) == []
            now += 0.3
        fh.write(whole[last:])
    # complete now, but it must look complete twice, settle_interval apart
    settler.offer(path, now)
    assert settler.poll(now) == [] and settler.next_deadline() == now + 0.25
    assert settler.poll(now + 0.1) == []  # too early: no decision yet
    (info,) = settler.poll(now + 0.25)
    assert isinstance(info, CheckpointInfo) and info.epoch == 1
    assert info.sha256 == hashlib.sha256(whole).hexdigest()
    assert settler.next_deadline() is None
    settler.offer(path, now + 1)
    assert settler.poll(now + 1) == []  # unchanged: not reported twice


def settle(settler: Settler, path: Path, now: float) -> list[CheckpointInfo | Rejection]:
    settler.offer(path, now)
    return settler.poll(now) + settler.poll(now + 1)


def test_settler_forgets_deleted_and_sees_rewrites(tmp_path: Path) -> None:
    settler = Settler(tmp_path, NAME, 10, settle_interval_s=0.5)
    path = save_lora(tmp_path / f"{NAME}-000001.safetensors", seed=1)
    (first,) = settle(settler, path, 10.0)
    assert isinstance(first, CheckpointInfo)
    # rewritten in place with new content: a new checkpoint
    save_lora(path, seed=2)
    (second,) = settle(settler, path, 20.0)
    assert isinstance(second, CheckpointInfo) and second.sha256 != first.sha256
    # same bytes written again (new mtime): the same checkpoint, not reported
    data = path.read_bytes()
    path.write_bytes(data)
    os.utime(path, ns=(1, 1))
    assert settle(settler, path, 30.0) == []
    # deleted (save_last_n_epochs): forgotten, so the same file coming back is news again
    path.unlink()
    assert settle(settler, path, 40.0) == [] and settler.pending() == []
    path.write_bytes(data)
    (again,) = settle(settler, path, 50.0)
    assert isinstance(again, CheckpointInfo) and again.sha256 == second.sha256


def test_settler_rejects_once_per_file_state(tmp_path: Path) -> None:
    settler = Settler(tmp_path, NAME, 10, settle_interval_s=0.5)
    path = tmp_path / f"{NAME}-000001.safetensors"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=4))
    (rej,) = settle(settler, path, 1.0)
    assert isinstance(rej, Rejection) and "pickle" in rej.reason and rej.size == path.stat().st_size
    assert settle(settler, path, 2.0) == []
    save_lora(path)  # replaced by a real checkpoint: judged afresh
    (info,) = settle(settler, path, 3.0)
    assert isinstance(info, CheckpointInfo)


def test_settler_reports_a_file_that_never_completes(tmp_path: Path) -> None:
    settler = Settler(tmp_path, NAME, 10, settle_interval_s=1.0, stale_after_s=60.0)
    path = raw_file(tmp_path / f"{NAME}-000002.safetensors", {
        "x": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, b"\0" * 10)  # fmt: skip
    settler.offer(path, 0.0)
    assert settler.poll(0.0) == [] and settler.next_deadline() == 1.0
    assert settler.poll(30.0) == []
    (rej,) = settler.poll(61.0)
    assert isinstance(rej, Rejection)
    assert rej.reason.startswith("incomplete and unchanged for 61 s: data incomplete")
    assert settler.next_deadline() is None
