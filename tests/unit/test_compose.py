"""compose.yaml, the scale-out deployment: read as YAML and checked for what `docker compose up` relies on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
SERVICES = {"falkordb", "qdrant", "clickhouse", "ollama", "api-1", "api-2", "lb"}
REPLICAS = ("api-1", "api-2")
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
_VAR = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*(:?[-?][^}]*)?\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def test_every_service_exists_with_a_healthcheck(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        test = check["test"]
        assert test and (isinstance(test, str) or test[0] in ("CMD", "CMD-SHELL")), name
        assert "image" in service or "build" in service, name


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for service in compose["services"].values():
        for v in service.get("volumes", []):
            source = v.split(":", 1)[0] if isinstance(v, str) else v.get("source", "")
            if source and not source.startswith((".", "/", "~")):
                used.add(source)
    assert used, "no named volumes"
    assert used <= declared, f"used but not declared: {used - declared}"
    assert declared <= used, f"declared but not used: {declared - used}"
    for name in ("falkordb", "qdrant", "clickhouse", "ollama", *REPLICAS):
        assert compose["services"][name].get("volumes"), f"{name} keeps no data in a volume"
    assert "clickhouse-data:/var/lib/clickhouse" in compose["services"]["clickhouse"]["volumes"]


def test_replicas_point_at_the_shared_servers(compose: dict[str, Any]) -> None:
    for name in REPLICAS:
        env = env_of(compose["services"][name])
        assert env["DEVMESH_FALKORDB_URL"] == "redis://falkordb:6379"
        assert env["DEVMESH_QDRANT_URL"] == "http://qdrant:6333"
        assert env["OLLAMA_HOST"] == "http://ollama:11434"
        password = "${DEVMESH_CLICKHOUSE_PASSWORD:?set DEVMESH_CLICKHOUSE_PASSWORD}"  # from the environment
        assert env["DEVMESH_EVENTS_URL"] == f"clickhouse://devmesh:{password}@clickhouse:8123/devmesh"
        assert env["DEVMESH_HOME"].startswith("/")
        assert compose["services"][name].get("ports") is None, f"{name} is reached through the balancer only"
    first, second = (compose["services"][name] for name in REPLICAS)
    assert first == second, "the replicas differ"  # one definition (a YAML anchor), so they cannot drift apart
    assert first["command"][:2] == ["devmesh", "serve"]
    assert "devmesh-data:/data" in first["volumes"]  # one home: API keys, audit log, Slack replay guard
    assert compose["services"]["lb"]["ports"] == ["127.0.0.1:8080:8080"]  # published on the host's loopback only


def test_one_replica_at_a_time_detects_and_namespaces_pass_through(compose: dict[str, Any]) -> None:
    from core.settings import Settings
    from graph.lease import DETECT_LEASE

    for name in REPLICAS:
        env = env_of(compose["services"][name])
        assert env["DEVMESH_DETECT_EVERY"] == "${DEVMESH_DETECT_EVERY:-5m}"
        assert env["DEVMESH_DETECT_LEASE_S"] == "${DEVMESH_DETECT_LEASE_S:-60}"
        assert env["DEVMESH_NAMESPACE"] == "${DEVMESH_NAMESPACE:-}"  # unset by default: names unchanged
        assert env["DEVMESH_RATE_SHARED"] == "true"  # one limit per caller across the replicas
        # compose's defaults are values the settings take
        s = Settings(home=Path("/data"), detect_every="5m", detect_lease_s=60, namespace="", rate_shared=True)
        assert s.namespace is None and s.graph_key == s.graph_name and s.namespaced(DETECT_LEASE) == DETECT_LEASE
        assert s.rate_shared is True
    assert "worker" not in compose["services"]  # the replicas' lease replaces the separate detection worker


def test_the_balancer_config_names_both_replicas(compose: dict[str, Any]) -> None:
    lb = compose["services"]["lb"]
    assert lb["image"].split(":")[0] == "nginx"
    mount = next(v for v in lb["volumes"] if v.endswith(":/etc/nginx/nginx.conf:ro"))
    conf_path = REPO / mount.split(":", 1)[0]
    assert conf_path.is_file(), conf_path
    conf = conf_path.read_text()
    upstream = re.search(r"upstream devmesh_api \{(.*?)\}", conf, re.S)
    assert upstream is not None
    assert re.findall(r"server (\S+?):8080", upstream.group(1)) == list(REPLICAS)
    assert re.search(r"listen 8080;", conf) and "proxy_pass http://devmesh_api;" in conf
    assert "location = /lb-health" in conf and "/lb-health" in " ".join(lb["healthcheck"]["test"])
    assert set(lb["depends_on"]) == set(REPLICAS)
    assert all(spec["condition"] == "service_healthy" for spec in lb["depends_on"].values())


def test_no_literal_secrets(compose: dict[str, Any]) -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                key = str(k)
                if any(word in key.upper() for word in SECRET_WORDS) and not isinstance(v, dict | list):
                    value = "" if v is None else str(v)
                    assert value == "" or _VAR.match(value), f"{path}.{key} holds a literal secret"
                walk(v, f"{path}.{key}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, str) and "=" in v:
                    key, value = v.split("=", 1)
                    if any(word in key.upper() for word in SECRET_WORDS):
                        assert value == "" or _VAR.match(value), f"{path}[{i}] holds a literal secret"
                walk(v, f"{path}[{i}]")

    walk(compose, "compose")
    # and the check itself catches one
    with pytest.raises(AssertionError):
        walk({"environment": {"SLACK_BOT_TOKEN": "xoxb-123"}}, "example")


def test_depends_on_names_existing_services_with_valid_conditions(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        items = deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)
        for dep, spec in items:
            assert dep in services and dep != name, f"{name} depends on {dep}"
            condition = (spec or {}).get("condition", "service_started")
            assert condition in ("service_started", "service_healthy", "service_completed_successfully")
            if condition == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep} to be healthy, which has no check"
    for name in REPLICAS:
        assert set(services[name]["depends_on"]) == {"falkordb", "qdrant", "clickhouse", "ollama"}


def test_clickhouse_is_the_official_image_with_its_database_user_and_a_password_from_outside(
    compose: dict[str, Any],
) -> None:
    from retrieval.events.clickhouse.connection import connect

    ch = compose["services"]["clickhouse"]
    assert ch["image"].split(":")[0] == "clickhouse/clickhouse-server"
    env = env_of(ch)
    assert (env["CLICKHOUSE_DB"], env["CLICKHOUSE_USER"]) == ("devmesh", "devmesh")
    assert env["CLICKHOUSE_PASSWORD"].startswith("${DEVMESH_CLICKHOUSE_PASSWORD:?")  # required, never a default
    assert "8123/ping" in " ".join(ch["healthcheck"]["test"])
    url = env_of(compose["services"]["api-1"])["DEVMESH_EVENTS_URL"].replace(env["CLICKHOUSE_PASSWORD"], "pw")
    assert url == "clickhouse://devmesh:pw@clickhouse:8123/devmesh"
    with pytest.raises(Exception) as unreachable:  # the URL is one the store's factory takes: a server client
        connect(url.replace("@clickhouse:", "@127.0.0.1:").replace(":8123", ":1"))
    assert "127.0.0.1:1/devmesh" in str(unreachable.value)


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip("the docker client has no compose plugin")
    proc = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "-q"],
        env={**os.environ, "DEVMESH_CLICKHOUSE_PASSWORD": "test-only"},
        capture_output=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr.decode()
