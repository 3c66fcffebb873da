"""Watcher config, kohya config import and kohya prompt files (real files in tmp dirs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watcher.config import (
    ConfigError,
    Criterion,
    PromptDefaults,
    SamplePrompt,
    default_criteria,
    load_config,
    load_kohya_config,
    parse_prompt_file,
)
from watcher.testing import KEEP_TOKENS_3_DEMO_PARAMS

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "configs" / "SD15_KEEP_TOKENS_3_EXPERIMENT"


MINIMAL = """\
[run]
name = "r1"
output_dir = "out"
output_name = "lora"
max_train_epochs = 3

[model]
base = "tiny-model"
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------- shipped config


def test_shipped_watcher_config_loads_with_kohya_values() -> None:
    cfg = load_config(SHIPPED / "watcher.toml")
    assert cfg.run.name == "SD15_KEEP_TOKENS_3_EXPERIMENT"
    assert cfg.output_dir == Path("/workspace/output")
    assert cfg.run.output_name == "SD15_KEEP_TOKENS_3_EXPERIMENT"
    assert (cfg.run.max_train_epochs, cfg.run.save_every_n_epochs) == (10, 1)
    assert cfg.model.base == "runwayml/stable-diffusion-v1-5"
    assert cfg.trainer.command[:5] == [
        "accelerate", "launch", "--num_cpu_threads_per_process", "1", "train_network.py",
    ]  # fmt: skip
    assert cfg.trainer.command[5:] == [
        "--config_file", str(SHIPPED / "training_config_SD15_KEEP_TOKENS_3.toml"),
    ]  # fmt: skip
    assert cfg.trainer.cwd == Path("/workspace/sd-scripts")
    assert cfg.trainer.log_file == Path("/workspace/logs/keep_tokens_3_experiment.log")
    assert cfg.state_db == Path("/workspace/epochwatch/state/state.db")
    assert cfg.run_results_dir == Path("/workspace/epochwatch-results/runs/SD15_KEEP_TOKENS_3_EXPERIMENT")
    assert cfg.criteria == default_criteria()
    assert cfg.params() == KEEP_TOKENS_3_DEMO_PARAMS
    json.dumps(cfg.params())  # the Supabase row must be plain JSON


def test_shipped_prompts_have_hex_codes_and_green_background() -> None:
    cfg = load_config(SHIPPED / "watcher.toml")
    prompts = cfg.prompts()
    assert len(prompts) == 8
    assert len({p.seed for p in prompts}) == 8
    for p in prompts:
        assert "solid green background (#00ff00)" in p.text
        assert "--" not in p.text and p.negative == "blurry, smooth shading, gradient"
        assert (p.width, p.height, p.steps, p.cfg) == (512, 512, 20, 7.5)
    assert len(cfg.review_prompts()) == 6


def test_shipped_kohya_config_has_the_experiment_values() -> None:
    k = load_kohya_config(SHIPPED / "training_config_SD15_KEEP_TOKENS_3.toml")
    expected = {
        "pretrained_model_name_or_path": "runwayml/stable-diffusion-v1-5",
        "train_data_dir": "/workspace/training_data", "output_dir": "/workspace/output",
        "resolution": "512,512", "network_module": "networks.lora", "network_dim": 32,
        "network_alpha": 16, "learning_rate": 1e-4, "lr_scheduler": "cosine_with_restarts",
        "optimizer_type": "AdamW8bit", "keep_tokens": 3, "caption_dropout_rate": 0.05,
        "noise_offset": 0.05, "max_train_epochs": 10, "save_every_n_epochs": 1,
        "train_batch_size": 1, "gradient_accumulation_steps": 4, "mixed_precision": "fp16",
        "save_model_as": "safetensors", "caption_extension": ".txt", "shuffle_caption": True,
    }  # fmt: skip
    assert {key: k.get(key) for key in expected} == expected
    assert all(not isinstance(v, dict) for v in k.values())  # flattened


# --------------------------------------------------------------------- errors with lines


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, "config.toml", MINIMAL + "steps = \"twenty\"\n")
    assert config_error(cfg) == f"{cfg}:9: model.steps: Input should be a valid integer"


def test_unknown_key_names_key_and_line(tmp_path: Path) -> None:
    text = MINIMAL.replace('output_dir = "out"', 'outptu_dir = "out"')
    cfg = write(tmp_path, "config.toml", text)
    assert config_error(cfg).startswith(f"{cfg}:3: run.outptu_dir: unknown key")


def test_unknown_table_and_missing_run_name(tmp_path: Path) -> None:
    cfg = write(tmp_path, "a.toml", MINIMAL + "\n[extras]\nx = 1\n")
    assert config_error(cfg) == f"{cfg}:10: extras: unknown key"
    cfg = write(tmp_path, "b.toml", MINIMAL.replace('name = "r1"\n', ""))
    assert config_error(cfg) == f"{cfg}:1: run.name: required key missing"


def test_inline_prompt_and_array_table_errors_point_at_element(tmp_path: Path) -> None:
    text = MINIMAL + (
        "\n[sampling]\n"
        "prompts = [\n"
        '  { text = "a (#00ff00)", seed = 1 },\n'
        '  { text = "b (#ff0000)", seed = "two" },\n'
        "]\n"
        "\n[[criteria]]\n"
        'name = "a"\nmetric = "overall_score"\nthreshold = 8\nepoch = 7\n'
    )
    cfg = write(tmp_path, "c.toml", text)
    assert config_error(cfg) == f"{cfg}:13: sampling.prompts[1].seed: Input should be a valid integer"
    text = text.replace('seed = "two"', "seed = 2") + (
        "\n[[criteria]]\n"
        'name = "b"\nmetric = "overall_score"\n'
        'comparison = "=>"\n'
        "threshold = 8\nepoch = 7\n"
    )
    cfg = write(tmp_path, "d.toml", text)
    assert config_error(cfg).startswith(f"{cfg}:25: criteria[1].comparison: Input should be '>='")


def test_dotted_keys_and_inline_tables_get_a_line(tmp_path: Path) -> None:
    text = MINIMAL + "\n[daemon]\npolling_observer = true\nrescan_interval_s = -1\n"
    cfg = write(tmp_path, "e.toml", text)
    assert config_error(cfg) == f"{cfg}:12: daemon.rescan_interval_s: Input should be greater than 0"
    text = MINIMAL + 'evaluation.cells = "x"\n'
    cfg = write(tmp_path, "f.toml", text)
    # a dotted key under [model] is model.evaluation: unknown, at its own line
    assert config_error(cfg) == f"{cfg}:9: model.evaluation: unknown key"
    text = "alerts = { min_interval_s = 1, typo = 2 }\n" + MINIMAL
    cfg = write(tmp_path, "g.toml", text)
    assert config_error(cfg) == f"{cfg}:1: alerts.typo: unknown key"


def test_toml_syntax_error_keeps_line_and_column(tmp_path: Path) -> None:
    cfg = write(tmp_path, "h.toml", MINIMAL + "steps = = 3\n")
    message = config_error(cfg)
    assert message.startswith(f"{cfg}:9: invalid TOML: ")
    assert "line 9, column" in message


def test_criterion_rules_are_validated(tmp_path: Path) -> None:
    base = MINIMAL + '\n[[criteria]]\nname = "x"\nthreshold = 0.5\n'
    cfg = write(tmp_path, "i.toml", base + 'metric = "background_rate"\nepoch = 4\n')
    assert config_error(cfg).startswith(f"{cfg}:13: criteria[0].metric: Input should be ")
    cfg = write(tmp_path, "j.toml", base + 'metric = "color_accuracy"\nmode = "by"\n')
    assert config_error(cfg) == f"{cfg}:10: criteria[0]: mode 'by' needs an epoch"
    cfg = write(tmp_path, "k.toml", base + 'metric = "color_accuracy"\nepoch = 2\naction = "kill"\n')
    assert "criteria[0].action: Input should be 'stop', 'alert', 'none' or 'mark'" in config_error(cfg)
    dup = base + 'metric = "color_accuracy"\nepoch = 2\n'
    cfg = write(tmp_path, "l.toml", dup + dup.split("\n", 9)[-1])
    assert config_error(cfg) == f"{cfg}:16: criteria[1].name: duplicate criterion name 'x'"


def test_default_criteria_are_the_plan_rules() -> None:
    rules = {c.name: c for c in default_criteria()}
    assert rules["green_background_by_epoch_4"] == Criterion(
        name="green_background_by_epoch_4", metric="background_match_rate", comparison=">=",
        threshold=0.5, epoch=4, mode="by", action="stop",
    )  # fmt: skip
    assert [(c.metric, c.mode, c.action, c.threshold, c.epoch) for c in rules.values()] == [
        ("background_match_rate", "by", "stop", 0.5, 4),
        ("background_match_rate", "oscillation", "alert", 0.5, None),
        ("overall_score", "by", "alert", 8.0, 7),
        ("color_accuracy", "by", "alert", 80.0, 5),
        ("overall_score", "candidate", "mark", 8.5, None),
    ]


# --------------------------------------------------------------------- kohya import, paths


def test_values_from_kohya_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "k.toml", (
        '[model_arguments]\npretrained_model_name_or_path = "./models/sd15"\n'
        '[training_arguments]\noutput_dir = "output"\noutput_name = "px"\n'
        "max_train_epochs = 6\nsave_every_n_epochs = 2\n"
        '[additional_network_arguments]\nnetwork_dim = 8\nnetwork_args = ["conv_dim=4", "conv_alpha=1"]\n'
    ))  # fmt: skip
    cfg_path = write(tmp_path / "sub", "w.toml", (
        '[run]\nname = "r"\nkohya_config = "k.toml"\nstate_dir = "st"\n'
        '[run.params]\ndata = { num_images = 12 }\nextra = "x"\n'
        '[trainer]\ncwd = "../trainer"\ncommand = ["python", "t.py", "--config_file", "{kohya_config}", "{config_dir}/x"]\n'
        '[results]\nrepo = "res"\n'
    ))  # fmt: skip
    cfg = load_config(cfg_path)
    sub = (tmp_path / "sub").resolve()
    assert cfg.output_dir == (tmp_path / "trainer" / "output").resolve()  # kohya: trainer cwd
    assert (cfg.run.output_name, cfg.run.max_train_epochs, cfg.run.save_every_n_epochs) == ("px", 6, 2)
    assert cfg.model.base == str((tmp_path / "trainer" / "models" / "sd15").resolve())
    assert cfg.state_db == sub / "st" / "state.db"
    assert cfg.results_repo == sub / "res" and cfg.run_results_dir == sub / "res" / "runs" / "r"
    assert cfg.trainer.command[3:] == [str(sub / "k.toml"), f"{sub}/x"]
    assert cfg.trainer.log_file == sub / "logs" / "trainer.log"
    params = cfg.params()
    assert params["architecture"] == {"network_dim": 8, "network_alpha": None, "conv_dim": 4}
    assert params["data"]["num_images"] == 12 and params["extra"] == "x"
    assert params["hyperparameters"]["max_train_epochs"] == 6
    assert cfg.prompts() == []


def test_watcher_values_win_over_kohya(tmp_path: Path) -> None:
    write(tmp_path, "k.toml", '[t]\noutput_name = "kohya_name"\nmax_train_epochs = 10\n')
    with_kohya = MINIMAL.replace('[model]', 'kohya_config = "k.toml"\n\n[model]')
    cfg = load_config(write(tmp_path, "w.toml", with_kohya))
    assert (cfg.run.output_name, cfg.run.max_train_epochs) == ("lora", 3)
    text = with_kohya.replace('output_name = "lora"\n', "")
    cfg = load_config(write(tmp_path, "w2.toml", text))
    assert (cfg.run.output_name, cfg.run.max_train_epochs) == ("kohya_name", 3)
    assert cfg.kohya == {"output_name": "kohya_name", "max_train_epochs": 10}


def test_kohya_errors_name_the_kohya_file(tmp_path: Path) -> None:
    text = MINIMAL.replace('output_name = "lora"\n', 'kohya_config = "k.toml"\n')
    cfg = write(tmp_path, "w.toml", text)
    assert config_error(cfg) == f"{cfg}:4: run.kohya_config: file not found: {tmp_path.resolve()}/k.toml"
    kohya = write(tmp_path, "k.toml", '[a]\nseed = 1\n[b]\noutput_name = 5\n')
    assert config_error(cfg) == f"{kohya.resolve()}:4: output_name: expected a string, got 5"
    write(tmp_path, "k.toml", '[a]\noutput_name = "x"\nmax_train_epochs = = 3\n')
    assert config_error(cfg).startswith(f"{kohya.resolve()}:3: invalid TOML: ")
    write(tmp_path, "k.toml", '[a]\nseed = 1\n')
    assert config_error(cfg) == (
        f"{cfg}:1: run: output_name is required (set run.output_name or point "
        "run.kohya_config at a kohya config that has it)"
    )


def test_missing_and_unreadable_config_files(tmp_path: Path) -> None:
    assert config_error(tmp_path / "nope.toml") == f"{tmp_path}/nope.toml: config file not found"
    bad = tmp_path / "bin.toml"
    bad.write_bytes(b"[run]\nname = \"\xff\"\n")
    assert config_error(bad) == f"{bad}: not UTF-8 text (byte 14)"


def test_paths_and_names_are_checked(tmp_path: Path) -> None:
    cfg = write(tmp_path, "a.toml", MINIMAL.replace('name = "r1"', 'name = "../evil"'))
    assert config_error(cfg).startswith(f"{cfg}:2: run.name: String should match pattern")
    cfg = write(tmp_path, "b.toml", MINIMAL + '[results]\ndir = "../out"\n')
    assert config_error(cfg) == f"{cfg}:10: results.dir: must be a relative folder inside the repository"
    cfg = write(tmp_path, "c.toml", MINIMAL + 'width = 500\n')
    assert config_error(cfg) == f"{cfg}:9: model.width: Input should be a multiple of 8"


# --------------------------------------------------------------------- prompt files


def test_parse_prompt_file_kohya_options(tmp_path: Path) -> None:
    prompts = write(tmp_path, "p.txt", (
        "# comment line\n\n"
        "pixel art, green background (#00ff00) --n blurry, smooth --w 640 --h 515 --d 7 --s 12 --l 5.5\n"
        "   # indented comment\n"
        "portrait with #ff0000 hair\n"
        "sampler option ignored --ss euler_a --d 3\n"
    ))  # fmt: skip
    d = PromptDefaults(negative="neg", seeds=(1, 2), width=512, height=512, steps=20, cfg=7.5)
    assert parse_prompt_file(prompts, d) == [
        SamplePrompt("pixel art, green background (#00ff00)", "blurry, smooth", 7, 640, 512, 12, 5.5),
        SamplePrompt("portrait with #ff0000 hair", "neg", 1, 512, 512, 20, 7.5),
        SamplePrompt("portrait with #ff0000 hair", "neg", 2, 512, 512, 20, 7.5),
        SamplePrompt("sampler option ignored", "neg", 3, 512, 512, 20, 7.5),
    ]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("a prompt --w wide", "--w: bad value 'wide'"),
        ("a prompt --l", "--l: bad value ''"),
        ("a prompt --q 3", "unknown prompt option --q (known: n, w, h, d, s, l)"),
        (" --n only negative", "empty prompt text"),
        ("a prompt --s 0", "--w, --h and --s must be positive"),
    ],
)
def test_parse_prompt_file_errors_name_line(tmp_path: Path, line: str, error: str) -> None:
    prompts = write(tmp_path, "p.txt", "# header\nok prompt\n" + line + "\n")
    with pytest.raises(ConfigError) as info:
        parse_prompt_file(prompts, PromptDefaults())
    assert str(info.value) == f"{prompts}:3: {error}"


def test_bad_prompt_file_fails_at_load(tmp_path: Path) -> None:
    write(tmp_path, "p.txt", "fine\nbad --w x\n")
    cfg = write(tmp_path, "w.toml", MINIMAL + '[sampling]\nprompts_file = "p.txt"\n')
    assert config_error(cfg) == f"{tmp_path.resolve()}/p.txt:2: --w: bad value 'x'"
    cfg = write(tmp_path, "w2.toml", MINIMAL + '[sampling]\nprompts_file = "missing.txt"\n')
    assert config_error(cfg) == f"{tmp_path.resolve()}/missing.txt: prompt file not found"


def test_inline_prompts_expand_over_seeds(tmp_path: Path) -> None:
    write(tmp_path, "p.txt", "from file (#00ff00) --d 9\n")
    text = MINIMAL + (
        'steps = 10\nguidance_scale = 6.0\n'
        '[sampling]\nprompts_file = "p.txt"\nseeds = [1, 2]\nnegative_prompt = "bad"\n'
        'prompts = [ { text = "inline (#ff0000)" }, { text = "fixed", seed = 5, cfg = 3, negative = "" } ]\n'
        '[[criteria]]\nname = "q"\nmetric = "overall_score"\nthreshold = 8\nepoch = 7\n'
    )  # fmt: skip
    cfg = load_config(write(tmp_path, "w.toml", text))
    assert cfg.prompts() == [
        SamplePrompt("from file (#00ff00)", "bad", 9, 512, 512, 10, 6.0),
        SamplePrompt("inline (#ff0000)", "bad", 1, 512, 512, 10, 6.0),
        SamplePrompt("inline (#ff0000)", "bad", 2, 512, 512, 10, 6.0),
        SamplePrompt("fixed", "", 5, 512, 512, 10, 3.0),
    ]


def test_line_finder_survives_multiline_strings_and_arrays(tmp_path: Path) -> None:
    text = MINIMAL + (
        '"guidance_scale" = 7.0\n'  # line 9, quoted key
        "[sampling]\n"
        'negative_prompt = """\n'
        "[model]\n"
        "steps = 5 # not a key: inside a string\n"
        '"""\n'
        "seeds = [1, # one\n"
        "  2,\n"
        '  "x"]\n'  # line 17
    )
    cfg = write(tmp_path, "m.toml", text)
    assert config_error(cfg) == f"{cfg}:17: sampling.seeds[2]: Input should be a valid integer"
    cfg = write(tmp_path, "n.toml", text.replace('"x"', "3") + "[[criteria]]\nname = 'a'\n"
                "metric = 'overall_score'\nthreshold = 1\nepoch = 1\n[[criteria]]\nname = 'b'\n"
                "metric = 'overall_score'\nthreshold = 1\nepoch = 1\nwhen = 2\n")  # fmt: skip
    assert config_error(cfg) == f"{cfg}:28: criteria[1].when: unknown key"


def test_empty_strings_mean_unset_for_optional_fields(tmp_path: Path) -> None:
    text = MINIMAL + '[sampling]\nprompts_file = ""\nreview_prompts_file = ""\n'
    cfg = load_config(write(tmp_path, "w.toml", text.replace("[run]\n", '[run]\nkohya_config = ""\n')))
    assert cfg.sampling.prompts_file is None and cfg.sampling.review_prompts_file is None
    assert cfg.run.kohya_config is None and cfg.kohya == {} and cfg.review_prompts() == []
    assert cfg.params()["architecture"]["conv_dim"] is None  # nothing known without kohya


def test_outbox_retry_cap_is_configurable_and_checked(tmp_path: Path) -> None:
    good = write(tmp_path, "good.toml", MINIMAL + "\n[supabase]\nretry_max_s = 12.5\n")
    assert load_config(good).supabase.retry_max_s == 12.5
    assert load_config(write(tmp_path, "plain.toml", MINIMAL)).supabase.retry_max_s == 300.0
    bad = write(tmp_path, "bad.toml", MINIMAL + "\n[supabase]\nretry_max_s = 0\n")
    assert config_error(bad).startswith(f"{bad}:11: supabase.retry_max_s: Input should be greater than 0")


# --------------------------------------------------------------------- prompts and rules at load


def test_a_malformed_hex_code_is_refused_naming_the_prompt_and_position(tmp_path: Path) -> None:
    text = MINIMAL + (
        "[sampling]\n"
        'prompts = [ { text = "pixel art, solid green background (#00gg00)" } ]\n'
    )  # fmt: skip
    cfg = write(tmp_path, "h.toml", text)
    assert config_error(cfg) == (
        f"{cfg}:10: sampling.prompts[0].text: malformed colour code '#00gg00' at character 36 "
        "of prompt 'pixel art, solid green background (#00gg00)'")
    write(tmp_path, "p.txt", "ok (#00ff00) background\nhair (#12345), green background (#00ff00)\n")
    cfg = write(tmp_path, "f.toml", MINIMAL + '[sampling]\nprompts_file = "p.txt"\n')
    assert config_error(cfg) == (
        f"{tmp_path / 'p.txt'}: malformed colour code '#12345' at character 7 of prompt "
        "'hair (#12345), green background (#00ff00)'")


def test_a_rule_no_prompt_can_judge_is_refused(tmp_path: Path) -> None:
    prompts = '[sampling]\nprompts = [ { text = "pixel art, pink hair (#ff66cc)" } ]\n'
    rule = ('[[criteria]]\nname = "bg"\nmetric = "background_match_rate"\nthreshold = 0.5\n'
            'epoch = 4\naction = "stop"\n')
    cfg = write(tmp_path, "r.toml", MINIMAL + prompts + rule)
    assert config_error(cfg) == (
        f"{cfg}:13: criteria[0].metric: criterion 'bg' needs background_match_rate, and no "
        "sample prompt names what it judges (e.g. a background colour); add such a prompt or "
        "drop the rule")
    # The plan's default rules need a background too: said, pointing at the prompts.
    cfg = write(tmp_path, "d.toml", MINIMAL + prompts)
    message = config_error(cfg)
    assert message.startswith(f"{cfg}:9: sampling: criterion 'green_background_by_epoch_4' needs")
    assert message.endswith("(it is one of the plan's default criteria: list [[criteria]] to choose others)")
    # A rule the prompts can judge loads, with on_missing carried into the rule.
    ok = rule.replace("background_match_rate", "overall_score").replace("0.5", "5") + 'on_missing = "stop"\n'
    loaded = load_config(write(tmp_path, "ok.toml", MINIMAL + prompts + ok))
    assert [(r.name, r.on_missing) for r in loaded.rules()] == [("bg", "stop")]
    bad = write(tmp_path, "m.toml", MINIMAL + prompts + ok.replace('on_missing = "stop"',
                                                                   'on_missing = "later"'))
    assert "criteria[0].on_missing: Input should be 'alert' or 'stop'" in config_error(bad)


def test_colour_match_settings_are_validated(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "a.toml", MINIMAL)).evaluation.scoring_kwargs() == {
        "colour_match": "category", "exact_threshold": 10.0}
    cfg = load_config(write(tmp_path, "b.toml", MINIMAL + (
        '[evaluation]\ncolour_match = "exact"\nexact_delta_e = 5.5\n')))
    assert (cfg.evaluation.colour_match, cfg.evaluation.exact_delta_e) == ("exact", 5.5)
    bad = write(tmp_path, "c.toml", MINIMAL + '[evaluation]\ncolour_match = "hue"\n')
    assert config_error(bad) == (
        f"{bad}:10: evaluation.colour_match: Input should be 'category' or 'exact'")
    bad = write(tmp_path, "d.toml", MINIMAL + '[evaluation]\nexact_delta_e = 0\n')
    assert config_error(bad) == f"{bad}:10: evaluation.exact_delta_e: Input should be greater than 0"
