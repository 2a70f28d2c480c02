"""The Kubernetes manifests of deploy/kubernetes: valid against the Kubernetes schemas (kubernetes-validate, offline,
strict), and saying what a multi-host deployment needs: one server per node on the node's network, the capabilities
and devices of the emulators, configuration from the ConfigMap, credentials from the Secret, a readiness probe on
GET /v1/version and a data volume per node."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from gns3core.testing import require

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"  # the oldest release the manifests are checked against; the newest is checked too

TOOLS = "kubernetes-validate and PyYAML are not installed (scripts/python-packages.sh --with-test-tools)"

try:
    import kubernetes_validate
    import yaml
except ImportError:  # pragma: no cover - scripts/python-packages.sh --with-test-tools installs both
    kubernetes_validate = yaml = None


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    require(kubernetes_validate is not None, TOOLS)
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in documents(path):
            found[doc["kind"]] = doc
    return found


def merge(base: Any, patch: Any) -> Any:
    """A strategic-merge-like patch: dicts merge, lists of named items merge by name, other values replace."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and all(isinstance(i, dict) and "name" in i
                                                                   for i in base + patch):
        merged_list = [copy.deepcopy(item) for item in base]
        for item in patch:
            same = next((i for i, old in enumerate(merged_list) if old["name"] == item["name"]), None)
            if same is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[same] = merge(merged_list[same], item)
        return merged_list
    return copy.deepcopy(patch)


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, "latest"])
def test_every_manifest_validates(manifests: dict[str, dict[str, Any]], version: str) -> None:
    target = kubernetes_validate.latest_version() if version == "latest" else version
    assert set(manifests) == {"Namespace", "ConfigMap", "Secret", "DaemonSet", "Service"}
    for manifest in manifests.values():
        kubernetes_validate.validate(manifest, target, strict=True)  # raises ValidationError with the reason


def test_kustomization_lists_the_manifests_but_never_the_secret() -> None:
    require(yaml is not None, TOOLS)
    kustomization = documents(DEPLOY / "kustomization.yaml")[0]
    assert sorted(kustomization["resources"]) == ["configmap.yaml", "daemonset.yaml", "namespace.yaml",
                                                  "service.yaml"]
    for name in kustomization["resources"]:
        assert (DEPLOY / name).is_file()


def test_kvm_variant_validates(manifests: dict[str, dict[str, Any]]) -> None:
    kustomization = documents(DEPLOY / "kvm" / "kustomization.yaml")[0]
    assert kustomization["resources"] == [".."]
    patched = manifests["DaemonSet"]
    for patch in kustomization["patches"]:
        patched = merge(patched, documents(DEPLOY / "kvm" / patch["path"])[0])
    kubernetes_validate.validate(patched, KUBERNETES_VERSION, strict=True)
    container = patched["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["devices.kubevirt.io/kvm"] == "1"
    assert {"name": "GNS3_ENABLE_KVM", "value": "true"} in container["env"]


def test_daemonset_runs_one_reachable_server_per_node(manifests: dict[str, dict[str, Any]]) -> None:
    daemonset, configmap, secret = manifests["DaemonSet"], manifests["ConfigMap"], manifests["Secret"]
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    (container,) = pod["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert env["GNS3_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    for variable, key in (("GNS3_USER", "user"), ("GNS3_PASSWORD", "password")):
        assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": key}
    assert set(secret["stringData"]) == {"user", "password"} and secret["stringData"]["password"] == ""
    security = container["securityContext"]
    assert security["privileged"] is False and {"NET_ADMIN", "NET_RAW"} <= set(security["capabilities"]["add"])
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert volumes["tun"]["hostPath"] == {"path": "/dev/net/tun", "type": "CharDevice"}
    assert mounts["tun"] == "/dev/net/tun"
    assert volumes["data"]["hostPath"]["type"] == "DirectoryOrCreate" and mounts["data"] == "/var/lib/gns3"
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"] and mounts["config"] == "/etc/gns3"
    assert "gns3_server.conf" in configmap["data"] and "[Server]" in configmap["data"]["gns3_server.conf"]
    probe = "\n".join(container["readinessProbe"]["exec"]["command"])
    assert "/v1/version" in probe and "GNS3_PASSWORD" in probe and "Authorization" in probe
    port = int(env["GNS3_PORT"]["value"])
    assert container["ports"][0]["containerPort"] == port == container["livenessProbe"]["tcpSocket"]["port"]
    service = manifests["Service"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == daemonset["spec"]["selector"]["matchLabels"]
    namespace = manifests["Namespace"]["metadata"]["name"]
    assert {m["metadata"]["namespace"] for k, m in manifests.items() if k != "Namespace"} == {namespace}
