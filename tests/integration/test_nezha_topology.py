"""The declared topology `devmesh eval make-cases nezha` writes (api/measure/nezha_cases): a
`dependency.csv` row whose target is a host address is a placement (pod -> host), not a call, and the
host is not a service. The Nezha-layout sample is copied from samples/nezha (its licence is there)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from api.measure.nezha_cases import CaseSpec, declared_calls, make_nezha_cases
from core.settings import Settings
from samples import sample_path

DEPENDENCY = (
    "Source,Target,Weight\n"
    "ts-auth-service,ts-verification-code-service,1\n"
    "ts-auth-service,33.33.33.76,1\n"
    "ts-verification-code-service,33.33.33.80,1\n"
    "loadgenerator,33.33.33.79,1\n"
)


def test_host_addresses_in_a_dependency_csv_are_placements_not_calls(tmp_path: Path) -> None:
    (tmp_path / "2022-08-22" / "metric").mkdir(parents=True)
    (tmp_path / "2022-08-22" / "metric" / "dependency.csv").write_text(DEPENDENCY)
    topo = declared_calls(tmp_path)
    assert topo is not None
    assert topo.services == ["loadgenerator", "ts-auth-service", "ts-verification-code-service"]
    assert [(c.caller, c.callee) for c in topo.calls] == [("ts-auth-service", "ts-verification-code-service")]
    assert sorted((p.service, p.host) for p in topo.pods) == [
        ("loadgenerator", "33.33.33.79"),
        ("ts-auth-service", "33.33.33.76"),
        ("ts-verification-code-service", "33.33.33.80"),
    ]


def test_made_bundles_place_pods_on_hosts_and_call_only_services(tmp_path: Path) -> None:
    src = tmp_path / "nezha"
    shutil.copytree(sample_path() / "nezha", src)
    (src / "2023-01-29" / "metric" / "dependency.csv").write_text(DEPENDENCY)
    settings = Settings(home=tmp_path / "unused", embedder="none", qdrant_url=None, ollama_host=None)
    spec = CaseSpec(system="trainticket", id_prefix="tt", modalities=("metrics",))
    out = make_nezha_cases(src, tmp_path / "cases", spec, settings)
    assert out["declared_calls"] == 1
    doc = yaml.safe_load((tmp_path / "cases" / "tt-2023-01-29-0949" / "telemetry" / "topology.yaml").read_text())
    services = {s["name"]: s for s in doc["services"]}
    assert not [name for name in services if name[0].isdigit()]
    callees = {c for s in services.values() for c in s.get("calls", [])}
    assert not [c for c in callees if c[0].isdigit()]
    assert services["ts-auth-service"]["calls"] == ["ts-verification-code-service"]
    auth_pods = services["ts-auth-service"]["pods"]
    assert auth_pods and all(p.get("node") for p in auth_pods)
