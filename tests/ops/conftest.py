"""Fixtures of the operations tests (deploy/, docker-compose.yml, Dockerfile, docs/schemas).

External tools these tests need (installed by .ci/run; a missing one is a test failure, not a skip):
  * promtool (Debian package ``prometheus``)
  * the PyPI package ``kubernetes-validate`` (offline Kubernetes JSON schemas)
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest
import yaml

from tests.ops.helpers import PROMETHEUS_BUILTINS, exported_metric_names


@pytest.fixture(scope="session")
def known_metrics() -> set[str]:
    return exported_metric_names() | PROMETHEUS_BUILTINS


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: apt-get install prometheus (Debian package)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def check_promql(promtool: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[[dict[str, str]], None]:
    """Check the syntax of PromQL expressions with promtool (as recording rules of a throw-away file)."""

    def check(expressions: dict[str, str]) -> None:
        rules = [{"record": f"check_expr_{i}", "expr": expr} for i, expr in enumerate(expressions.values())]
        path = tmp_path_factory.mktemp("promql") / "exprs.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}))
        result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True,
                                timeout=60, check=False)
        if result.returncode != 0:
            labels = "\n".join(f"  check_expr_{i}: {label}" for i, label in enumerate(expressions))
            pytest.fail(f"promtool rejects an expression:\n{result.stdout}{result.stderr}\n{labels}",
                        pytrace=False)

    return check

