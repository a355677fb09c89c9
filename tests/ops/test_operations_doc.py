"""docs/OPERATIONS.md and README.md follow the worker: every option and variable with its default, every
metric of the registry and nothing else, and no trace of the Faust runtime in the operations files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.ops.helpers import REPO

OPERATIONS_MD = REPO / "docs" / "OPERATIONS.md"
README = REPO / "README.md"
_ROW = re.compile(r"^\| `(--[a-z-]+)` / `(SEGMENTER_[A-Z_]+)` \| ([^|]+) \|", re.M)
_METRIC_ROW = re.compile(r"^\| `(segmenter_[a-z_]+)` \|", re.M)


def documented_options() -> dict[str, tuple[str, str]]:
    """variable -> (option, default cell) from the worker's table."""
    rows = _ROW.findall(OPERATIONS_MD.read_text())
    found = {var: (option, default.strip()) for option, var, default in rows}
    assert found, "no `--option` / `SEGMENTER_VAR` rows in docs/OPERATIONS.md"
    return found


def test_every_worker_option_is_documented_with_its_default():
    from streams.cli.worker_cmd import worker

    documented = documented_options()
    params = {p.envvar: p for p in worker.params if isinstance(getattr(p, "envvar", None), str)}
    assert set(documented) == set(params), "documented variables differ from the worker's"
    for var, param in params.items():
        option, default = documented[var]
        assert option in param.opts, f"{var}: documented as {option}, the worker has {param.opts}"
        value = param.default
        if isinstance(value, str | int | float | Path):
            assert default == f"`{value}`", f"{var}: documented default {default}, the worker's is {value}"
        else:
            assert not default.startswith("`"), f"{var} has no default value, the table shows {default}"


def test_worker_settings_defaults_agree_with_the_cli():
    """The documented defaults are also WorkerSettings' (what tests and embedders construct)."""
    from streams.cli.worker_cmd import worker
    from streams.settings import WorkerSettings

    settings = WorkerSettings()
    fields = {
        "SEGMENTER_BROKER": "broker", "SEGMENTER_REDIS_URL": "redis_url", "SEGMENTER_CLOCK": "clock",
        "SEGMENTER_WALL_GRACE_SECONDS": "wall_grace_seconds", "SEGMENTER_DATA_DIR": "data_dir",
        "SEGMENTER_STORE": "store", "SEGMENTER_APP_ID": "app_id", "SEGMENTER_REDIS_PREFIX": "redis_prefix",
        "SEGMENTER_WEB_PORT": "web_port", "SEGMENTER_CURRENCY": "currency",
        "SEGMENTER_PROCESSING_GUARANTEE": "processing_guarantee", "SEGMENTER_INSTANCE_ID": "instance_id",
        "SEGMENTER_LOG_LEVEL": "log_level", "SEGMENTER_BATCH_SIZE": "batch_size",
        "SEGMENTER_BATCH_WINDOW": "batch_window_seconds", "SEGMENTER_STALL_SECONDS": "stall_seconds",
    }
    params = {p.envvar: p for p in worker.params}
    for var, name in fields.items():
        assert params[var].default == getattr(settings, name), var
    assert settings.processing_guarantee == "exactly_once"
    assert (settings.batch_size, settings.batch_window_seconds) == (10_000, 0.1)


def test_metrics_table_is_the_registry():
    from streams.metrics import REGISTRY

    exported = set()
    for family in REGISTRY.collect():
        exported.add(f"{family.name}_total" if family.type == "counter" else family.name)
    documented = set(_METRIC_ROW.findall(OPERATIONS_MD.read_text()))
    assert documented == exported


def test_runbooks_explain_the_new_runtime():
    text = OPERATIONS_MD.read_text()
    needles = (
        "read_committed", "isolation.level", "group.instance.id", "transactional id", "SEGMENTER_INSTANCE_ID",
        "customers-changelog", "clocks-changelog", "{prefix}:projected", "segmenter redis rebuild",
        "segmenter_restore_seconds", "segmenter_transactions_aborted_total",
    )
    for needle in needles:
        assert needle in text, needle


@pytest.mark.parametrize(
    "path",
    [
        "README.md", "docs/OPERATIONS.md", "docker-compose.yml", "Dockerfile", ".dockerignore",
        "streams/cli/demo_cmd.py", *sorted(str(p.relative_to(REPO)) for p in (REPO / "examples").iterdir()),
        *sorted(str(p.relative_to(REPO)) for p in (REPO / "deploy").rglob("*") if p.is_file()),
    ],
)
def test_no_faust_left(path):
    assert "faust" not in (REPO / path).read_text(errors="replace").lower()


def test_readme_keeps_the_two_commands():
    text = README.read_text()
    assert "```sh\nmake demo\n```" in text
    assert "```sh\nmake test\n```" in text
