"""deploy/grafana: the dashboard only queries metrics the worker exports (or Prometheus built-ins), its
expressions parse, it has the panels operators need, and the provisioning files agree with compose."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.ops.helpers import REPO, promql_metric_names

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "segmenter.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "segmenter.yml"
COMPOSE = REPO / "docker-compose.yml"

# Grafana's own variables, replaced by a value of the same kind before promtool sees an expression.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
}
_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(?P<expr>.*),)?\s*(?P<label>\w+)\s*\)\s*$")


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows keep their panels inside
    return panels


def panel_exprs(dashboard: dict) -> dict[str, str]:
    """`panel title [refId]` -> PromQL expression, for every query of every panel."""
    exprs = {}
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            exprs[f"{panel['title']} [{target['refId']}]"] = target["expr"]
    return exprs


def template_queries(dashboard: dict) -> dict[str, str]:
    queries = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            queries[variable["name"]] = query["query"] if isinstance(query, dict) else query
    return queries


def as_plain_promql(expr: str, variables: list[str]) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    for name in variables:  # dashboard variables are used in regex matchers: any value fits
        expr = expr.replace(f"${{{name}}}", ".*").replace(f"${name}", ".*")
    assert "$" not in expr, f"unknown variable in {expr!r}"
    return expr


def test_metric_name_scanner_catches_unknown_names(known_metrics):
    """The check below would notice a typo."""
    names = promql_metric_names('sum by (topic) (rate(segmenter_event_total{topic=~"$t"}[$__rate_interval]))')
    assert names == {"segmenter_event_total"}
    assert not names <= known_metrics


def test_no_panel_on_removed_metrics(dashboard, known_metrics):
    removed = {"segmenter_tier_changes_resent", "segmenter_missed_records_recovered"}
    assert not {f"{name}_total" for name in removed} & known_metrics
    text = DASHBOARD.read_text()
    assert not [name for name in removed if name in text]


def test_registry_names_include_suffixes(known_metrics):
    assert {"segmenter_events_total", "segmenter_event_lag_seconds_bucket", "segmenter_event_lag_seconds_sum",
            "segmenter_event_lag_seconds_count", "segmenter_customers", "up"} <= known_metrics


def test_every_expression_names_only_exported_metrics(dashboard, known_metrics):
    exprs = panel_exprs(dashboard)
    assert exprs
    for label, expr in exprs.items():
        names = promql_metric_names(expr)
        assert names, f"{label}: no metric in {expr!r}"
        assert names <= known_metrics, f"{label}: unknown metrics {sorted(names - known_metrics)} in {expr!r}"


def test_template_variables_query_exported_metrics(dashboard, known_metrics):
    for name, query in template_queries(dashboard).items():
        match = _LABEL_VALUES.match(query)
        assert match, f"variable {name}: expected label_values(...), got {query!r}"
        if match.group("expr"):
            names = promql_metric_names(match.group("expr"))
            assert names and names <= known_metrics, f"variable {name}: {query!r}"


def test_expressions_parse(dashboard, check_promql):
    variables = list(template_queries(dashboard))
    exprs = {label: as_plain_promql(expr, variables) for label, expr in panel_exprs(dashboard).items()}
    for name, query in template_queries(dashboard).items():
        inner = _LABEL_VALUES.match(query).group("expr")
        if inner:
            exprs[f"variable {name}"] = inner
    check_promql(exprs)


def test_required_panels(dashboard):
    """Throughput, lag, DLQ, transitions, tiers, event lag, Redis latency and errors, watermark."""
    exprs = " ".join(" ".join(e.split()) for e in panel_exprs(dashboard).values())
    required = [
        "sum by (outcome) (rate(segmenter_events_total",
        "segmenter_consumer_lag_messages",
        "sum by (reason) (rate(segmenter_dead_letters_total",
        "sum by (dimension, reason) (rate(segmenter_tier_transitions_total",
        "sum by (dimension, tier) (segmenter_customers",
        "histogram_quantile(0.95, sum by (le) (rate(segmenter_event_lag_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(segmenter_redis_write_seconds_bucket",
        "rate(segmenter_redis_errors_total",
        "segmenter_watermark_timestamp_seconds",
        "sum by (instance) (rate(segmenter_transactions_aborted_total",
        "histogram_quantile(0.95, sum by (le) (increase(segmenter_restore_seconds_bucket",
        "rate(segmenter_restored_records_total",
    ]
    for fragment in required:
        assert fragment in exprs, f"no panel queries {fragment!r}"


def test_operations_doc_names_the_panels_it_refers_to(dashboard):
    """The runbooks send operators to panels by title: those panels exist."""
    operations = (REPO / "docs" / "OPERATIONS.md").read_text()
    titles = {panel["title"] for panel in all_panels(dashboard)}
    for title in ("Throughput by outcome", "Batch processing time", "Redis errors", "Aborted transactions",
                  "Restore time"):
        assert f'"{title}"' in operations and title in titles, title


def test_panels_are_well_formed(dashboard):
    datasource_uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    assert dashboard["uid"] == "segmenter" and dashboard["title"]
    ids = [panel["id"] for panel in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: dict[tuple[int, int], str] = {}
    for panel in all_panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in occupied, f"{panel['title']} overlaps {occupied[(x, y)]}"
                occupied[(x, y)] = panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == datasource_uid, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource_uid, panel["title"]


def test_provisioning_matches_compose():
    compose = yaml.safe_load(COMPOSE.read_text())
    grafana = compose["services"]["grafana"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana["volumes"] if m.startswith("./")}
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    provider = yaml.safe_load(PROVIDERS.read_text())["providers"][0]
    dashboards_dir = provider["options"]["path"]
    assert mounts[dashboards_dir] == "./deploy/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/segmenter.json"
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]
