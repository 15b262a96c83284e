"""`Config` checks itself; the CLI's choices are the implementing modules' constants; importing it stays light."""

import subprocess
import sys

import pytest

from pipeline.analyses.issues import METHODS, SOURCES
from pipeline.cli import build_parser, config_from
from pipeline.config import Config
from pipeline.models.devices import DEVICES
from pipeline.models.sequences import TRUNCATIONS
from tests.conftest import ROOT


@pytest.mark.parametrize("field, value, message", [
    ("truncation", "tail", "truncation must be one of head, head_tail"),
    ("issue_method", "vibes", "issue_method must be one of self_confidence"),
    ("issue_source", "cnn", "issue_source must be one of stacked, nblr, ensemble"),
    ("device", "tpu", "device must be one of auto, cpu, cuda"),
    ("folds", 1, "folds must be at least 2"),
    ("sample", 1, "sample must be at least 2"),
    ("C_multiclass", 0.0, "C_multiclass must be a positive number"),
    ("C", float("inf"), "C must be a positive number; got inf"),
    ("nb_alpha", float("nan"), "nb_alpha must be a positive number; got nan"),
    ("seed", -1, r"seed must lie in \[0, 2\*\*32 - 1\]; got -1"),
    ("seed", 2**32, r"seed must lie in \[0, 2\*\*32 - 1\]"),
    ("svd_dim", 1, "svd_dim must be at least 2"),
    ("flip_fraction", 0.9, r"flip_fraction must lie in \[0, 0.5\]"),
    ("memory_limit_mib", -5, "memory_limit_mib must be positive"),
])
def test_a_bad_value_names_the_valid_ones(field, value, message):
    with pytest.raises(ValueError, match=message):
        Config(**{field: value})


def test_the_cli_offers_the_implementing_modules_choices():
    actions = {a.dest: a for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions}
    assert tuple(actions["truncation"].choices) == TRUNCATIONS
    assert tuple(actions["issue_method"].choices) == METHODS and tuple(actions["issue_source"].choices) == SOURCES
    assert tuple(actions["device"].choices) == DEVICES


def test_every_run_option_becomes_a_config_field():
    args = build_parser().parse_args(["run", "--data", "t.csv", "--text", "body", "--label", "queue", "--no-cnn",
                                      "--no-prune", "--C-multiclass", "3", "--memory-limit-mib", "900"])
    cfg = config_from(args)
    assert (cfg.text_column, cfg.label_column, cfg.cnn, cfg.prune, cfg.C_multiclass, cfg.memory_limit_mib) == (
        "body", "queue", False, False, 3.0, 900.0)
    assert cfg.dense and not cfg.bilstm and cfg.progress  # untouched flags keep Config's defaults


def test_the_app_side_imports_load_neither_scikit_learn_nor_torch():
    """Every module a Streamlit server has loaded costs it time on each page visit."""
    code = ("import sys; import pipeline.config, pages.common.state, pages.common.queries, pages.common.widgets; "
            "print(sorted(m for m in ('sklearn', 'scipy', 'torch', 'onnxruntime', 'cleanlab') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
