"""One set of defaults: default_config.toml (what a user copies), the plugins' constructors, the
command's flags and the stage config cannot say different things."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import REPO, SHELL_KERAS_BACKEND
from extractor.cli import eval_command, main, run
from extractor.config import load_config
from extractor.models.backend import resolve_backend, use_backend
from extractor.plugins import registry
from extractor.stages import StageConfig

CONFIG = load_config(None)


def _constructor_defaults(cls) -> dict:
    out = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            out.update({p.name: p.default for p in inspect.signature(klass.__init__).parameters.values()
                        if p.default is not inspect.Parameter.empty})
    return out


@pytest.mark.parametrize("stage, name", [(cls.stage, cls.name) for cls in registry.available()])
def test_every_plugin_option_in_the_config_is_the_constructors_default(stage, name):
    cls = registry.get_plugin_class(stage, name)
    options = CONFIG["plugins"].get(stage, {}).get(name)
    assert options is not None, f"default_config.toml has no [plugins.{stage}.{name}]"
    defaults = dict(_constructor_defaults(cls), batch_size=cls.batch_size)
    for key, value in options.items():
        default = defaults[key]
        assert value == (list(default) if isinstance(default, tuple) else default), (stage, name, key)


def test_every_run_flag_default_is_the_configs():
    params = {param.name: param for param in run.params}
    renamed = {"masker": "maskers", "extract_every_n": "every_n"}
    for key, value in CONFIG["run"].items():
        default = params[renamed.get(key, key)].default
        if isinstance(default, (bool, int, float, str)):  # flags without a default of their own take the config's
            assert default == value, key
    stage = StageConfig()
    assert (stage.detector, stage.aligner, list(stage.maskers), stage.normalization) == (
        CONFIG["run"]["detector"], CONFIG["run"]["aligner"], CONFIG["run"]["masker"], CONFIG["run"]["normalization"])


def test_eval_takes_the_same_defaults_as_run(tmp_path):
    """eval reads the [run] detector, aligner and normalisation of the configuration."""
    config = tmp_path / "c.toml"
    config.write_text('[run]\ndetector = "dlib-hog"\naligner = "face-mesh"\n')
    result = CliRunner().invoke(main, ["--config", str(config), "eval", "--help"])
    assert result.exit_code == 0
    assert "[default: dlib-hog]" in result.output and "[default: face-mesh]" in result.output
    assert {p.name for p in eval_command.params} >= {"detector", "aligner", "normalization"}


def test_a_stage_batch_comes_from_the_flag_then_the_config_then_the_plugin():
    assert StageConfig().batch_size("detect") == registry.get_plugin_class("detect", "centerface").batch_size
    assert StageConfig(plugin_options={"detect.centerface": {"batch_size": 2}}).batch_size("detect") == 2
    assert StageConfig(batch_sizes={"detect": 8}, plugin_options={"detect.centerface": {"batch_size": 2}}
                       ).batch_size("detect") == 8


def test_a_test_that_loads_keras_chooses_its_backend_in_this_process():
    """The first of a pair (file order): a Keras backend chosen in the test process, as every test
    that loads a Keras model does (``use_backend`` sets KERAS_BACKEND before Keras is imported)."""
    use_backend(resolve_backend(None))
    assert os.environ.get("KERAS_BACKEND")


def test_a_run_started_after_it_gets_the_default_plan_of_a_users_shell(tmp_path):
    """The second: a run started after it plans as from a user's shell (no KERAS_BACKEND, ONNX
    Runtime for CenterFace on a CPU-only machine), not on the Keras backend the test before chose
    (conftest puts the environment back after each test)."""
    assert os.environ.get("KERAS_BACKEND") == SHELL_KERAS_BACKEND
    run = subprocess.run([sys.executable, "-m", "extractor", "run", "-i", str(REPO / "samples" / "images"),
                          "-o", str(tmp_path), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and ("[onnxruntime]" in run.stderr or SHELL_KERAS_BACKEND), run.stderr
