"""Kubernetes manifests: a Deployment per role, the coordinator behind a Service, and KEDA.

Participants run from one image (``--image``) with the library's command.  The broker URL is in
a Secret every container reads as its environment.  The coordinator gets the graph and the
library from a ConfigMap; it starts nothing (every role runs in its own Deployment) and wires
the participants as they announce themselves, and its Service exposes the FBP runtime.

A role in the autoscale file gets a KEDA ScaledObject: KEDA's RabbitMQ scaler reads the
role's queue length, and the Horizontal Pod Autoscaler keeps ``ceil(queued / value)``
replicas, so ``value`` is how many queued jobs one worker finishes within the deadline
(guv's proportional model).  HPA scale-up is allowed in one step and scale-down waits for the
``history`` window, the same hysteresis guv used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from msgflo.deploy.autoscale import RoleScaling
from msgflo.deploy.roles import DeployError, Network, dns_label

BROKER_ENV = "MSGFLO_BROKER"
RUNTIME_PORT = 3569
CONFIG_DIR = "/etc/msgflo"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class KubernetesOptions:
    image: str
    broker: str = "amqp://guest:guest@rabbitmq:5672/"
    namespace: str | None = None
    runtime_port: int = RUNTIME_PORT


def _config_files(network: Network) -> dict[str, str]:
    files = {}
    for path in (network.graph_file, network.library_file):
        if path is None:
            continue
        try:
            files[path.name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DeployError(f"{path}: cannot read: {exc}") from exc
    return files


class _Builder:
    def __init__(self, network: Network, options: KubernetesOptions) -> None:
        self.network = network
        self.options = options
        self.app = dns_label(network.name, "network name")

    def name(self, part: str) -> str:
        return dns_label(f"{self.app}-{part}", "object name")

    def metadata(self, name: str, component: str, role: str | None = None) -> dict[str, Any]:
        labels = {"app.kubernetes.io/part-of": self.app, "app.kubernetes.io/component": component}
        if role is not None:
            labels["app.kubernetes.io/name"] = dns_label(role, "role")
        meta: dict[str, Any] = {"name": name, "labels": labels}
        if self.options.namespace:
            meta["namespace"] = self.options.namespace
        return meta

    def deployment(
        self,
        name: str,
        component: str,
        role: str,
        command: Sequence[str],
        replicas: int,
        extra: dict[str, Any] | None = None,
    ) -> Manifest:
        selector = {
            "app.kubernetes.io/part-of": self.app,
            "app.kubernetes.io/name": dns_label(role),
        }
        container: dict[str, Any] = {
            "name": dns_label(role, "role"),
            "image": self.options.image,
            "command": list(command),
            "envFrom": [{"secretRef": {"name": self.name("broker")}}],
            **(extra or {}),
        }
        pod_spec: dict[str, Any] = {"containers": [container]}
        if "volumeMounts" in container:
            pod_spec["volumes"] = [{"name": "graph", "configMap": {"name": self.name("graph")}}]
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": self.metadata(name, component, role),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"labels": self.metadata(name, component, role)["labels"]},
                    "spec": pod_spec,
                },
            },
        }

    def coordinator(self) -> list[Manifest]:
        files = _config_files(self.network)
        command = ["msgflo", "--graph", f"{CONFIG_DIR}/{self.network.graph_file.name}"]
        if self.network.library_file is not None:
            command += ["--library", f"{CONFIG_DIR}/{self.network.library_file.name}"]
        command += ["--host", "0.0.0.0", "--port", str(self.options.runtime_port)]
        for role in [*(role.name for role in self.network.roles), *self.network.ignored]:
            command += ["--ignore", role]
        name = self.name("coordinator")
        deployment = self.deployment(
            name,
            "coordinator",
            "coordinator",
            command,
            1,
            {
                "ports": [{"name": "fbp", "containerPort": self.options.runtime_port}],
                "volumeMounts": [{"name": "graph", "mountPath": CONFIG_DIR, "readOnly": True}],
            },
        )
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(name, "coordinator", "coordinator"),
            "spec": {
                "selector": deployment["spec"]["selector"]["matchLabels"],
                "ports": [{"name": "fbp", "port": self.options.runtime_port, "targetPort": "fbp"}],
            },
        }
        config_map = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self.metadata(self.name("graph"), "coordinator"),
            "data": files,
        }
        return [config_map, deployment, service]

    def scaled_object(self, scaling: RoleScaling) -> Manifest:
        target = self.name(scaling.worker)
        return {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": self.metadata(target, "autoscaling", scaling.worker),
            "spec": {
                "scaleTargetRef": {"name": target},
                "minReplicaCount": scaling.minimum,
                "maxReplicaCount": scaling.maximum,
                "pollingInterval": max(1, round(scaling.pollinterval)),
                "advanced": {
                    "horizontalPodAutoscalerConfig": {
                        "behavior": {
                            "scaleUp": {
                                "stabilizationWindowSeconds": 0,
                                "selectPolicy": "Max",
                                "policies": [
                                    {"type": "Pods", "value": scaling.maximum, "periodSeconds": 15}
                                ],
                            },
                            "scaleDown": {"stabilizationWindowSeconds": round(scaling.history)},
                        }
                    }
                },
                "triggers": [
                    {
                        "type": "rabbitmq",
                        "metadata": {
                            "protocol": "amqp",
                            "queueName": scaling.queue,
                            "mode": "QueueLength",
                            "value": str(scaling.jobs_per_worker),
                            "hostFromEnv": BROKER_ENV,
                        },
                    }
                ],
            },
        }


def generate(
    network: Network, options: KubernetesOptions, scalings: Sequence[RoleScaling] = ()
) -> list[Manifest]:
    """The manifests in the order ``kubectl apply`` wants them (config before its users)."""
    builder = _Builder(network, options)
    by_worker = {scaling.worker: scaling for scaling in scalings}
    for scaling in scalings:
        if scaling.queue is None:
            raise DeployError(f"autoscale entry {scaling.name!r} has no queue")
    labels = [dns_label(role.name, "role") for role in network.roles]
    if len(set(labels)) < len(labels) or "coordinator" in labels:
        raise DeployError(
            "role names must stay distinct as Kubernetes names (lower case, '-' for other "
            "characters) and not be 'coordinator'"
        )
    secret: Manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": builder.metadata(builder.name("broker"), "broker"),
        "type": "Opaque",
        "stringData": {BROKER_ENV: options.broker},
    }
    manifests = [secret, *builder.coordinator()]
    for role in network.roles:
        scaled = by_worker.get(role.name)
        replicas = scaled.minimum if scaled is not None else 1
        manifests.append(
            builder.deployment(
                builder.name(role.name), "participant", role.name, role.argv, replicas
            )
        )
    manifests += [builder.scaled_object(scaling) for scaling in scalings]
    return manifests


def dump(manifests: Sequence[Manifest]) -> str:
    """One YAML stream, as ``kubectl apply -f`` reads it."""
    return yaml.safe_dump_all(manifests, sort_keys=False, default_flow_style=False)
