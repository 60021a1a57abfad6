"""msgflo-generate: every target's output checked by the real validators available offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner
from compose_spec import PyCompose

from msgflo.cli.generate import main
from msgflo.deploy.systemd import exec_word

FIXTURES = Path(__file__).parent / "fixtures"
SHOP = FIXTURES / "deploy" / "shop"
KEDA_SCHEMA = json.loads(
    (FIXTURES.parent.parent / "fixtures" / "keda" / "scaledobject.schema.json").read_text()
)
ROLES = ["api", "price", "failed", "store"]


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "shop"
    shutil.copytree(SHOP, root)
    monkeypatch.chdir(root)
    return root


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- systemd ---------------------------------------------------------------------------------


def units(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in directory.iterdir()}


def verify(directory: Path) -> None:
    files = sorted(str(p) for p in directory.iterdir() if p.suffix in (".service", ".target"))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_systemd_units_verify_and_restart_on_failure(shop: Path) -> None:
    code, _, err = run("systemd", "shop.fbp", "--output", "out")
    assert code == 0, err
    files = units(shop / "out")
    assert set(files) == {f"shop-{r}.service" for r in ROLES} | {"shop.target", "shop.env"}
    verify(shop / "out")
    price = files["shop-price.service"]
    assert "Restart=on-failure" in price
    assert "EnvironmentFile=/etc/msgflo/shop.env" in price
    assert "PartOf=shop.target" in price and "WantedBy=shop.target" in price
    assert f"WorkingDirectory={shop}" in price
    assert "participants/Price.py price\n" in price
    assert "MSGFLO_BROKER" not in price  # the URL stays in the environment file
    assert files["shop.env"] == "MSGFLO_BROKER=amqp://localhost\n"
    wants = next(line for line in files["shop.target"].splitlines() if line.startswith("Wants="))
    assert wants.split("=", 1)[1].split() == [f"shop-{r}.service" for r in ROLES]


def test_systemd_watchdog_restarts_the_network_on_failure(shop: Path) -> None:
    bindir = Path(sys.executable).parent  # msgflo-monitor is installed beside Python
    code, _, err = run("systemd", "shop.fbp", "--output", "out", "--monitor", "price.OUT")
    assert code == 0, err
    verify(shop / "out")
    files = units(shop / "out")
    monitor = files["shop-monitor.service"]
    assert (
        f"ExecStart={bindir}/msgflo-monitor --queue price.OUT --expect-periodic 1s --fail-missed 3"
        in monitor
    )
    assert "OnFailure=shop-restart.service" in monitor and "Restart=" not in monitor
    assert "ExecStart=/bin/systemctl restart shop.target" in files["shop-restart.service"]


def test_systemd_to_stdout_names_each_file(shop: Path) -> None:
    code, out, _ = run("systemd", "shop.fbp", "--bindir", "/opt/shop/bin", "--user", "pi")
    assert code == 0
    assert "# ---- shop-api.service ----" in out and "# ---- shop.target ----" in out
    assert "ExecStart=/opt/shop/bin/msgflo-python participants/Api.py api --iips" in out
    assert "User=pi" in out


def test_systemd_exec_words_keep_json_percent_and_dollar() -> None:
    assert exec_word('{"port":"80"}') == '"{\\"port\\":\\"80\\"}"'
    assert exec_word("50%") == "50%%" and exec_word("$HOME") == "$$HOME"
    assert exec_word("a b") == '"a b"'


# -- upstart ---------------------------------------------------------------------------------


def stanzas(text: str) -> dict[str, list[str]]:
    """Upstart stanzas by keyword; a script block is one stanza holding its lines."""
    found: dict[str, list[str]] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "script":
            rest = "\n".join(iter(lambda: next(lines).strip(), "end script"))
        found.setdefault(keyword, []).append(rest)
    return found


def test_upstart_one_job_per_role_with_respawn(shop: Path) -> None:
    code, _, err = run("upstart", "shop.fbp", "--output", "out")
    assert code == 0, err
    files = units(shop / "out")
    assert set(files) == {f"shop-{r}.conf" for r in ROLES} | {"shop.conf", "shop.env"}
    job = stanzas(files["shop-price.conf"])
    assert job["respawn"] == ["", "limit 10 60"]
    assert job["start"] == ["on started shop"] and job["stop"] == ["on stopping shop"]
    assert job["chdir"] == [str(shop)]
    script = job["script"][0].splitlines()
    assert script[1] == "[ -r /etc/default/shop ] && . /etc/default/shop"
    assert script[2].startswith("exec /") and script[2].endswith(
        "/msgflo-python participants/Price.py price"
    )
    network = stanzas(files["shop.conf"])
    assert "exec" not in network and "script" not in network  # an abstract job
    assert network["start"] and network["stop"]


# -- compose ---------------------------------------------------------------------------------


def compose_check(text: str) -> dict[str, Any]:
    PyCompose.from_yaml(text)  # raises on anything the compose specification rejects
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def test_compose_new_file_has_broker_and_a_service_per_participant(shop: Path) -> None:
    code, _, err = run("compose", "shop.fbp", "--image", "shop:1")
    assert code == 0, err
    data = compose_check((shop / "docker-compose.yml").read_text())
    assert list(data["services"]) == ["broker", *ROLES]
    price = data["services"]["price"]
    assert price["image"] == "shop:1"
    assert price["command"] == ["msgflo-python", "participants/Price.py", "price"]
    assert price["environment"] == {"MSGFLO_BROKER": "amqp://broker"}
    assert price["depends_on"] == ["broker"]
    assert data["services"]["api"]["command"][-1] == '{"port":"8080"}'
    assert data["services"]["broker"]["image"].startswith("rabbitmq")
    before = (shop / "docker-compose.yml").stat().st_mtime_ns
    code, _, err = run("compose", "shop.fbp", "--image", "shop:1")
    assert code == 0 and "up to date" in err
    assert (shop / "docker-compose.yml").stat().st_mtime_ns == before


USER_COMPOSE = """\
# Our shop (hand-edited)
name: shop
services:
    db:   # keep me
        image: postgres:16
        x-note: unknown to the generator
    price:
        image: shop:0
        command: python old.py
        environment:
            - LOG=debug
        volumes:
            - ./data:/data
    legacy:
        image: old
    failed:
        image: mine
volumes:
    data: {}
"""


def test_compose_edits_in_place_keeping_what_it_does_not_manage(shop: Path) -> None:
    path = shop / "mycompose.yml"
    path.write_text(USER_COMPOSE)
    args = ["compose", "shop.fbp", "--file", str(path), "--image", "shop:2", "--keep", "db"]
    code, _, err = run(*args, "--ignore", "failed")
    assert code == 0, err
    text = path.read_text()
    data = compose_check(text)
    assert text.startswith("# Our shop (hand-edited)\nname: shop\nservices:\n    db:   # keep me\n")
    assert list(data) == ["name", "services", "volumes"]
    assert list(data["services"]) == ["db", "price", "failed", "api", "store"]  # legacy removed
    assert data["services"]["db"] == {"image": "postgres:16", "x-note": "unknown to the generator"}
    assert data["services"]["failed"] == {"image": "mine"}  # ignored role: left alone
    price = data["services"]["price"]
    assert price["image"] == "shop:2" and price["volumes"] == ["./data:/data"]
    assert price["command"] == ["msgflo-python", "participants/Price.py", "price"]
    assert price["environment"] == ["LOG=debug", "MSGFLO_BROKER=amqp://broker"]
    assert "        volumes:\n            - ./data:/data\n" in text  # the user's indentation
    code, _, _ = run(*args, "--ignore", "failed")
    assert code == 0 and path.read_text() == text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("services: [a, b\n", "mycompose.yml:2:1: not valid YAML"),
        ("- just\n- a list\n", "mycompose.yml: a compose file must be a mapping"),
        ("services: 3\n", "mycompose.yml: 'services' must be a mapping"),
    ],
)
def test_compose_bad_file_is_one_line_and_untouched(shop: Path, content: str, message: str) -> None:
    path = shop / "mycompose.yml"
    path.write_text(content)
    code, _, err = run("compose", "shop.fbp", "--file", str(path), "--image", "x")
    assert code == 1
    assert message in err and err.count("\n") == 1
    assert path.read_text() == content


def test_options_of_other_targets_are_refused(shop: Path) -> None:
    code, _, err = run("systemd", "shop.fbp", "--image", "x")
    assert code == 1 and "--image applies to compose and kubernetes only" in err
    code, _, err = run("compose", "shop.fbp")
    assert code == 1 and "compose needs --image" in err


# -- kubernetes ------------------------------------------------------------------------------


def manifests(*args: str) -> list[dict[str, Any]]:
    code, out, err = run("kubernetes", "shop.fbp", "--image", "shop:1", *args)
    assert code == 0, err
    return list(yaml.safe_load_all(out))


def test_kubernetes_manifests_validate_against_the_schemas(shop: Path) -> None:
    objects = manifests("--autoscale", "autoscale.guv.yaml")
    for manifest in objects:
        if manifest["kind"] == "ScaledObject":
            jsonschema.validate(manifest, KEDA_SCHEMA)
        else:
            kubernetes_validate.validate(manifest, "1.37", strict=True)
    kinds = [(m["kind"], m["metadata"]["name"]) for m in objects]
    assert kinds == [
        ("Secret", "shop-broker"),
        ("ConfigMap", "shop-graph"),
        ("Deployment", "shop-coordinator"),
        ("Service", "shop-coordinator"),
        *[("Deployment", f"shop-{r}") for r in ROLES],
        ("ScaledObject", "shop-price"),
        ("ScaledObject", "shop-store"),
    ]


def test_kubernetes_wiring_of_objects(shop: Path) -> None:
    objects = {
        (m["kind"], m["metadata"]["name"]): m
        for m in manifests("--autoscale", "autoscale.guv.yaml")
    }
    config = objects[("ConfigMap", "shop-graph")]["data"]
    assert config["shop.fbp"] == (shop / "shop.fbp").read_text()
    assert "fbp-config.json" in config
    coordinator = objects[("Deployment", "shop-coordinator")]["spec"]["template"]["spec"][
        "containers"
    ][0]
    command = coordinator["command"]
    assert command[:3] == ["msgflo", "--graph", "/etc/msgflo/shop.fbp"]
    assert [command[i + 1] for i, word in enumerate(command) if word == "--ignore"] == ROLES
    service = objects[("Service", "shop-coordinator")]["spec"]
    assert service["ports"][0]["port"] == 3569
    price = objects[("Deployment", "shop-price")]["spec"]["template"]["spec"]["containers"][0]
    assert price["command"] == ["msgflo-python", "participants/Price.py", "price"]
    assert price["envFrom"] == [{"secretRef": {"name": "shop-broker"}}]
    scaled = objects[("ScaledObject", "shop-price")]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (1, 20)
    trigger = scaled["triggers"][0]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == "price.IN"
    assert trigger["metadata"]["mode"] == "QueueLength"
    # One worker gets through 397 jobs of 50 ms within the ~19.9 s left of the deadline.
    assert trigger["metadata"]["value"] == "397"
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 120


def test_keda_schema_rejects_what_keda_would() -> None:
    broken = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "x"},
        "spec": {
            "scaleTargetRef": {"name": "x"},
            "triggers": [{"type": "rabbitmq", "metadata": {"value": 3}}],
        },
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, KEDA_SCHEMA)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("pricer: {}\n", "pricer: no role 'pricer' in the graph"),
        ("price: {min: 3, max: 2}\n", "price: min 3 > max 2"),
    ],
)
def test_kubernetes_bad_autoscale_file(shop: Path, content: str, message: str) -> None:
    (shop / "bad.guv.yaml").write_text(content)
    code, out, err = run("kubernetes", "shop.fbp", "--image", "x", "--autoscale", "bad.guv.yaml")
    assert code == 1 and out == ""
    assert err.startswith("msgflo-generate: bad.guv.yaml: ") and message in err
    assert err.count("\n") == 1


def test_kubernetes_role_without_inqueue(shop: Path) -> None:
    (shop / "shop.fbp").write_text("'8080' -> PORT api(shop/Api)\n")
    (shop / "a.guv.yaml").write_text("api: {}\n")
    code, _, err = run("kubernetes", "shop.fbp", "--image", "x", "--autoscale", "a.guv.yaml")
    assert code == 1 and "role 'api' has no inqueue fed by the graph" in err
