"""``msgflo-generate TARGET GRAPH``: service units, compose files or Kubernetes manifests for a
graph, with the same roles and commands as ``msgflo-procfile``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from msgflo.cli.common import one_line_errors
from msgflo.deploy import compose, kubernetes, systemd, upstart
from msgflo.deploy.autoscale import for_roles, load_config
from msgflo.deploy.roles import DeployError, GeneratedFile, Network, load_network

PROGRAM = "msgflo-generate"
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
TARGETS = ("systemd", "upstart", "compose", "kubernetes")

ONLY_FOR: dict[str, tuple[str, ...]] = {
    "output": ("systemd", "upstart", "kubernetes"),
    "autoscale": ("kubernetes",),
    "image": ("compose", "kubernetes"),
    "file": ("compose",),
    "keep": ("compose",),
    "broker_service": ("compose",),
    "workdir": ("systemd", "upstart"),
    "bindir": ("systemd", "upstart"),
    "user": ("systemd", "upstart"),
    "env_file": ("systemd", "upstart"),
    "monitor": ("systemd",),
    "namespace": ("kubernetes",),
}


def _check_options(target: str, given: dict[str, Any]) -> None:
    for name, targets in ONLY_FOR.items():
        if given.get(name) and target not in targets:
            option = "--" + name.replace("_", "-")
            raise DeployError(f"{option} applies to {' and '.join(targets)} only, not {target}")
    if target in ("compose", "kubernetes") and not given.get("image"):
        raise DeployError(f"{target} needs --image, the image every participant runs from")


def _emit(files: Sequence[GeneratedFile], output: Path | None) -> None:
    if output is None:
        for index, generated in enumerate(files):
            click.echo(("\n" if index else "") + f"# ---- {generated.name} ----")
            click.echo(generated.text, nl=False)
        return
    output.mkdir(parents=True, exist_ok=True)
    for generated in files:
        (output / generated.name).write_text(generated.text, encoding="utf-8")
        click.echo(f"{PROGRAM}: wrote {output / generated.name}", err=True)


def _run(target: str, network: Network, given: dict[str, Any]) -> None:
    broker: str | None = given["broker"]
    workdir = (given["workdir"] or Path.cwd()).absolute()
    if target == "systemd":
        watchdog = None
        if given["monitor"]:
            watchdog = systemd.Watchdog(
                given["monitor"], given["monitor_period"], given["monitor_missed"]
            )
        options = systemd.SystemdOptions(
            workdir=workdir,
            env_file=given["env_file"],
            bindir=given["bindir"],
            user=given["user"],
            broker=broker or "amqp://localhost",
            watchdog=watchdog,
        )
        _emit(systemd.generate(network, options), given["output"])
    elif target == "upstart":
        upstart_options = upstart.UpstartOptions(
            workdir=workdir,
            env_file=given["env_file"],
            bindir=given["bindir"],
            user=given["user"],
            broker=broker or "amqp://localhost",
        )
        _emit(upstart.generate(network, upstart_options), given["output"])
    elif target == "compose":
        compose_options = compose.ComposeOptions(
            image=given["image"],
            broker=broker or f"amqp://{given['broker_service']}",
            broker_service=given["broker_service"],
            keep=tuple(given["keep"]),
            ignore=tuple(given["ignore"]),
        )
        path: Path = given["file"]
        changed = compose.apply(path, network, compose_options)
        click.echo(f"{PROGRAM}: {path}: {'updated' if changed else 'up to date'}", err=True)
    else:
        scalings = []
        if given["autoscale"] is not None:
            entries = load_config(given["autoscale"])
            scalings = for_roles(entries, network.roles, str(given["autoscale"]))
        k8s_options = kubernetes.KubernetesOptions(
            image=given["image"],
            broker=broker or kubernetes.KubernetesOptions.broker,
            namespace=given["namespace"],
        )
        text = kubernetes.dump(kubernetes.generate(network, k8s_options, scalings))
        _emit_stream(f"{network.name}.yaml", text, given["output"])


def _emit_stream(name: str, text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
    else:
        _emit([GeneratedFile(name, text)], output)


path_option = click.Path(path_type=Path)


@click.command(context_settings=CONTEXT)
@click.argument("target", type=click.Choice(TARGETS))
@click.argument("graph", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--library",
    "library_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Library configuration. Default: the first of fbp-config.json, package.json, "
    "pyproject.toml with msgflo settings in the current directory.",
)
@click.option(
    "--components", multiple=True, metavar="DIR", help="Component directory (repeatable)."
)
@click.option("--ignore", multiple=True, metavar="ROLE", help="Leave ROLE out (repeatable).")
@click.option("--name", help="Network name for units and objects. Default: the graph's name.")
@click.option(
    "--broker",
    help="Broker URL written where the target keeps it. Default: amqp://localhost "
    "(systemd, upstart), amqp://BROKER-SERVICE (compose), a placeholder (kubernetes).",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write files here instead of standard output.",
)
@click.option(
    "--autoscale",
    type=click.Path(dir_okay=False, path_type=Path),
    help="guv autoscale config (*.guv.yaml): KEDA ScaledObjects.",
)
@click.option("--image", help="Container image every participant runs from.")
@click.option(
    "--file",
    type=path_option,
    default=None,
    help="Compose file to update in place. Default: docker-compose.yml.",
)
@click.option(
    "--keep",
    multiple=True,
    metavar="SERVICE",
    help="Compose service to leave as it is (repeatable).",
)
@click.option(
    "--broker-service",
    default=None,
    help="Compose service of the broker, always kept. Default: broker.",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory participants run in. Default: the current one.",
)
@click.option(
    "--bindir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the commands are on the target machine. Default: where they are here.",
)
@click.option("--user", help="Run the participants as this user.")
@click.option(
    "--env-file",
    type=path_option,
    help="Environment file with MSGFLO_BROKER. Default: /etc/msgflo/NETWORK.env (systemd), /etc/default/NETWORK (upstart).",
)
@click.option(
    "--monitor",
    metavar="QUEUE",
    help="Add a msgflo-monitor watchdog on QUEUE that restarts the network when it fails.",
)
@click.option(
    "--monitor-period",
    default="1s",
    show_default=True,
    help="Period the watchdog expects messages at.",
)
@click.option(
    "--monitor-missed",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Missed periods before the watchdog fails.",
)
@click.option("--namespace", help="Kubernetes namespace of the objects.")
def main(
    target: str, graph: Path, library_file: Path | None, components: tuple[str, ...], **given: Any
) -> None:
    """Generate what runs GRAPH as a service: systemd units, upstart jobs, a docker-compose
    file (edited in place) or Kubernetes manifests."""
    with one_line_errors(PROGRAM):
        _check_options(target, given)
        network = load_network(graph, library_file, components, given["ignore"], given["name"])
        given["file"] = given["file"] or Path("docker-compose.yml")
        given["broker_service"] = given["broker_service"] or "broker"
        _run(target, network, given)
