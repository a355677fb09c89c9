"""docker-compose.yml and the Dockerfile: valid against the Compose Specification schema, and consistent with
the CLI (commands, options, environment variables, defaults), the local stack scripts and the monitoring
configs. No Docker engine is needed."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess

import click
import jsonschema
import pytest
import yaml

from tests.ops.helpers import REPO, VENDORED_SCHEMAS

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
STACK_SH = REPO / "deploy" / "local" / "stack.sh"
POM = REPO / "deploy" / "local" / "pom.xml"
PROMETHEUS_YML = REPO / "deploy" / "prometheus" / "prometheus.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def resolve_command(args: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The click command that `segmenter ARGS` runs, its remaining arguments, and its command path."""
    from streams.cli import cli

    command: click.Command = cli
    path = ["segmenter"]
    ctx = click.Context(cli, info_name="segmenter")
    while isinstance(command, click.Group):
        assert args, f"{' '.join(path)} needs a subcommand"
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"{' '.join(path)} has no command {args[0]!r}"
        path.append(args[0])
        command, args = sub, args[1:]
        ctx = click.Context(command, info_name=args[0] if args else path[-1], parent=ctx)
    return command, args, path


def envvars_of(command: click.Command) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        envvar = getattr(param, "envvar", None)
        if isinstance(envvar, str):
            names.add(envvar)
        elif envvar:
            names.update(envvar)
    return names


def shell_default(variable: str) -> str:
    """The default of `VAR=${VAR:-default}` in deploy/local/stack.sh."""
    match = re.search(rf"^{variable}=\$\{{{variable}:-([^}}]*)\}}", STACK_SH.read_text(), re.M)
    assert match, f"{variable} default not found in {STACK_SH}"
    return match.group(1)


# --- schema ------------------------------------------------------------------------------------------------


def test_compose_file_matches_compose_spec(compose):
    schema = json.loads((VENDORED_SCHEMAS / "compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_compose_spec_schema_rejects_mistakes(compose):
    """The vendored schema really checks services (a guard against an empty or permissive schema file)."""
    schema = json.loads((VENDORED_SCHEMAS / "compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["depends_on"]["redis"]["condition"] = "service_ready"
    broken["services"]["kafka"]["helthcheck"] = {}
    assert len(list(validator.iter_errors(broken))) >= 2


def compose_cli() -> list[str] | None:
    """A Compose implementation that can run `config` without an engine, if one is installed."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_config_with_compose_cli():
    """In addition to the schema: the Compose tool itself loads the file (`config` needs no engine).

    .ci/run installs the Debian package `docker-compose` for this; the docker CLI of this machine has no
    compose plugin.
    """
    command = compose_cli()
    if command is None:
        pytest.skip("no Compose CLI (`docker compose` / `docker-compose`): apt-get install docker-compose")
    result = subprocess.run([*command, "-f", str(COMPOSE), "--profile", "demo", "config", "--services"],
                            capture_output=True, text=True, timeout=120, check=False, cwd=REPO)
    assert result.returncode == 0, result.stderr
    expected = {"kafka", "redis", "topics-init", "worker", "simulator", "prometheus", "grafana", "ui"}
    assert set(result.stdout.split()) == expected


# --- services ----------------------------------------------------------------------------------------------


def test_kafka_service(services):
    kafka = services["kafka"]
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text()).group(1)
    assert kafka["image"] == f"apache/kafka:{version}", "same Kafka as deploy/local"
    env = env_of(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_NODE_ID"] == "1"
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    internal_port = shell_default("KAFKA_PORT")
    assert listeners["PLAINTEXT"] == f":{internal_port}"
    assert listeners["CONTROLLER"] == f":{shell_default('KAFKA_CONTROLLER_PORT')}"
    assert advertised["PLAINTEXT"] == f"kafka:{internal_port}"
    external_port = listeners["EXTERNAL"].lstrip(":")
    assert advertised["EXTERNAL"] == f"localhost:{external_port}"
    assert f"127.0.0.1:{external_port}:{external_port}" in kafka["ports"]
    assert external_port != internal_port, "host port must not clash with deploy/local/stack.sh"
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols) == set(listeners)
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == shell_default("KAFKA_AUTO_CREATE_TOPICS")
    for key, value in env.items():
        if key.endswith("REPLICATION_FACTOR") or key.endswith("MIN_ISR"):
            assert value == "1", key
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])


def test_redis_service(services):
    redis = services["redis"]
    assert redis["image"].split(":")[0] == "redis" and redis["image"].split(":")[1].startswith("7")
    port = shell_default("REDIS_PORT")
    assert f"127.0.0.1:{port}:{port}" in redis["ports"]
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"] or "redis-cli ping" in " ".join(
        redis["healthcheck"]["test"])


def test_segmenter_services_use_stack_addresses_and_default_topics(services):
    from streams.topic_names import TopicNames

    defaults = TopicNames()
    for name in ("topics-init", "worker", "simulator"):
        env = env_of(services[name])
        assert env["SEGMENTER_BROKER"] == f"kafka:{shell_default('KAFKA_PORT')}", name
        for field_name, topic in defaults.items():
            assert env[TopicNames.env_var(field_name)] == topic, f"{name}: {field_name}"
        assert TopicNames.from_env(env) == defaults
    redis_url = env_of(services["worker"])["SEGMENTER_REDIS_URL"]
    assert redis_url == f"redis://redis:{shell_default('REDIS_PORT')}/0"


@pytest.mark.parametrize("service", ["topics-init", "worker", "simulator"])
def test_commands_parse_with_the_cli(services, service, monkeypatch):
    """Each container's command is a real `segmenter` command, and every SEGMENTER_* variable it gets is
    one that command reads."""
    spec = services[service]
    args = spec["command"] if isinstance(spec["command"], list) else shlex.split(spec["command"])
    command, rest, path = resolve_command(list(args))
    env = env_of(spec)
    known = envvars_of(command)
    unknown = {key for key in env if key.startswith("SEGMENTER_")} - known
    assert unknown == set(), f"{' '.join(path)} does not read {sorted(unknown)}"
    for key in [k for k in list(os.environ) if k.startswith("SEGMENTER_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    command.make_context(path[-1], list(rest))  # raises on an unknown option or a bad value


def test_topics_init_and_worker_wiring(services):
    topics_init = services["topics-init"]
    assert topics_init["command"][:2] == ["topics", "create"]
    assert topics_init["command"][topics_init["command"].index("--partitions") + 1] == "8"
    assert topics_init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert topics_init.get("restart", "no") == "no"

    worker = services["worker"]
    assert worker["build"] == "." and worker["command"] == ["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["depends_on"]["topics-init"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    env = env_of(worker)
    assert env["SEGMENTER_STORE"] == "memory"
    assert env["SEGMENTER_CLOCK"] in {"wall", "event"}
    assert "ports" not in worker, "replicas cannot share a host port"

    simulator = services["simulator"]
    assert simulator["profiles"] == ["demo"]
    assert simulator["command"] == ["simulate", "--customers", "5000", "--rate", "200", "--follow"]


def test_worker_port_everywhere(services):
    from streams.settings import WorkerSettings

    port = WorkerSettings().web_port
    assert env_of(services["worker"])["SEGMENTER_WEB_PORT"] == str(port)
    assert str(port) in [str(p) for p in services["worker"].get("expose", [])]
    assert f"EXPOSE {port}" in DOCKERFILE.read_text()
    prometheus = yaml.safe_load(PROMETHEUS_YML.read_text())
    ports = [sd["port"] for job in prometheus["scrape_configs"] for sd in job.get("dns_sd_configs", [])]
    assert ports == [port]


def test_monitoring_services(services):
    prometheus = services["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus")
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    grafana = services["grafana"]
    assert grafana["image"].startswith("grafana/grafana")
    env = env_of(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert "127.0.0.1:3000:3000" in grafana["ports"]


def test_bind_mounts_exist(services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source} missing"


# --- Dockerfile --------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_runtime_stage():
    instructions = dockerfile_instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms)
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    runtime = instructions[last_from:]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert ("ENTRYPOINT", '["segmenter"]') in runtime
    assert ("CMD", '["worker"]') in runtime
    assert ("EXPOSE", "6066") in runtime
    (healthcheck,) = [rest for keyword, rest in runtime if keyword == "HEALTHCHECK"]
    exec_form = json.loads(healthcheck[healthcheck.index("CMD") + 3:].strip())
    assert exec_form[:2] == ["python", "-c"] and "/healthz" in exec_form[2] and "urllib" in exec_form[2]
    compile(exec_form[2], "HEALTHCHECK", "exec")


def test_dockerfile_copies_the_project_and_dockerignore_keeps_it():
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["segmenter"]
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    sources = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            sources.extend(rest.split()[:-1])
    assert {"pyproject.toml", "README.md", "segmenter", "streams", "state"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: missing"
        assert source not in ignored, f"COPY {source} but .dockerignore excludes it"
    assert {".git", ".venv", "tests"} <= ignored


def test_worker_transactions_and_identity(services):
    """exactly_once workers: no shared instance id between replicas, time to finish a batch on SIGTERM."""
    from streams.kafka_clients import TRANSACTION_TIMEOUT_MS

    worker = services["worker"]
    env = env_of(worker)
    assert env["SEGMENTER_PROCESSING_GUARANTEE"] == "exactly_once"
    assert "SEGMENTER_INSTANCE_ID" not in env, "replicas would share one group.instance.id / transactional.id"
    grace = re.fullmatch(r"(\d+)s", worker["stop_grace_period"])
    assert grace and int(grace.group(1)) >= 2 * TRANSACTION_TIMEOUT_MS / 1000
    kafka = env_of(services["kafka"])
    # Transactions need the transaction state log; on one broker its replication factor and ISR must be 1.
    assert kafka["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert kafka["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"


def test_no_faust_left_in_container_files():
    for path in (COMPOSE, DOCKERFILE, DOCKERIGNORE):
        assert "faust" not in path.read_text().lower(), path.name
