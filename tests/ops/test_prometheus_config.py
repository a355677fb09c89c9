"""deploy/prometheus: the configs and alert rules pass promtool, the rule unit tests pass, every alert is
tested firing and not firing, and the rules only use metrics the worker exports."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.ops.helpers import REPO, promql_metric_names

PROM_DIR = REPO / "deploy" / "prometheus"
ALERTS = PROM_DIR / "alerts.yml"
ALERTS_TEST = PROM_DIR / "alerts_test.yml"
OPERATIONS_MD = REPO / "docs" / "OPERATIONS.md"
REQUIRED_ALERTS = {
    "SegmenterConsumerLagGrowing",
    "SegmenterDeadLettersHigh",
    "SegmenterRedisErrors",
    "SegmenterWatermarkStalled",
    "SegmenterNoWorkerUp",
    "SegmenterTransactionsAborted",
}
# Metrics of the Faust worker that the confluent-kafka worker no longer exports.
REMOVED_METRICS = {"segmenter_tier_changes_resent_total", "segmenter_missed_records_recovered_total"}


def run_promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([promtool, *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus.local.yml"])
def test_promtool_check_config(promtool, config):
    result = run_promtool(promtool, "check", "config", config)
    assert "1 rule files found" in result.stdout + result.stderr


def test_promtool_check_rules(promtool):
    run_promtool(promtool, "check", "rules", ALERTS.name)


def test_promtool_rule_unit_tests(promtool):
    result = run_promtool(promtool, "test", "rules", ALERTS_TEST.name)
    assert "SUCCESS" in result.stdout + result.stderr


def test_required_alerts_exist_with_severity_and_runbook():
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert rules.keys() >= REQUIRED_ALERTS
    operations = OPERATIONS_MD.read_text()
    anchors = {github_anchor(line.lstrip("#")) for line in operations.splitlines() if line.startswith("#")}
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        runbook = rule["annotations"]["runbook"]
        path, _, anchor = runbook.partition("#")
        assert (REPO / path).is_file(), runbook
        assert anchor in anchors, f"{name}: no heading for #{anchor} in {path}"


def test_every_alert_is_tested_firing_and_not_firing():
    tests = yaml.safe_load(ALERTS_TEST.read_text())
    assert tests["rule_files"] == [ALERTS.name]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"


def test_alert_expressions_use_exported_metrics(known_metrics):
    for rule in alert_rules():
        names = promql_metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= known_metrics, f"{rule['alert']} names unknown metrics {names - known_metrics}"


def test_specific_alert_expressions():
    """The alerts watch what the operations issue asked for."""
    exprs = {rule["alert"]: " ".join(rule["expr"].split()) for rule in alert_rules()}
    assert "deriv(segmenter_consumer_lag_messages[10m])" in exprs["SegmenterConsumerLagGrowing"]
    assert "rate(segmenter_dead_letters_total[" in exprs["SegmenterDeadLettersHigh"]
    assert "rate(segmenter_redis_errors_total[" in exprs["SegmenterRedisErrors"]
    assert "> 0" in exprs["SegmenterRedisErrors"]
    assert "changes(segmenter_watermark_timestamp_seconds[30m])" in exprs["SegmenterWatermarkStalled"]
    assert exprs["SegmenterNoWorkerUp"] == 'absent(up{job="segmenter"} == 1)'
    assert "rate(segmenter_transactions_aborted_total[5m])" in exprs["SegmenterTransactionsAborted"]


def test_no_alert_on_removed_metrics(known_metrics):
    assert not REMOVED_METRICS & known_metrics, "streams/metrics.py exports them again: update this test"
    for path in (ALERTS, ALERTS_TEST):
        text = path.read_text()
        for name in REMOVED_METRICS:
            assert name.removesuffix("_total") not in text, f"{path.name} names {name}"


def test_scrape_jobs_match_alerts_and_worker_port():
    """Both configs scrape job "segmenter" (what the alerts select) on the worker's default port 6066."""
    from streams.settings import WorkerSettings

    port = WorkerSettings().web_port
    compose = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    (job,) = [j for j in compose["scrape_configs"] if j["job_name"] == "segmenter"]
    (dns,) = job["dns_sd_configs"]
    assert dns["names"] == ["worker"] and dns["port"] == port
    local = yaml.safe_load((PROM_DIR / "prometheus.local.yml").read_text())
    (job,) = [j for j in local["scrape_configs"] if j["job_name"] == "segmenter"]
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{port}"]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")
