"""The Blueprints (render.yaml, render.free.yaml) are checked like code: both validate against
Render's published JSON schema, every command they run exists and accepts its options, every file
they name exists, every variable the site needs is provided once, and no secret is committed.

The incident began with a Blueprint naming the wrong requirements file; these tests make any such
slip (a renamed command, a removed option, a missing file, a secret pasted into the file, a key
asked for twice) fail CI. tests/test_render_replay.py then runs the same lines for real.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from django.core.management import get_commands, load_command_class
from django.urls import resolve

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINTS = ("render.yaml", "render.free.yaml")
COMMAND_FIELDS = ("buildCommand", "preDeployCommand", "startCommand")
SCHEMA_DIR = Path(__file__).resolve().parent / "render_blueprint_schema"
SCHEMA_PATH = SCHEMA_DIR / "render.yaml.json"
# The backup settings both services share, in the one environment group.
GROUP_KEYS = {"CLOUDINARY_URL", "BACKUP_AGE_RECIPIENTS", "BACKUP_NAMESPACE", "BACKUP_SIGNING_KEY"}


def blueprint(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def services(name: str) -> list[dict[str, Any]]:
    return list(blueprint(name)["services"])


def web_service(name: str) -> dict[str, Any]:
    (web,) = [service for service in services(name) if service["type"] == "web"]
    return web


def groups(name: str) -> dict[str, list[dict[str, Any]]]:
    return {group["name"]: list(group["envVars"]) for group in blueprint(name).get("envVarGroups", [])}


def variables(name: str, service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The variables ``service`` gets: its own and those of the groups it names (fromGroup)."""
    found: dict[str, dict[str, Any]] = {}
    for entry in service["envVars"]:
        if "fromGroup" in entry:
            for variable in groups(name)[entry["fromGroup"]]:
                found[variable["key"]] = variable
        else:
            found[entry["key"]] = entry
    return found


def all_command_lines() -> Iterator[tuple[str, str]]:
    for name in BLUEPRINTS:
        for service in services(name):
            for field in COMMAND_FIELDS:
                if field in service:
                    yield f"{name}: {service['name']}.{field}", service[field]


def steps(command_line: str) -> list[list[str]]:
    return [shlex.split(step) for step in command_line.split("&&")]


def gunicorn_step(command_line: str) -> list[str]:
    (argv,) = [argv for argv in steps(command_line) if "gunicorn" in argv[:2]]
    return argv


def manage_py_steps() -> Iterator[tuple[str, list[str]]]:
    for where, line in all_command_lines():
        for argv in steps(line):
            if argv[:2] == ["python", "manage.py"]:
                yield where, argv[2:]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded = json.loads(SCHEMA_PATH.read_text())
    assert isinstance(loaded, dict)
    return loaded


def schema_errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


# Render's published schema


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint__validates_against_render_s_published_schema(name: str, schema: dict[str, Any]) -> None:
    assert schema_errors(schema, blueprint(name)) == []


def test_blueprint__the_schema_copy_is_the_one_its_source_note_names(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"] == "https://render.com/schema/render.yaml.json"
    note = (SCHEMA_DIR / "SOURCE.md").read_text()
    digest = hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in note


def test_blueprint__the_schema_refuses_what_render_would(schema: dict[str, Any]) -> None:
    # The validator bites: a misspelt field, a plan Render lacks, a PostgreSQL version it does not
    # offer, a group variable that reads a database.
    misspelt = copy.deepcopy(blueprint("render.yaml"))
    misspelt["services"][0]["startComand"] = misspelt["services"][0].pop("startCommand")
    no_such_plan = copy.deepcopy(blueprint("render.free.yaml"))
    no_such_plan["databases"][0]["plan"] = "hobby"
    old_postgres = copy.deepcopy(blueprint("render.yaml"))
    old_postgres["databases"][0]["postgresMajorVersion"] = "9"
    group_from_database = copy.deepcopy(blueprint("render.yaml"))
    group_from_database["envVarGroups"][0]["envVars"].append(
        {"key": "DATABASE_URL", "fromDatabase": {"name": "kidoo-db", "property": "connectionString"}}
    )
    for document in (misspelt, no_such_plan, old_postgres, group_from_database):
        assert schema_errors(schema, document)


# Commands


@pytest.mark.parametrize(("where", "argv"), list(manage_py_steps()), ids=lambda v: str(v))
def test_blueprint__manage_py_steps_name_real_commands_with_accepted_options(
    where: str, argv: list[str]
) -> None:
    name, *options = argv
    commands = get_commands()
    assert name in commands, f"{where} runs `manage.py {name}`, which is no command of this project"
    parser = load_command_class(commands[name], name).create_parser("manage.py", name)
    try:
        parser.parse_args(options)
    except SystemExit as exit_:
        pytest.fail(f"{where}: `manage.py {shlex.join(argv)}` is refused by its parser ({exit_})")


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint__installs_the_pinned_requirements_file(name: str) -> None:
    for service in services(name):
        argv = steps(service["buildCommand"])[0]
        assert argv[:3] == ["pip", "install", "-r"], service["name"]
        requirements = ROOT / argv[3]
        assert requirements.name == "requirements_render.txt"
        assert requirements.is_file()
        for line in requirements.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.\-+]*", line), f"unpinned: {line}"


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint__web_service_execs_gunicorn_serving_the_wsgi_app_on_port(name: str) -> None:
    line = web_service(name)["startCommand"]
    argv = gunicorn_step(line)
    # `exec`: gunicorn replaces the shell, so Render's SIGTERM reaches gunicorn's master itself.
    assert argv[:2] == ["exec", "gunicorn"], argv
    assert steps(line)[-1] == argv, "gunicorn must be the last step"
    assert argv[2] == "kidoo_preschool.wsgi:application"
    assert "0.0.0.0:$PORT" in argv
    module, _, attribute = argv[2].partition(":")
    assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
    assert attribute == "application"


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint__start_restores_an_emptied_database_before_serving(name: str) -> None:
    argv_steps = steps(web_service(name)["startCommand"])
    restore_at = next(i for i, a in enumerate(argv_steps) if a[:3] == ["python", "manage.py", "restore"])
    gunicorn_at = next(i for i, a in enumerate(argv_steps) if "gunicorn" in a[:2])
    assert restore_at == 0 < gunicorn_at
    assert {"--if-empty", "--latest", "--no-input"} <= set(argv_steps[restore_at])


def test_blueprint__backup_before_migrate_on_every_deploy() -> None:
    for line in (
        web_service("render.yaml")["preDeployCommand"],
        web_service("render.free.yaml")["startCommand"],
    ):
        names = [argv[2] for argv in steps(line) if argv[:2] == ["python", "manage.py"]]
        assert names.index("backup") < names.index("migrate")


def test_free_blueprint__start_restores_backs_up_with_prune_migrates_then_execs_gunicorn() -> None:
    line = web_service("render.free.yaml")["startCommand"]
    commands = [argv[2] if argv[:2] == ["python", "manage.py"] else argv[0] for argv in steps(line)]
    assert commands == ["restore", "backup", "migrate", "exec"]
    backup = steps(line)[1]
    # Every start (every wake of a free instance) backs up: retention keeps that bounded.
    assert "--prune" in backup


def test_free_blueprint__free_plans_no_pre_deploy_no_cron() -> None:
    free = blueprint("render.free.yaml")
    assert [service["type"] for service in free["services"]] == ["web"]
    assert web_service("render.free.yaml")["plan"] == "free"
    assert "preDeployCommand" not in web_service("render.free.yaml")
    assert [database["plan"] for database in free["databases"]] == ["free"]


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint__health_check_path_is_served_by_the_project(name: str) -> None:
    path = web_service(name)["healthCheckPath"]
    assert resolve(path).url_name == "healthz"


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint__python_version_is_the_one_tested_here(name: str) -> None:
    for service in services(name):
        versions = [var["value"] for var in service["envVars"] if var.get("key") == "PYTHON_VERSION"]
        assert versions == [platform.python_version()], service["name"]


# Variables


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint__every_required_variable_is_provided(name: str) -> None:
    databases = {database["name"] for database in blueprint(name)["databases"]}
    for service in services(name):
        provided = variables(name, service)
        # settings.py refuses to start in production (RENDER is set by Render) without SECRET_KEY.
        assert provided["SECRET_KEY"].get("generateValue") is True, service["name"]
        database = provided["DATABASE_URL"]["fromDatabase"]
        assert database["name"] in databases
        assert database["property"] == "connectionString"
        # Backups are useless on an instance's disk: they must reach Cloudinary, encrypted.
        assert provided["CLOUDINARY_URL"].get("sync") is False
        assert provided["BACKUP_AGE_RECIPIENTS"].get("sync") is False


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint__backup_settings_are_one_group_that_every_service_uses(name: str) -> None:
    (group_name, group), *others = groups(name).items()
    assert others == []
    by_key = {variable["key"]: variable for variable in group}
    assert set(by_key) >= GROUP_KEYS
    assert by_key["CLOUDINARY_URL"] == {"key": "CLOUDINARY_URL", "sync": False}
    assert by_key["BACKUP_AGE_RECIPIENTS"] == {"key": "BACKUP_AGE_RECIPIENTS", "sync": False}
    assert by_key["BACKUP_SIGNING_KEY"] == {"key": "BACKUP_SIGNING_KEY", "generateValue": True}
    # An explicit folder name: Render may suffix the database's name, and a recreated free
    # database must find the backups of the one before.
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", str(by_key["BACKUP_NAMESPACE"]["value"]))
    for service in services(name):
        assert {"fromGroup": group_name} in service["envVars"], service["name"]
        # Asked for once: no service defines a group variable again.
        own = {entry["key"] for entry in service["envVars"] if "key" in entry}
        assert not own & set(by_key), service["name"]
    # The private key stays on the web service alone (the cron job only encrypts).
    assert "BACKUP_AGE_IDENTITY" not in by_key
    for service in services(name):
        assert ("BACKUP_AGE_IDENTITY" in variables(name, service)) == (service["type"] == "web")


def test_blueprint__both_blueprints_share_the_group_and_the_database_version() -> None:
    assert groups("render.yaml") == groups("render.free.yaml")
    versions = {str(blueprint(name)["databases"][0]["postgresMajorVersion"]) for name in BLUEPRINTS}
    assert versions == {"16"}


def test_blueprint__settings_read_the_group_s_namespace_and_alert_url() -> None:
    (group,) = groups("render.yaml").values()
    namespace = next(variable["value"] for variable in group if variable["key"] == "BACKUP_NAMESPACE")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "BACKUP_NAMESPACE": str(namespace),
        "BACKUP_ALERT_URL": "https://hc-ping.example/check",
        "ADMINS": "office@kidoo.example",
    }
    script = (
        "import kidoo_preschool.settings as s; "
        "print(s.OPS['BACKUP_NAMESPACE'], s.OPS['ALERT_URL'], s.ADMINS[0][1])"
    )
    printed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert printed == [str(namespace), "https://hc-ping.example/check", "office@kidoo.example"]


SECRET_SHAPES = [
    re.compile(r"cloudinary://[^\s@]+@"),
    re.compile(r"postgres(?:ql)?://[^\s:@/]+:[^\s@]+@"),
    re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]+"),
    re.compile(r"\bage1[0-9a-z]{58}\b"),
    re.compile(r"https://hc-ping\.com/[0-9a-f-]{36}"),
]
SECRET_NAMES = re.compile(r"SECRET|TOKEN|PASSWORD|PASSPHRASE|IDENTITY|RECIPIENT|CLOUDINARY|KEY|ALERT_URL")


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint__commits_no_secret(name: str) -> None:
    text = (ROOT / name).read_text()
    for shape in SECRET_SHAPES:
        assert not shape.search(text), shape.pattern
    entries = [entry for group in groups(name).values() for entry in group]
    entries += [entry for service in services(name) for entry in service["envVars"]]
    for entry in entries:
        if "key" in entry and SECRET_NAMES.search(entry["key"]):
            assert "value" not in entry, f"{name}: {entry['key']} has a committed value"


def test_blueprint__cron_runs_daily_backup_with_prune_and_size_sample() -> None:
    (cron,) = [service for service in services("render.yaml") if service["type"] == "cron"]
    minute, hour, day, month, weekday = cron["schedule"].split()
    assert (day, month, weekday) == ("*", "*", "*")
    assert minute.isdigit()
    assert hour.isdigit()
    names = [argv for argv in steps(cron["startCommand"]) if argv[:2] == ["python", "manage.py"]]
    assert any(argv[2] == "backup" and "--prune" in argv for argv in names)
    assert any(argv[2] == "db_size" and "--record" in argv for argv in names)


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint__database_is_private_and_pinned(name: str) -> None:
    (database,) = blueprint(name)["databases"]
    assert database["ipAllowList"] == []
    assert str(database["postgresMajorVersion"]).isdigit()
