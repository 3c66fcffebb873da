"""`epochwatch score` and `epochwatch downscale` end to end, on real files."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.degrade import degrade, load_avatars, pad_sprite
from evaluators.color import delta_e, hex_to_rgb, to_lab
from watcher.cli import main

REPO = Path(__file__).resolve().parent.parent
GREEN_PROMPT = "brown hair (#603015), solid green background (#00ff00)"
CONTRACT_KEYS = {"image", "background_hex", "background_delta_e", "background_match",
                 "color_accuracy", "style_quality", "unique_colors", "grid"}


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("images")
    avatars = load_avatars()
    rng = np.random.default_rng(0)
    green_truth = pad_sprite(avatars[3].rgb, 24, (0, 255, 0), 4, 8)
    green, _ = degrade(green_truth, rng)
    pink, _ = degrade(pad_sprite(avatars[70].rgb, 24, (192, 128, 255), 4, 8), rng)
    paths = {"green": folder / "green.png", "pink": folder / "pink.jpg"}
    Image.fromarray(green).save(paths["green"])
    Image.fromarray(pink).save(paths["pink"], quality=88)
    np.save(folder / "green_truth.npy", green_truth)
    paths["truth"] = folder / "green_truth.npy"
    paths["text"] = folder / "notes.png"
    paths["text"].write_text("this is not an image\n")
    data = paths["green"].read_bytes()
    paths["truncated"] = folder / "truncated.png"
    paths["truncated"].write_bytes(data[: len(data) // 2])
    paths["small"] = folder / "small.png"
    Image.fromarray(green[:20, :20]).save(paths["small"])
    paths["bomb"] = folder / "bomb.png"
    _png_header_only(paths["bomb"], 20000, 20000)
    paths["big"] = folder / "big.png"
    _png_header_only(paths["big"], 9000, 9000)
    # modes that must be handled, not refused
    paths["gray"] = folder / "gray.png"
    Image.fromarray(green).convert("L").save(paths["gray"])
    paths["palette"] = folder / "palette.png"
    Image.fromarray(green).quantize(colors=32, dither=Image.Dither.NONE).save(paths["palette"])
    paths["gray16"] = folder / "gray16.png"
    Image.fromarray(np.asarray(Image.fromarray(green).convert("L"), dtype=np.uint16) * 257).save(paths["gray16"])
    rgba = np.dstack([green, np.full(green.shape[:2], 255, np.uint8)])
    is_green = (green[..., 1] > 200) & (green[..., 0] < 60)
    rgba[is_green, 3] = 0                                 # transparent background
    paths["rgba"] = folder / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(paths["rgba"])
    paths["la"] = folder / "la.png"
    Image.fromarray(rgba, "RGBA").convert("LA").save(paths["la"])
    return paths


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_score_json_as_a_child_process(images: dict[str, Path]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "score", str(images["green"]), str(images["pink"]),
         "--prompt", GREEN_PROMPT, "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = _json_lines(result.stdout)
    assert [r["image"] for r in rows] == [str(images["green"]), str(images["pink"])]
    for row in rows:
        assert CONTRACT_KEYS <= set(row)
    assert rows[0]["background_match"] is True and rows[1]["background_match"] is False
    assert rows[0]["background_delta_e"] < 5 and rows[1]["background_delta_e"] > 30


def test_bad_inputs_get_one_line_and_the_rest_are_scored(images: dict[str, Path],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    order = ["text", "green", "truncated", "small", "bomb", "big", "pink"]
    rc = main(["score", *[str(images[k]) for k in order], "--prompt", GREEN_PROMPT, "--json"])
    out, err = capsys.readouterr()
    assert rc != 0
    rows = _json_lines(out)
    assert [r["image"] for r in rows] == [str(images[k]) for k in order]
    by = dict(zip(order, rows, strict=True))
    for bad in ("text", "truncated", "small", "bomb", "big"):
        assert set(by[bad]) == {"image", "error"}
        assert "\n" not in by[bad]["error"] and by[bad]["error"]
    assert "not an image" in by["text"]["error"]
    assert "truncated" in by["truncated"]["error"]
    assert "smaller than the 24-cell grid" in by["small"]["error"]
    assert "decompression bomb" in by["bomb"]["error"]
    assert "decompression bomb" in by["big"]["error"]
    assert by["green"]["background_match"] is True and "error" not in by["pink"]
    assert err.strip().splitlines()[-1] == "epochwatch score: 5 of 7 images could not be scored"


def test_bad_inputs_in_table_mode(images: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["score", str(images["text"]), str(images["green"]), "--prompt", GREEN_PROMPT])
    out, err = capsys.readouterr()
    assert rc == 1
    assert f"epochwatch score: {images['text']}: not an image" in err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["image", "background", "dE", "match"]
    assert len(lines) == 2 and lines[1].startswith(str(images["green"]))
    assert " yes " in lines[1]


@pytest.mark.parametrize("kind", ["gray", "palette", "gray16", "rgba", "la"])
def test_other_modes_are_converted_and_scored(images: dict[str, Path], kind: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["score", str(images[kind]), "--prompt", GREEN_PROMPT, "--json"])
    rows = _json_lines(capsys.readouterr().out)
    assert rc == 0 and "error" not in rows[0]
    assert rows[0]["style_quality"] > 50
    if kind in ("rgba", "la"):
        bg = to_lab(np.array(hex_to_rgb(rows[0]["background_hex"]), dtype=np.uint8))
        assert float(delta_e(bg, to_lab(np.array([255, 255, 255], np.uint8)))) < 2   # over white
        assert rows[0]["background_match"] is False
    if kind == "palette":
        assert rows[0]["background_match"] is True


def test_manifest_with_relative_paths_and_bad_lines(images: dict[str, Path], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    manifest = images["green"].parent / "manifest.jsonl"
    manifest.write_text("\n".join([
        json.dumps({"image": "green.png", "prompt": GREEN_PROMPT}),
        "{not json",
        json.dumps({"prompt": "no image key"}),
        "",
        json.dumps({"image": str(images["pink"]), "prompt": "solid background (#c080ff)"}),
    ]) + "\n")
    rc = main(["score", "--manifest", str(manifest), "--json"])
    rows = _json_lines(capsys.readouterr().out)
    assert rc == 1
    assert len(rows) == 4
    assert rows[0]["image"] == "green.png" and rows[0]["background_match"] is True
    assert rows[1]["image"] == f"{manifest}:2" and "not JSON" in rows[1]["error"]
    assert rows[2]["image"] == f"{manifest}:3" and '"image"' in rows[2]["error"]
    assert rows[3]["background_match"] is True


def test_user_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", "--manifest", str(tmp_path / "missing.jsonl")]) == 2
    assert capsys.readouterr().err.strip() == f"epochwatch score: manifest not found: {tmp_path / 'missing.jsonl'}"
    assert main(["score"]) == 2
    assert "nothing to score" in capsys.readouterr().err
    assert main(["score", "x.png", "--cells", "0"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cells_16(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sprite = load_avatars()[10]
    image, _ = degrade(sprite.rgb, np.random.default_rng(3))
    path = tmp_path / "a16.png"
    Image.fromarray(image).save(path)
    assert main(["score", str(path), "--cells", "16", "--json", "--prompt", "bg background (#00ff00)"]) == 0
    row = _json_lines(capsys.readouterr().out)[0]
    assert row["grid"]["cells_x"] == 16 and row["background_match"] is True


def test_downscale_writes_n_by_n_pngs(images: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    rc = main(["downscale", str(images["green"]), str(images["pink"]), str(images["text"]),
               "--out-dir", str(out_dir)])
    captured = capsys.readouterr()
    assert rc == 1
    assert f"epochwatch downscale: {images['text']}: not an image" in captured.err
    assert sorted(p.name for p in out_dir.iterdir()) == ["green.png", "pink.png"]
    with Image.open(out_dir / "green.png") as im:
        assert im.format == "PNG" and im.size == (24, 24)
        cells = np.asarray(im.convert("RGB"))
    with Image.open(out_dir / "pink.png") as im:
        assert im.format == "PNG" and im.size == (24, 24)     # pink.jpg -> pink.png
    truth = np.load(images["truth"])
    assert float((delta_e(to_lab(cells), to_lab(truth)) < 5).mean()) >= 0.98


def test_downscale_never_overwrites_inputs(images: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    original = images["green"].read_bytes()
    rc = main(["downscale", str(images["green"]), "--out-dir", str(images["green"].parent)])
    assert rc == 1 and "overwrite the input" in capsys.readouterr().err
    assert images["green"].read_bytes() == original
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "green.png").write_bytes(original)
    rc = main(["downscale", str(images["green"]), str(twin / "green.png"), "--out-dir", str(tmp_path / "o"),
               "--cells", "16"])
    assert rc == 1 and "same output name green.png" in capsys.readouterr().err
    with Image.open(tmp_path / "o" / "green.png") as im:
        assert im.size == (16, 16)


def _run_config(folder: Path, evaluation: str) -> Path:
    config = folder / "config.toml"
    config.write_text('[run]\nname = "r1"\noutput_dir = "out"\noutput_name = "lora"\nmax_train_epochs = 3\n'
                      f'[model]\nbase = "tiny-model"\n[evaluation]\n{evaluation}\n', encoding="utf-8")
    return config


def test_score_takes_the_runs_evaluation_settings_and_flags_override_them(
        images: dict[str, Path], tmp_path: Path) -> None:
    # #00ff00 is green to a person but CIEDE2000 ~19 from the word's reference (xkcd green)
    config = _run_config(tmp_path, 'colour_match = "exact"\nexact_delta_e = 10\ncells = 12')

    def score(*flags: str) -> dict:
        result = subprocess.run([sys.executable, "-m", "watcher", "score", str(images["green"]), "--json",
                                 "--prompt", "pixel art portrait, green background", *flags],
                                capture_output=True, text=True, cwd=REPO, timeout=300)
        assert result.returncode == 0, result.stderr
        return _json_lines(result.stdout)[0]

    default, run, category, loose = (score(), score("-c", str(config)),
                                     score("-c", str(config), "--colour-match", "category", "--cells", "24"),
                                     score("--colour-match", "exact", "--exact-delta-e", "25"))
    assert 15 < default["background_delta_e"] < 25
    assert default["background_match"] is True and default["expected_cells"] == 24
    assert run["background_match"] is False and run["expected_cells"] == 12
    assert "wrong_background" in run["issues"]
    assert category["background_match"] is True and category["expected_cells"] == 24
    assert loose["background_match"] is True


@pytest.mark.parametrize(("flags", "message"), [
    (["--exact-delta-e", "0"], "epochwatch score: --exact-delta-e: Input should be greater than 0"),
    (["--exact-delta-e", "101"], "epochwatch score: --exact-delta-e: Input should be less than or equal to 100"),
    (["-c", "missing.toml"], "epochwatch score: missing.toml: config file not found"),
])
def test_bad_settings_are_refused_in_one_line(images: dict[str, Path], flags: list[str], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["score", str(images["green"]), *flags]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == message and out == ""


def test_score_refuses_a_config_with_a_bad_colour_match(images: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    config = _run_config(tmp_path, 'colour_match = "fuzzy"')
    assert main(["score", str(images["green"]), "-c", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "evaluation.colour_match" in err


def test_score_and_downscale_do_not_import_torch(images: dict[str, Path], tmp_path: Path) -> None:
    config = _run_config(tmp_path, 'colour_match = "exact"')
    code = (
        "import sys\n"
        "from watcher.cli import main\n"
        f"assert main(['score', {str(images['green'])!r}, '--json']) == 0\n"
        f"assert main(['score', {str(images['green'])!r}, '-c', {str(config)!r}, '--json']) == 0\n"
        f"assert main(['downscale', {str(images['green'])!r}, '--out-dir', {str(tmp_path)!r}]) == 0\n"
        "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                            timeout=300)
    assert result.returncode == 0, result.stderr
