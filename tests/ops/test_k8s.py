"""deploy/k8s: every manifest is valid against the Kubernetes JSON schemas (kubernetes-validate, offline),
and the pieces fit: probes, ports, labels and selectors, the config the worker reads, the rules."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.ops.helpers import REPO, load_yaml_documents

K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"  # oldest Kubernetes the manifests are checked against (StatefulSet features used)
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}


def manifests() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in sorted(K8S.glob("*.yaml")) for doc in load_yaml_documents(path)]


def find(kind: str, name: str | None = None) -> dict:
    found = [doc for _, doc in manifests()
             if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def worker_statefulset() -> dict:
    return find("StatefulSet", "segmenter-worker")


@pytest.fixture(scope="module")
def worker_container(worker_statefulset) -> dict:
    (container,) = worker_statefulset["spec"]["template"]["spec"]["containers"]
    return container


def container_env(container: dict) -> dict[str, str]:
    return {item["name"]: item.get("value") for item in container.get("env", [])}


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_matches_kubernetes_schema(path):
    try:
        from kubernetes_validate import utils as kv
    except ImportError:
        pytest.fail("the PyPI package kubernetes-validate is needed (pip install kubernetes-validate)",
                    pytrace=False)
    docs = load_yaml_documents(path)
    assert docs, f"{path} is empty"
    for doc in docs:
        if (doc.get("apiVersion"), doc.get("kind")) in CUSTOM_KINDS:
            continue  # no schema shipped; checked structurally below
        try:
            kv.validate(doc, KUBERNETES_VERSION, strict=True)
        except kv.ValidationError as exc:
            pytest.fail(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {exc.message} "
                        f"at {'/'.join(map(str, exc.absolute_path))}", pytrace=False)


def test_schema_validation_rejects_mistakes(worker_statefulset):
    """kubernetes-validate really checks (a guard against a silently permissive setup)."""
    from kubernetes_validate import utils as kv

    broken = yaml.safe_load(yaml.safe_dump(worker_statefulset))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, KUBERNETES_VERSION, strict=True)


def test_everything_in_one_namespace():
    namespace = find("Namespace")["metadata"]["name"]
    for path, doc in manifests():
        if doc["kind"] in {"Namespace", "Kustomization"}:
            continue
        assert doc["metadata"].get("namespace") == namespace, f"{path.name}: {doc['kind']}"
    assert find("Kustomization")["namespace"] == namespace


def test_kustomization_lists_every_manifest():
    kustomization = find("Kustomization")
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert kustomization["resources"].index("namespace.yaml") == 0


def test_probes_and_ports(worker_container):
    from streams.settings import WorkerSettings

    ports = {port["name"]: port["containerPort"] for port in worker_container["ports"]}
    assert ports["metrics"] == WorkerSettings().web_port
    assert container_env(worker_container)["SEGMENTER_WEB_PORT"] == str(ports["metrics"])
    readiness = worker_container["readinessProbe"]["httpGet"]
    liveness = worker_container["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz" and readiness["port"] in ("metrics", ports["metrics"])
    assert liveness["path"] == "/healthz" and liveness["port"] in ("metrics", ports["metrics"])


def test_rocksdb_state_on_a_volume_per_pod(worker_statefulset, worker_container):
    env = container_env(worker_container)
    assert env["SEGMENTER_STORE"] == "rocksdb"
    (claim,) = worker_statefulset["spec"]["volumeClaimTemplates"]
    mounts = {mount["name"]: mount["mountPath"] for mount in worker_container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == env["SEGMENTER_DATA_DIR"] == "/var/lib/segmenter"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_security_and_resources(worker_statefulset, worker_container):
    pod = worker_statefulset["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    container = worker_container["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= worker_container["resources"]["requests"].keys()
    assert "memory" in worker_container["resources"]["limits"]


def test_config_and_secret_references(worker_container):
    from streams.cli.worker_cmd import worker

    sources = worker_container["envFrom"]
    assert sources[0]["configMapRef"]["name"] == "segmenter-config"
    assert sources[-1]["secretRef"]["name"] == "segmenter-secrets"  # last: its keys win
    config = find("ConfigMap", "segmenter-config")["data"]
    known = {param.envvar for param in worker.params if isinstance(getattr(param, "envvar", None), str)}
    keys = set(config) | set(container_env(worker_container))
    assert keys - known == set(), "variables the worker does not read"


def test_config_uses_default_topic_names():
    from streams.topic_names import TopicNames

    config = find("ConfigMap", "segmenter-config")["data"]
    assert TopicNames.from_env(config) == TopicNames()
    for field_name, _ in TopicNames().items():
        assert TopicNames.env_var(field_name) in config


def test_rules_configmap_is_the_spec_default_and_mounted(worker_statefulset, worker_container):
    rules_text = find("ConfigMap", "segmenter-rules")["data"]["rules.yaml"]
    spec = REPO.parent / "shared" / "SPEC.md"
    if spec.exists():
        pattern = r"built-in default is exactly:\n\n```yaml\n(.*?)```"
        block = re.search(pattern, spec.read_text(), re.S).group(1)
        assert yaml.safe_load(rules_text) == yaml.safe_load(block)
    env = container_env(worker_container)
    mount_dir, _, key = env["SEGMENTER_RULES"].rpartition("/")
    mounts = {mount["mountPath"]: mount["name"] for mount in worker_container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in worker_statefulset["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts[mount_dir]]["configMap"]["name"] == "segmenter-rules"
    assert key == "rules.yaml"


def test_rules_configmap_loads_with_the_project_rules_loader(tmp_path):
    """The worker accepts the ConfigMap's rules, and they are exactly the built-in default (same version)."""
    rules_module = pytest.importorskip("segmenter.rules", reason="segmenter.rules not written yet")
    rules_text = find("ConfigMap", "segmenter-rules")["data"]["rules.yaml"]
    path = tmp_path / "rules.yaml"
    path.write_text(rules_text)
    if hasattr(rules_module, "parse_rules"):
        try:
            rules = rules_module.parse_rules(rules_text, str(path))
        except TypeError:
            rules = rules_module.parse_rules(rules_text)
    elif hasattr(rules_module, "load_rules"):
        rules = rules_module.load_rules(str(path))
    else:
        pytest.skip("segmenter.rules has neither parse_rules nor load_rules yet")
    assert rules is not None
    if hasattr(rules_module, "default_rules"):
        default = rules_module.default_rules()
        for attribute in ("version", "rules_version", "version_hash"):
            if isinstance(getattr(default, attribute, None), str):
                assert getattr(rules, attribute) == getattr(default, attribute)
                break


def test_service_and_servicemonitor_select_the_workers(worker_statefulset):
    pod_labels = worker_statefulset["spec"]["template"]["metadata"]["labels"]
    service = find("Service", "segmenter-worker")
    assert service["spec"]["clusterIP"] == "None"
    assert worker_statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert worker_statefulset["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["name"] == "metrics" and port["targetPort"] == "metrics"

    monitor = find("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"
    # The alerts select job="segmenter": the job label comes from this Service label.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "segmenter"


def test_instance_id_is_the_pod_name(worker_statefulset, worker_container):
    """Static membership and the transactional id need a stable identity per pod: the StatefulSet pod name."""
    (item,) = [e for e in worker_container["env"] if e["name"] == "SEGMENTER_INSTANCE_ID"]
    pod_name = {"fieldRef": {"fieldPath": "metadata.name"}}
    assert item == {"name": "SEGMENTER_INSTANCE_ID", "valueFrom": pod_name}
    assert "SEGMENTER_INSTANCE_ID" not in find("ConfigMap", "segmenter-config")["data"], "one id for all pods"
    assert worker_statefulset["kind"] == "StatefulSet"  # pod names are unique and stable across restarts


def test_processing_guarantee_is_a_valid_choice():
    from streams.cli.worker_cmd import worker

    (option,) = [p for p in worker.params if p.envvar == "SEGMENTER_PROCESSING_GUARANTEE"]
    value = find("ConfigMap", "segmenter-config")["data"]["SEGMENTER_PROCESSING_GUARANTEE"]
    assert value == "exactly_once" == option.default
    assert value in option.type.choices


def test_probes_leave_room_for_start_up_and_shutdown(worker_statefulset, worker_container):
    from streams.kafka_clients import TRANSACTION_TIMEOUT_MS

    pod = worker_statefulset["spec"]["template"]["spec"]
    # SIGTERM finishes the batch in progress: its transaction is bounded by the transaction timeout.
    assert pod["terminationGracePeriodSeconds"] >= 2 * TRANSACTION_TIMEOUT_MS / 1000
    startup = worker_container["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    liveness = worker_container["livenessProbe"]
    assert "initialDelaySeconds" not in liveness, "the startup probe holds liveness back"


def test_disruption_budget_selects_the_workers(worker_statefulset):
    budget = find("PodDisruptionBudget", "segmenter-worker")
    pod_labels = worker_statefulset["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["maxUnavailable"] == 1


def test_no_faust_settings_left():
    for path in sorted(K8S.glob("*.yaml")):
        assert "faust" not in path.read_text().lower(), path.name
