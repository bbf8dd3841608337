"""deploy/ against the code it configures: every variable the env files set is read by
something, every unit starts a real command with options the CLI accepts, and nginx sends
traffic to the services' ports with their body limits. nginx and systemd check their own
files when they are installed (``nginx -t``, ``systemd-analyze verify``)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import typer
from mlflow import environment_variables as mlflow_variables
from mlflow.cli import cli as mlflow_cli
from pydantic import AliasChoices

from permeability.cli.main import app
from permeability.config import load_config
from permeability.runtime.serving import DEFAULT_PORTS, Service
from permeability.services.common.body_limit import too_large_body
from permeability.services.inference.batch import MAX_UPLOAD_BYTES
from permeability.services.inference.single import MAX_SAMPLE_BYTES
from permeability.services.training.app import MAX_REQUEST_BYTES
from permeability.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NGINX_CONF = DEPLOY / "nginx" / "permeability.conf"
INSTALL_PREFIX = "/opt/permeability/"
ROLES = ("store", "train", "infer")
#: Which host roles run each unit (each host installs its role's env files; deploy/README.md).
UNIT_ROLES = {
    "permeability-mlflow.service": ("store",),
    "permeability-training.service": ("train",),
    "permeability-scheduler.service": ("train",),
    "permeability-inference@.service": ("infer", "train"),
}
#: Variables libraries read, each from its documentation: deltalake's object_store (S3
#: options from ``AWS_*``), boto3 (MLflow's S3 artifact store), libpq (``PGPASSWORD``).
LIBRARY_VARIABLES = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
    "PGPASSWORD",
}
#: What must never be in a world-readable env file.
SECRETS = {
    "PERMEABILITY_API_TOKEN",
    "PERMEABILITY_INFERENCE_TOKEN",
    "PERMEABILITY_SOURCE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "PGPASSWORD",
}


def read_env(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as systemd's EnvironmentFile reads them (comments and blanks skipped)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", stripped)
        assert match, f"{path.name}:{number}: not KEY=VALUE: {line!r}"
        assert match.group(1) not in values, f"{path.name}:{number}: {match.group(1)} twice"
        values[match.group(1)] = match.group(2)
    return values


def role_env(role: str) -> dict[str, str]:
    """What a host of ``role`` has in its environment: its env file and its secrets file."""
    return {
        **read_env(DEPLOY / "env" / f"{role}.env"),
        **read_env(DEPLOY / "env" / f"{role}.secrets.env"),
    }


def unit_lines(name: str) -> list[tuple[str, str]]:
    """``(key, value)`` of every setting of a unit file, in order (keys may repeat)."""
    pairs = []
    for line in (DEPLOY / "systemd" / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def exec_start(name: str) -> str:
    (command,) = [value for key, value in unit_lines(name) if key == "ExecStart"]
    return command


def expand(command: str, environment: dict[str, str]) -> list[str]:
    """A unit's command line as systemd runs it: ``${VAR}`` from the environment, ``%i`` the
    instance (the inference service's port), ``%t`` the runtime directory."""
    missing = sorted(set(re.findall(r"\$\{(\w+)\}", command)) - environment.keys())
    assert not missing, f"{command!r} uses {missing}, which the env files do not set"
    command = re.sub(r"\$\{(\w+)\}", lambda m: environment[m.group(1)], command)
    return shlex.split(
        command.replace("%i", str(DEFAULT_PORTS[Service.inference])).replace("%t", "/run")
    )


def settings_variables() -> set[str]:
    """The environment variables :class:`Settings` reads."""
    names = set()
    for field_name, field in Settings.model_fields.items():
        if isinstance(field.validation_alias, AliasChoices):
            names |= {str(choice) for choice in field.validation_alias.choices}
        else:
            names.add(f"PERMEABILITY_{field_name.upper()}")
    return names


def mlflow_variables_read() -> set[str]:
    """MLflow's documented variables and the envvars of ``mlflow server``'s options."""
    documented = {name for name in dir(mlflow_variables) if name.startswith("MLFLOW_")}
    server = mlflow_cli.commands["server"]
    options = {str(param.envvar) for param in server.params if isinstance(param.envvar, str)}
    return documented | options


def notification_variables() -> set[str]:
    """The variables the example config's notification channels name."""
    config = load_config(REPO / "config" / "example.yaml")
    names = set()
    for channel in config.notifications.channels:
        for field in ("username_env", "password_env", "url_env", "headers_env"):
            value = getattr(channel, field, None)
            if value:
                names.add(value)
    return names


def unit_variables(role: str) -> set[str]:
    """``${VAR}`` the units of a role's host use on their command lines."""
    used = set()
    for unit, roles in UNIT_ROLES.items():
        if role in roles:
            for _, value in unit_lines(unit):
                used |= set(re.findall(r"\$\{(\w+)\}", value))
    return used


def parse_cli(command: Any, args: list[str]) -> Any:
    """Parse ``args`` as ``command`` would (types, ranges, unknown options), without running it;
    for a group (the ``permeability`` app) the first argument names the subcommand. (Typer
    carries its own copy of click, so the app's classes are not ``click``'s: duck typing.)"""
    if not hasattr(command, "get_command"):
        return command.make_context(command.name or "", list(args))
    parent = typer.Context(command, info_name="permeability")
    subcommand = command.get_command(parent, args[0])
    assert subcommand is not None, f"permeability has no command {args[0]!r}"
    return subcommand.make_context(args[0], list(args[1:]), parent=parent)


# -- env files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_every_permeability_variable_is_a_setting(role: str) -> None:
    unknown = {n for n in role_env(role) if n.startswith("PERMEABILITY_")} - settings_variables()
    assert not unknown, f"{role}: {sorted(unknown)} are not fields of Settings"


@pytest.mark.parametrize("role", ROLES)
def test_every_variable_is_read_by_something(role: str) -> None:
    known = (
        settings_variables()
        | mlflow_variables_read()
        | LIBRARY_VARIABLES
        | notification_variables()
        | unit_variables(role)
    )
    unknown = set(role_env(role)) - known
    assert not unknown, f"{role}: nothing reads {sorted(unknown)}"


@pytest.mark.parametrize("role", ROLES)
def test_secrets_live_only_in_the_secrets_file_as_placeholders(role: str) -> None:
    public = read_env(DEPLOY / "env" / f"{role}.env")
    secret = read_env(DEPLOY / "env" / f"{role}.secrets.env")
    assert not SECRETS & public.keys(), f"{role}.env holds {sorted(SECRETS & public.keys())}"
    not_placeholders = [name for name, value in secret.items() if "replace-" not in value]
    assert not not_placeholders, f"{role}.secrets.env has real-looking values: {not_placeholders}"


def test_every_host_reaches_the_same_stores() -> None:
    train, infer, store = role_env("train"), role_env("infer"), role_env("store")
    assert train["PERMEABILITY_FEATURE_STORE_URI"] == infer["PERMEABILITY_FEATURE_STORE_URI"]
    assert train["MLFLOW_TRACKING_URI"] == infer["MLFLOW_TRACKING_URI"]
    tracking_port = int(train["MLFLOW_TRACKING_URI"].rsplit(":", 1)[1].strip("/"))
    assert tracking_port == int(store["MLFLOW_PORT"])
    assert train["AWS_ENDPOINT_URL"] == infer["AWS_ENDPOINT_URL"] == store["MLFLOW_S3_ENDPOINT_URL"]


# -- systemd units -----------------------------------------------------------------------------


def test_every_unit_has_a_role() -> None:
    assert {p.name for p in (DEPLOY / "systemd").glob("*.service")} == set(UNIT_ROLES)


@pytest.mark.parametrize("unit", [u for u in UNIT_ROLES if u != "permeability-mlflow.service"])
def test_units_run_real_permeability_commands(unit: str) -> None:
    for role in UNIT_ROLES[unit]:
        args = expand(exec_start(unit), role_env(role))
        assert args[0] == f"{INSTALL_PREFIX}.venv/bin/permeability"
        context = parse_cli(typer.main.get_command(app), args[1:])
        if context.info_name == "serve":
            service = Service(context.params["service"])
            port = context.params["port"] or DEFAULT_PORTS[service]
            assert port == DEFAULT_PORTS[service], f"{unit} listens on {port}"


def test_the_mlflow_unit_runs_the_lean_server() -> None:
    unit = "permeability-mlflow.service"
    args = expand(exec_start(unit), role_env("store"))
    assert args[:2] == [f"{INSTALL_PREFIX}.venv/bin/mlflow", "server"]
    context = parse_cli(mlflow_cli.commands["server"], args[2:])
    assert context.params["workers"] == "1"
    assert ("Environment", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false") in unit_lines(unit)
    store = role_env("store")
    assert store["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://")
    assert store["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")


def test_parse_cli_refuses_what_the_cli_refuses() -> None:
    command = typer.main.get_command(app)
    with pytest.raises(Exception, match="greater than or equal to 1"):
        parse_cli(command, ["serve", "inference", "--workers", "0"])
    with pytest.raises(Exception, match="No such option"):
        parse_cli(command, ["serve", "inference", "--no-such-option"])
    with pytest.raises(Exception, match="'nothing' is not one of"):
        parse_cli(command, ["serve", "nothing"])
    with pytest.raises(AssertionError, match="no command"):
        parse_cli(command, ["no-such-command"])
    with pytest.raises(click.UsageError):
        parse_cli(mlflow_cli.commands["server"], ["--no-such-option"])
    assert parse_cli(command, ["serve", "inference", "--workers", "2"]).params["workers"] == 2


@pytest.mark.parametrize(
    "unit", ["permeability-training.service", "permeability-inference@.service"]
)
def test_units_refuse_a_placeholder_token(unit: str, tmp_path: Path) -> None:
    (check,) = [value for key, value in unit_lines(unit) if key == "ExecStartPre"]
    script = shlex.split(check.replace("$$", "$"))
    variable = re.search(r"\$\{(PERMEABILITY_\w+)", check)
    assert variable
    assert script[:2] == ["/bin/sh", "-c"]
    name = variable.group(1)
    for value, status in (("", 1), ("replace-with-the-token", 1), ("0123abcd", 0)):
        done = subprocess.run([*script], env={name: value, "PATH": os.defpath}, check=False)
        assert done.returncode == status, f"{unit} with {name}={value!r}"


# -- nginx -------------------------------------------------------------------------------------


def upstreams() -> dict[str, list[str]]:
    """Each upstream block's ``server`` lines."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    blocks = re.findall(r"upstream\s+(\w+)\s*\{(.*?)\}", text, flags=re.S)
    return {name: re.findall(r"^\s*server\s+([^;]+);", body, flags=re.M) for name, body in blocks}


def server_ports(lines: list[str]) -> set[int]:
    return {int(line.split()[0].rsplit(":", 1)[1]) for line in lines}


def test_nginx_upstreams_use_the_services_ports() -> None:
    blocks = upstreams()
    assert server_ports(blocks["permeability_inference"]) == {DEFAULT_PORTS[Service.inference]}
    assert server_ports(blocks["permeability_monitoring"]) == {DEFAULT_PORTS[Service.inference]}
    assert server_ports(blocks["permeability_training"]) == {DEFAULT_PORTS[Service.training]}
    assert len(blocks["permeability_inference"]) >= 2


def test_nginx_fails_over_without_resending_a_post() -> None:
    for line in upstreams()["permeability_inference"]:
        assert "max_fails=" in line, line
        assert "fail_timeout=" in line, line
    text = NGINX_CONF.read_text(encoding="utf-8")
    (rule,) = re.findall(r"proxy_next_upstream\s+([^;]+);", text)
    assert {"error", "timeout", "http_502", "http_503"} <= set(rule.split())
    assert "non_idempotent" not in rule  # a resent prediction would be logged twice


def location_block(text: str, opening: str) -> str:
    start = text.index(opening)
    return text[start : text.index("}", start)]


@pytest.mark.parametrize(
    ("opening", "limit"),
    [
        ("location = /inference/batch {", MAX_UPLOAD_BYTES),
        ("listen 443 ssl default_server;", MAX_SAMPLE_BYTES),
        ("listen 8000 ssl;", MAX_REQUEST_BYTES),
    ],
)
def test_nginx_body_limits_are_the_services(opening: str, limit: int) -> None:
    text = NGINX_CONF.read_text(encoding="utf-8")
    block = location_block(text, opening)
    (size,) = re.findall(r"client_max_body_size\s+(\d+)m;", block)
    assert int(size) * 1024 * 1024 == limit
    (page,) = re.findall(r"error_page 413 (@\w+);", block)
    (answer,) = re.findall(rf"location {page} \{{.*?return 413 '([^']+)';", text, flags=re.S)
    assert json.loads(answer) == json.loads(too_large_body(limit))


def require_tool(name: str) -> str:
    """The tool's path; a skip when missing, except under ``PERMEABILITY_REQUIRE_SERVICES=1``."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed"
    if os.environ.get("PERMEABILITY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}, and PERMEABILITY_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    """``nginx -t`` on the file as installed, with the hosts as 127.0.0.1 (nginx resolves
    upstream names when it loads), a throw-away certificate and every path in ``tmp_path``."""
    nginx, openssl = require_tool("nginx"), require_tool("openssl")
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=edge", "-keyout", str(tmp_path / "tls.key")),
            *("-out", str(tmp_path / "tls.crt")),
        ],
        check=True,
        capture_output=True,
    )
    site = re.sub(r"(server\s+)[\w.-]+(:\d+)", r"\g<1>127.0.0.1\2", NGINX_CONF.read_text())
    site = site.replace("/etc/nginx/tls/permeability.crt", str(tmp_path / "tls.crt"))
    site = site.replace("/etc/nginx/tls/permeability.key", str(tmp_path / "tls.key"))
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "site.conf").write_text(site)
    temp = {n: tmp_path / n for n in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    (tmp_path / "main.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\n"
        + "".join(f"  {name}_temp_path {path};\n" for name, path in temp.items())
        + f"  include {tmp_path}/site.conf;\n}}\n"
    )
    done = subprocess.run(
        [
            nginx,
            "-t",
            "-q",
            "-c",
            str(tmp_path / "main.conf"),
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    """``systemd-analyze verify`` on each unit, its commands pointed at this checkout's venv."""
    analyze = require_tool("systemd-analyze")
    for unit in UNIT_ROLES:
        text = (DEPLOY / "systemd" / unit).read_text().replace(INSTALL_PREFIX, f"{REPO}/")
        name = unit.replace("@.", f"@{DEFAULT_PORTS[Service.inference]}.")
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", *sorted(str(p) for p in tmp_path.glob("*.service"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not done.stderr.strip(), done.stderr
