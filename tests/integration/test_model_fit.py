"""`segmenter model fit` end to end (SPEC section 12): the CDNOW sample replayed through a real worker, the
fit read from the changelogs, parameters equal to the published ones to 2 significant digits; then the
predictive rules applied with `rules apply` (the model travels in the rules record)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from streams.cli import cli
from tests.integration.pipeline_helpers import (
    delete_prefix,
    produce,
    redis_state,
    topic_size,
    wait_until_quiet,
)
from tests.integration.test_pipeline import _clock_advance
from tests.integration.workerproc import Names, WorkerProcess

DATA = Path(__file__).resolve().parents[1] / "data" / "cdnow_sample.txt"
# Fader, Hardie & Lee; alpha 4.414 per week is 30.9 per day.
PUBLISHED = {"r": 0.243, "alpha": 30.9, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74, "v": 15.44}


@pytest.fixture
def names(unique_name, stack):
    names = Names(unique_name)
    names.create_topics(stack.broker, 3)
    yield names
    delete_prefix(stack.redis_url, names.redis_prefix)


def _cdnow_messages() -> list:
    messages = []
    for n, line in enumerate(DATA.read_text().splitlines()):
        customer, _, day, _, amount = line.split()
        ts = f"{day[:4]}-{day[4:6]}-{day[6:]}T12:00:00Z"
        body = {
            "event_id": f"cd-{n}", "type": "purchase", "customer_id": customer, "ts": ts, "amount": amount
        }
        messages.append(("purchases", customer.encode(), orjson.dumps(body)))
    return sorted(messages, key=lambda m: orjson.loads(m[2])["ts"])


def _two_digits(got: float, published: float) -> bool:
    """Equal to 2 significant digits: within half a unit of the second significant digit."""
    unit = 10 ** (math.floor(math.log10(abs(published))) - 1)
    return abs(got - published) <= unit / 2


def test_fit_on_the_replayed_cdnow_sample_reproduces_the_published_parameters(
    stack, names, tmp_path
) -> None:
    env = {**names.env(), "SEGMENTER_BROKER": stack.broker, "SEGMENTER_REDIS_URL": stack.redis_url}
    worker = WorkerProcess(stack.broker, stack.redis_url, names, tmp_path / "data").start()
    try:
        produce(stack.broker, names, _cdnow_messages())
        _clock_advance(stack, names, "1998-07-01")
        wait_until_quiet(lambda: topic_size(stack.broker, names.tier_changes))
        out = tmp_path / "model.json"
        result = CliRunner().invoke(
            cli, ["model", "fit", "--out", str(out), "--as-of", "1997-09-30"], env=env
        )
        assert result.exit_code == 0, result.output
        model = json.loads(out.read_text())
        assert model["customers"] == 2349 and model["as_of"] == "1997-09-30" and model["time_unit"] == "day"
        fitted = {**model["bgnbd"], **model["gamma_gamma"]}
        for name, published in PUBLISHED.items():
            assert _two_digits(fitted[name], published), (name, fitted[name], published)

        rules = tmp_path / "rules-predictive.yaml"
        rules.write_text(Path("examples/rules-predictive.yaml").read_text())
        result = CliRunner().invoke(cli, ["rules", "apply", str(rules)], env=env)
        assert result.exit_code == 0, result.output
        wait_until_quiet(lambda: topic_size(stack.broker, names.tier_changes))
        records, counts, _ = redis_state(stack.redis_url, names.redis_prefix)
        assert set(counts) == {"churn_risk", "value_forecast"}
        # The 8 customers whose only purchase is 0.00 were dead-lettered (SPEC section 2): 2,349 remain.
        assert sum(counts["churn_risk"].values()) == len(records) == 2349
        sample = next(r for r in records.values() if r.get("p_alive"))
        assert 0 < float(sample["p_alive"]) <= 1 and sample["predicted_clv"].count(".") == 1
    finally:
        worker.stop()
