"""deploy/: every file parses and validates against its platform's own schema, and says what
the code does — the commands it runs, the ops endpoints it probes, the grace period a clean
stop needs, and exactly the IAM and KMS actions the code calls."""

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import botocore.session
import kubernetes_validate
import pytest
import yaml
from botocore import xform_name
from botocore.validate import ParamValidator
from cfnlint.api import lint_all

from voisobot import cli, config, sqs
from voisobot.runtime import STOP_GRACE_SECONDS

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
AWS = DEPLOY / "aws"
UNIT = DEPLOY / "systemd" / "voisobot.service"
KUBERNETES_VERSION = "1.30"
OPS_PORT = config.OpsConfig().port  # the default [ops] port: /healthz, /readyz, /metrics
CONFIG_ERROR = 2  # the exit code of a configuration error (voisobot/cli.py)
# send-sample sends as Voiso does, with the sender's credentials, never the bot's.
SENDER_OPERATIONS = {"SendMessage"}


# A clean stop waits this long at most for the job runs in hand (voisobot/runtime.py); the
# platform must allow more before a hard kill.
STOP_SECONDS = STOP_GRACE_SECONDS


def kubernetes_documents() -> dict[tuple[str, str], dict]:
    """(kind, name) -> document, for every manifest kustomization.yaml applies."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((KUBERNETES / name).read_text()):
            found[document["kind"], document["metadata"]["name"]] = document
    return found


def deployment() -> dict:
    return kubernetes_documents()["Deployment", "voisobot"]


def container() -> dict:
    (only,) = deployment()["spec"]["template"]["spec"]["containers"]
    return only


def task_container() -> dict:
    (only,) = load_json("ecs-task-definition.json")["containerDefinitions"]
    return only


def load_json(name: str) -> dict:
    return json.loads((AWS / name).read_text())


def unit_settings() -> dict[str, list[str]]:
    """Each key of the unit's [Service] section with all its values, in order."""
    settings: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_every_deploy_file_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    files = [path.relative_to(ROOT).as_posix() for path in DEPLOY.rglob("*") if path.is_file()]
    assert len(files) >= 15
    assert [name for name in files if f"`{name}`" not in readme] == []


# --- the commands: real invocations of the console script -------------------------------------

def commands() -> dict[str, list[str]]:
    (exec_start,) = unit_settings()["ExecStart"]
    return {"systemd": shlex.split(exec_start), "kubernetes": container()["command"],
            "ecs": task_container()["command"]}


@pytest.mark.parametrize("where", ["systemd", "kubernetes", "ecs"])
def test_each_deployment_runs_the_worker_with_its_config_file(where):
    argv = commands()[where]
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert Path(argv[0]).name in script and script[Path(argv[0]).name] == "voisobot.cli:main"
    args = cli.parse_args(argv[1:])
    assert (args.command, args.config) == ("run", Path("/etc/voisobot/config.toml"))


@pytest.mark.parametrize(("where", "seconds"), [
    ("systemd", lambda: int(unit_settings()["TimeoutStopSec"][0])),
    ("kubernetes", lambda: deployment()["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"]),
    ("ecs", lambda: task_container()["stopTimeout"]),
])
def test_each_deployment_waits_for_a_clean_stop(where, seconds):
    assert seconds() > STOP_SECONDS


# --- systemd -----------------------------------------------------------------------------------

def test_the_unit_is_hardened_and_keeps_the_store_in_its_state_directory():
    settings = unit_settings()
    assert settings["DynamicUser"] == ["yes"] and settings["StateDirectory"] == ["voisobot"]
    assert "VOISO_STORE__PATH=/var/lib/voisobot/voiso.sqlite3" in settings["Environment"]
    assert settings["Restart"] == ["on-failure"]
    assert settings["RestartPreventExitStatus"] == [str(CONFIG_ERROR)]
    assert settings["EnvironmentFile"] == ["/etc/voisobot/voisobot.env"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert settings[key] == ["yes"], key
    assert settings["ProtectSystem"] == ["strict"] and settings["CapabilityBoundingSet"] == [""]


def test_the_environment_file_example_holds_no_secret():
    lines = (DEPLOY / "systemd" / "voisobot.env.example").read_text().splitlines()
    values = [line.partition("=")[2] for line in lines if line and not line.startswith("#")]
    assert values and all(value == "" for value in values)


def env_file(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_compose_environment_example_is_a_valid_config_and_holds_no_secret():
    """The docker compose env_file: its VOISO_ settings load with no config file at all,
    and every secret is left empty."""
    values = env_file(DEPLOY / "voiso.env.example")
    secrets = {k: v for k, v in values.items() if not k.startswith("VOISO_")}
    assert set(secrets) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SLACK_BOT_TOKEN",
                            "SLACK_APP_TOKEN"} and set(secrets.values()) == {""}
    cfg = config.load(DEPLOY / "no-config.toml", values, file_optional=True)
    assert cfg.sqs.queue_url == values["VOISO_SQS__QUEUE_URL"]
    assert cfg.access.channels == (values["VOISO_SLACK__DEFAULT_CHANNEL"],)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_knows_every_directive_of_the_unit(tmp_path):
    """systemd-analyze verify, with the bot's path swapped for one that exists here (it
    checks that the program is there) and the secrets file made optional."""
    text = UNIT.read_text().replace("ExecStart=/opt/voisobot/bin/voisobot",
                                    f"ExecStart={shutil.which('true')}")
    unit = tmp_path / "voisobot.service"
    unit.write_text(text.replace("EnvironmentFile=/", "EnvironmentFile=-/"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    complaints = [line for line in (result.stdout + result.stderr).splitlines()
                  if "voisobot.service" in line]
    assert result.returncode == 0 and complaints == []


# --- Kubernetes --------------------------------------------------------------------------------

def test_the_manifests_are_valid_kubernetes_objects():
    documents = [*kubernetes_documents().values(),
                 yaml.safe_load((KUBERNETES / "secret.example.yaml").read_text())]
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    assert {kind for kind, _ in kubernetes_documents()} == {
        "ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "Deployment", "Service",
        "NetworkPolicy"}


def test_one_replica_replaced_by_recreate():
    spec = deployment()["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}


def port_number(port) -> int:
    named = {p["name"]: p["containerPort"] for p in container()["ports"]}
    return named.get(port, port)


@pytest.mark.parametrize(("probe", "path"), [("startupProbe", "/healthz"),
                                             ("livenessProbe", "/healthz"),
                                             ("readinessProbe", "/readyz")])
def test_the_probes_ask_the_ops_listener(probe, path):
    http = container()[probe]["httpGet"]
    assert http["path"] == path and port_number(http["port"]) == OPS_PORT
    env = {item["name"]: item.get("value") for item in container()["env"]}
    assert env["VOISO_OPS__HOST"] == "0.0.0.0"  # the kubelet probes the pod's address


def test_the_pod_runs_unprivileged_on_a_read_only_root_with_data_writable():
    pod = deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    context = container()["securityContext"]
    assert context == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                       "capabilities": {"drop": ["ALL"]}}
    mounts = {m["mountPath"]: m["name"] for m in container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    claim = volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"]
    assert kubernetes_documents()["PersistentVolumeClaim", claim]["spec"]["accessModes"] == [
        "ReadWriteOnce"]


def test_the_configmaps_config_is_valid_and_puts_the_store_on_the_volume():
    text = kubernetes_documents()["ConfigMap", "voisobot-config"]["data"]["config.toml"]
    cfg = config.from_dict(tomllib.loads(text), base_dir=Path("/etc/voisobot"))
    assert cfg.store_path.parent == Path("/data")


def test_secrets_come_from_the_secret_only():
    secret = yaml.safe_load((KUBERNETES / "secret.example.yaml").read_text())
    assert container()["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    assert not [item for item in container()["env"] if re.match(r"SLACK_|AWS_", item["name"])]
    assert all("REPLACE-ME" in value for value in secret["stringData"].values())


# --- AWS ---------------------------------------------------------------------------------------

def sqs_operations_called() -> set[str]:
    """The SQS operations the product's code calls (the demo drives its embedded server)."""
    model = botocore.session.get_session().get_service_model("sqs")
    methods = {xform_name(name): name for name in model.operation_names}
    sources = [ROOT / "bot.py", *(ROOT / "handlers").glob("*.py"),
               *(path for path in (ROOT / "voisobot").glob("*.py") if path.name != "demo.py")]
    called = {name for path in sources
              for name in re.findall(r"\.([a-z_]+)\(", path.read_text("utf-8"))}
    return {methods[name] for name in called if name in methods}


def actions(policy: dict, service: str) -> set[str]:
    found = set()
    for statement in policy["Statement"]:
        listed = statement["Action"]
        found |= {listed} if isinstance(listed, str) else set(listed)
    return {action for action in found if action.startswith(f"{service}:")}


def test_the_iam_policies_allow_exactly_the_sqs_calls_of_the_code():
    called = sqs_operations_called()
    assert {"ReceiveMessage", "DeleteMessageBatch", "GetQueueAttributes"} <= called
    assert called <= set(sqs.IAM_ACTIONS), "a call that classify cannot name an action for"
    bot = {sqs.IAM_ACTIONS[op] for op in called - SENDER_OPERATIONS}
    sender = {sqs.IAM_ACTIONS[op] for op in called & SENDER_OPERATIONS}
    assert actions(load_json("bot-policy.json"), "sqs") == bot
    assert actions(load_json("voiso-sender-policy.json"), "sqs") == sender


def statement_for(policy: dict, principal: str) -> dict:
    (found,) = [s for s in policy["Statement"] if s["Principal"]["AWS"].endswith(principal)]
    return found


def test_each_side_gets_its_own_kms_actions_in_its_policy_and_the_key_policy():
    receiver, sender = set(sqs.KMS_RECEIVER_ACTIONS), set(sqs.KMS_SENDER_ACTIONS)
    assert receiver == {"kms:Decrypt"} and sender == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert actions(load_json("bot-policy.json"), "kms") == receiver
    assert actions(load_json("voiso-sender-policy.json"), "kms") == sender
    key_policy = load_json("kms-key-policy.json")
    role = load_json("ecs-task-definition.json")["taskRoleArn"].rsplit(":", 1)[1]
    assert actions({"Statement": [statement_for(key_policy, role)]}, "kms") == receiver
    assert actions({"Statement": [statement_for(key_policy, ":user/voiso-sender")]},
                   "kms") == sender


def test_the_readme_shows_the_same_policies_as_the_files():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", readme, re.S)]
    for name in ("bot-policy.json", "voiso-sender-policy.json"):
        assert load_json(name) in shown, f"README does not show deploy/aws/{name}"


def lint_problems(template: str) -> list[str]:
    """cfn-lint's errors and warnings (its informational notes aside)."""
    return [str(match) for match in lint_all(template) if match.rule.id[0] in "EW"]


def test_the_policies_pass_cfn_lint():
    documents = {"Bot": ("AWS::IAM::ManagedPolicy", "PolicyDocument", "bot-policy.json"),
                 "Voiso": ("AWS::IAM::ManagedPolicy", "PolicyDocument",
                           "voiso-sender-policy.json"),
                 "Key": ("AWS::KMS::Key", "KeyPolicy", "kms-key-policy.json"),
                 "Task": ("AWS::IAM::Role", "AssumeRolePolicyDocument",
                          "ecs-task-role-trust.json")}
    template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": {
        name: {"Type": kind, "Properties": {key: load_json(file)}}
        for name, (kind, key, file) in documents.items()}}
    assert lint_problems(json.dumps(template)) == []
    template["Resources"]["Bot"]["Properties"]["PolicyDocument"]["Statement"][0]["Action"] = [
        "sqs:ReceiveMesage"]  # and a typo is caught
    assert lint_problems(json.dumps(template)) != []


def test_the_alarms_watch_the_dead_letter_queue_and_the_oldest_message():
    text = (AWS / "alarms.yaml").read_text()
    assert lint_problems(text) == []
    alarms = {resource["Properties"]["MetricName"]: resource["Properties"]
              for resource in yaml.safe_load(text)["Resources"].values()}
    assert set(alarms) == {"ApproximateAgeOfOldestMessage", "ApproximateNumberOfMessagesVisible"}
    assert alarms["ApproximateAgeOfOldestMessage"]["Dimensions"][0]["Value"] == {
        "Ref": "QueueName"}
    assert alarms["ApproximateNumberOfMessagesVisible"]["Dimensions"][0]["Value"] == {
        "Ref": "DeadLetterQueueName"}


@pytest.mark.parametrize(("name", "operation"), [
    ("ecs-task-definition.json", "RegisterTaskDefinition"),
    ("ecs-service.json", "CreateService"),
])
def test_the_ecs_documents_are_valid_api_input(name, operation):
    model = botocore.session.get_session().get_service_model("ecs")
    report = ParamValidator().validate(load_json(name), model.operation_model(operation)
                                       .input_shape)
    assert not report.has_errors(), report.generate_report()


def test_ecs_runs_one_task_stopped_before_its_replacement():
    service = load_json("ecs-service.json")
    assert service["desiredCount"] == 1
    assert service["deploymentConfiguration"]["maximumPercent"] == 100
    assert service["deploymentConfiguration"]["minimumHealthyPercent"] == 0


def test_the_ecs_task_has_a_role_its_secrets_and_a_health_check_on_the_ops_listener():
    task = load_json("ecs-task-definition.json")
    assert task["taskRoleArn"].startswith("arn:aws:iam::")
    box = task_container()
    assert {item["name"] for item in box["secrets"]} == {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"}
    assert not [item for item in box["environment"] if re.match(r"SLACK_|AWS_", item["name"])]
    check, *argv = box["healthCheck"]["command"]
    args = cli.parse_args(argv[1:])
    assert (check, argv[0], args.command, args.ready) == ("CMD", "voisobot", "health", False)
    assert args.config == Path("/etc/voisobot/config.toml")
    assert box["readonlyRootFilesystem"] is True
    mounts = {m["containerPath"] for m in box["mountPoints"]}
    env = {item["name"]: item["value"] for item in box["environment"]}
    assert Path(env["VOISO_STORE__PATH"]).parent == Path("/data") and "/data" in mounts
