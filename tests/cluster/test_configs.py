"""Cluster configs: the AWS launcher config against Ray's shipped JSON schema, the KubeRay manifest's shape."""

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AWS = ROOT / "cluster" / "aws.yaml"
KUBERAY = ROOT / "cluster" / "kuberay.yaml"


@pytest.fixture(scope="module")
def ray_schema():
    ray = pytest.importorskip("ray")
    path = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def aws():
    return yaml.safe_load(AWS.read_text())


def test_aws_config_validates_against_ray_schema(aws, ray_schema):
    jsonschema.validate(aws, ray_schema)


def test_aws_config_passes_ray_launcher_validation(aws):
    util = pytest.importorskip("ray.autoscaler._private.util")
    util.validate_config(copy.deepcopy(aws))  # schema + head_node_type/min/max checks


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c.pop("provider"),                                      # required key
        lambda c: c.__setitem__("max_workers", "four"),                   # wrong type
        lambda c: c["available_node_types"]["gpu_worker"].pop("node_config"),
        lambda c: c.__setitem__("head_start_commands", ["ray start"]),    # unknown key
        lambda c: c["available_node_types"]["gpu_worker"]["resources"].__setitem__("GPU", -1),
    ],
)
def test_broken_aws_config_is_rejected(aws, ray_schema, breakage):
    broken = copy.deepcopy(aws)
    breakage(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, ray_schema)


def test_aws_config_content(aws):
    types = aws["available_node_types"]
    head = types[aws["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "no trials on the head"
    gpu = types["gpu_worker"]
    assert gpu["node_config"]["InstanceType"].startswith("g5.")
    assert gpu["min_workers"] == 0 and gpu["max_workers"] >= 1
    assert aws["max_workers"] >= gpu["max_workers"]
    head_start = " ".join(aws["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    assert "mlflow server" in head_start and "0.0.0.0" not in head_start
    assert "--backend-store-uri" in head_start and "--artifacts-destination" in head_start
    assert "basic-auth" in AWS.read_text()
    for cmds in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert "RAY_AUTH_MODE=token" in " ".join(aws[cmds]), cmds
    assert any("auth_token" in remote for remote in aws["file_mounts"])
    assert any("pip install" in c and "orch" in c for c in aws["setup_commands"])
    # SSH only from a given CIDR, never from the whole internet
    for perm in aws["provider"]["security_group"]["IpPermissions"]:
        assert perm["FromPort"] == perm["ToPort"] == 22
        assert all(r["CidrIp"] != "0.0.0.0/0" for r in perm["IpRanges"])


@pytest.fixture(scope="module")
def kuberay_docs():
    docs = [d for d in yaml.safe_load_all(KUBERAY.read_text()) if d]
    assert docs, "empty manifest"
    return docs


def _one(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _env(container):
    return {e["name"]: e for e in container.get("env", [])}


def test_kuberay_raycluster(kuberay_docs):
    rc = _one(kuberay_docs, "RayCluster")
    assert rc["apiVersion"] == "ray.io/v1"
    spec = rc["spec"]
    head = spec["headGroupSpec"]
    assert str(head["rayStartParams"]["num-cpus"]) == "0"
    head_c = head["template"]["spec"]["containers"][0]
    assert head_c["image"]
    assert _env(head_c)["RAY_AUTH_MODE"]["value"] == "token"
    assert "MLFLOW_TRACKING_URI" in _env(head_c)
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"

    gpu_groups = [
        g for g in spec["workerGroupSpecs"]
        if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"].get("limits", {})
    ]
    assert gpu_groups, "no worker group with nvidia.com/gpu limits"
    g = gpu_groups[0]
    assert int(g["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert isinstance(g["minReplicas"], int) and isinstance(g["maxReplicas"], int)
    assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"] and g["maxReplicas"] >= 1
    assert spec.get("enableInTreeAutoscaling") is True
    for c in g["template"]["spec"]["containers"]:
        assert _env(c)["RAY_AUTH_MODE"]["value"] == "token", "workers need RAY_AUTH_MODE=token too"
        assert "RAY_AUTH_TOKEN" in _env(c)


def test_kuberay_mlflow_deployment_and_service(kuberay_docs):
    dep = _one(kuberay_docs, "Deployment")
    assert dep["apiVersion"] == "apps/v1"
    c = dep["spec"]["template"]["spec"]["containers"][0]
    cmdline = " ".join(c.get("command", []) + c.get("args", []))
    assert "mlflow server" in cmdline and "--backend-store-uri" in cmdline
    assert "--app-name=basic-auth" in cmdline
    assert any(p["containerPort"] == 5000 for p in c["ports"])
    assert dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()

    svc = _one(kuberay_docs, "Service")
    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert any(p["port"] == 5000 for p in svc["spec"]["ports"])
    for d in kuberay_docs:  # nothing is exposed outside the cluster
        assert d.get("spec", {}).get("type") not in ("LoadBalancer", "NodePort"), d["metadata"]["name"]
