"""The optional learned judge (watcher.clipjudge): CLIPScore from a local CLIP model folder,
advisory by default. A tiny randomly initialised CLIPModel + processor, built offline with the
tiny SD model's tokenizer: its scores mean nothing, the plumbing is what is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from watcher.cli import main
from watcher.clipjudge import CLIP_SCALE, ClipJudge, build_tiny_clip
from watcher.config import ConfigError, WatchConfig, load_config
from watcher.epoch.path import EpochPath
from watcher.report import write_report
from watcher.rules import Rule
from watcher.store import Store
from watcher.testing import E2E_PROMPTS, FakePipeline, write_watch_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip", seed=0)


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(n)]


def test_clip_score_is_100_times_the_clipped_cosine_of_the_model_embeddings(clip_dir: Path) -> None:
    import torch
    from transformers import CLIPModel, CLIPProcessor

    judge = ClipJudge(clip_dir)
    images, prompts = _images(3), ["pixel art, red hair", "a green background", "x " * 200]
    scores = judge.scores(images, prompts)
    # the same numbers straight from transformers, one pair at a time (batching, padding
    # and the 77-token cut must not change a score)
    model = CLIPModel.from_pretrained(str(clip_dir)).eval()
    processor = CLIPProcessor.from_pretrained(str(clip_dir))
    for image, prompt, score in zip(images, prompts, scores, strict=True):
        inputs = processor(text=[prompt], images=[Image.fromarray(image)], return_tensors="pt",
                           truncation=True, max_length=77)
        with torch.no_grad():
            out = model(**inputs)
        cos = torch.nn.functional.cosine_similarity(out.image_embeds, out.text_embeds)[0]
        assert score == pytest.approx(CLIP_SCALE * max(float(cos), 0.0), abs=1e-3)
        assert 0.0 <= score <= 100.0
    assert len(set(scores)) == 3  # a different prompt, a different score


def test_a_missing_or_wrong_clip_model_is_refused_at_load_in_one_line(tmp_path: Path, clip_dir: Path) -> None:
    for folder, words in ((tmp_path / "nowhere", "no such folder"), (tmp_path, "no config.json")):
        config = write_watch_config(tmp_path, tmp_path / "m", criteria=f'[evaluation]\nclip_model = "{folder}"')
        with pytest.raises(ConfigError) as caught:
            load_config(config)
        message = str(caught.value)
        assert len(message.splitlines()) == 1 and "evaluation.clip_model" in message and words in message


def test_a_rule_on_clip_score_needs_the_judge_and_stops_only_when_it_opts_in(tmp_path: Path,
                                                                             clip_dir: Path) -> None:
    rule = ('[[criteria]]\nname = "adherence"\nmetric = "clip_score"\nthreshold = 20\n'
            'epoch = 2\naction = "{action}"\n{extra}')
    judge = f'[evaluation]\nclip_model = "{clip_dir}"\n'

    def load(text: str) -> WatchConfig:
        return load_config(write_watch_config(tmp_path, tmp_path / "m", criteria=text))

    with pytest.raises(ConfigError, match="set \\[evaluation\\] clip_model"):
        load(rule.format(action="alert", extra=""))
    with pytest.raises(ConfigError, match="advisory.*learned_stop = true") as caught:
        load(judge + rule.format(action="stop", extra=""))
    assert len(str(caught.value).splitlines()) == 1
    with pytest.raises(ConfigError, match="advisory"):  # a stop when it cannot be judged is a stop too
        load(judge + rule.format(action="alert", extra='on_missing = "stop"'))
    assert [r.action for r in load(judge + rule.format(action="alert", extra="")).rules()] == ["alert"]
    (opted_in,) = load(judge + rule.format(action="stop", extra="learned_stop = true")).rules()
    assert opted_in.action == "stop" and opted_in.learned_stop
    with pytest.raises(ValueError, match="advisory"):
        Rule("r", "clip_score", ">=", 20.0, epoch=1, action="stop")
    with pytest.raises(ValueError, match="outside clip_score's range"):
        Rule("r", "clip_score", ">=", 101.0, epoch=1)


def test_the_trainer_source_refuses_a_clip_model(tmp_path: Path, clip_dir: Path) -> None:
    from watcher.testing import write_trainer_source_config

    prompts = tmp_path / "prompts.txt"
    prompts.write_text(E2E_PROMPTS[0] + "\n", encoding="utf-8")
    config = write_trainer_source_config(tmp_path, prompts, name="T",
                                         tables=f'[evaluation]\nclip_model = "{clip_dir}"\n')
    with pytest.raises(ConfigError, match='clip_model: needs sampling.source = "render"'):
        load_config(config)


def test_rendered_epochs_store_clip_score_and_an_alert_rule_judges_it(
        tmp_path: Path, clip_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    criteria = (f'[evaluation]\nclip_model = "{clip_dir}"\n'
                '[[criteria]]\nname = "adherence"\nmetric = "clip_score"\ncomparison = ">="\n'
                'threshold = 100\nepoch = 1\nmode = "from"\naction = "alert"\n')
    config = write_watch_config(tmp_path, tmp_path / "m", name="CLIP_RUN", criteria=criteria)
    path = EpochPath.open(load_config(config))
    try:
        ck = path.add_source(tmp_path / "lora-000001.safetensors", 1, f"{1:064x}", 1000)
        outcome = path.run_checkpoint(FakePipeline(background="#00ff00"), ck)
        images = outcome.evaluation.metrics["images"]
        scores = [entry["clip_score"] for entry in images]
        # the stored per-image scores are the judge's own on the rendered images, each
        # against its own prompt
        prompts = path.cfg.prompts()
        rendered = FakePipeline(background="#00ff00").generate(prompts, 2)
        assert scores == ClipJudge(clip_dir).scores(rendered, [p.text for p in prompts])
        assert outcome.evaluation.aggregate["clip_score"] == pytest.approx(np.mean(scores), abs=1e-4)
        (decision,) = [d for d in outcome.decisions if d.criterion == "adherence"]
        assert decision.outcome == "fail" and decision.alert_kind == "criterion_failed"
        assert not decision.stops and not outcome.stops  # advisory: alerts, never stops
    finally:
        path.close()
    capsys.readouterr()
    assert main(["status", "-c", str(config), "--json"]) == 0
    (epoch,) = json.loads(capsys.readouterr().out)["epochs"]
    assert epoch["clip_score"] == outcome.evaluation.aggregate["clip_score"]
    assert main(["status", "-c", str(config)]) == 0
    text = capsys.readouterr().out
    assert "  clip  decision" in text and f"{epoch['clip_score']:.1f}  alert" in text
    cfg = load_config(config)
    with Store(cfg.state_db) as store:
        report = write_report(cfg, store).read_text()
    assert f"CLIPScore (prompt adherence, 100 x max(cos, 0); advisory): epoch 1 {epoch['clip_score']:.1f}." in report


def test_score_with_a_config_naming_the_judge_adds_clip_score(tmp_path: Path, clip_dir: Path) -> None:
    image = tmp_path / "green.png"
    Image.fromarray(_images(1)[0]).save(image)
    config = tmp_path / "config.toml"
    config.write_text('[run]\nname = "r1"\noutput_dir = "out"\noutput_name = "lora"\nmax_train_epochs = 3\n'
                      f'[model]\nbase = "tiny-model"\n[evaluation]\nclip_model = "{clip_dir}"\n',
                      encoding="utf-8")
    prompt = "pixel art portrait, green background"
    result = subprocess.run([sys.executable, "-m", "watcher", "score", str(image), "--json", "-c", str(config),
                             "--prompt", prompt], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    scored = json.loads(result.stdout.splitlines()[-1])
    assert scored["clip_score"] == ClipJudge(clip_dir).scores([_images(1)[0]], [prompt])[0]
    table = subprocess.run([sys.executable, "-m", "watcher", "score", str(image), "-c", str(config),
                            "--prompt", prompt], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert table.returncode == 0 and " clip " in table.stdout.splitlines()[0]
