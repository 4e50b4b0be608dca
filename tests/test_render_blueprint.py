"""render.yaml is checked like code: every command it runs exists and accepts its options.

The incident began with a Blueprint naming the wrong requirements file; these tests make any such
slip (a renamed command, a removed option, a missing file, a secret pasted into the file) fail CI.
"""

from __future__ import annotations

import platform
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import get_commands, load_command_class
from django.urls import resolve

ROOT = Path(__file__).resolve().parent.parent
BLUEPRINT_PATH = ROOT / "render.yaml"
COMMAND_FIELDS = ("buildCommand", "preDeployCommand", "startCommand")


def blueprint() -> dict[str, Any]:
    loaded = yaml.safe_load(BLUEPRINT_PATH.read_text())
    assert isinstance(loaded, dict)
    return loaded


def services() -> list[dict[str, Any]]:
    return list(blueprint()["services"])


def web_service() -> dict[str, Any]:
    (web,) = [service for service in services() if service["type"] == "web"]
    return web


def free_plan_start_command() -> str:
    """The commented alternative startCommand the README's free-plan variant switches to."""
    match = re.search(r"^\s*#\s*startCommand:\s*(.+)$", BLUEPRINT_PATH.read_text(), re.MULTILINE)
    assert match, "render.yaml lost its commented free-plan startCommand"
    return match.group(1).strip()


def all_command_lines() -> Iterator[tuple[str, str]]:
    for service in services():
        for field in COMMAND_FIELDS:
            if field in service:
                yield f"{service['name']}.{field}", service[field]
    yield "free-plan startCommand", free_plan_start_command()


def steps(command_line: str) -> list[list[str]]:
    return [shlex.split(step) for step in command_line.split("&&")]


def manage_py_steps() -> Iterator[tuple[str, list[str]]]:
    for where, line in all_command_lines():
        for argv in steps(line):
            if argv[:2] == ["python", "manage.py"]:
                yield where, argv[2:]


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


def test_blueprint__installs_the_pinned_requirements_file() -> None:
    for service in services():
        argv = steps(service["buildCommand"])[0]
        assert argv[:3] == ["pip", "install", "-r"], service["name"]
        requirements = ROOT / argv[3]
        assert requirements.name == "requirements_render.txt"
        assert requirements.is_file()
        for line in requirements.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.\-+]*", line), f"unpinned: {line}"


def test_blueprint__web_service_gunicorn_serves_the_wsgi_app_on_port() -> None:
    for line in (web_service()["startCommand"], free_plan_start_command()):
        gunicorn = next(argv for argv in steps(line) if argv[0] == "gunicorn")
        assert gunicorn[1] == "kidoo_preschool.wsgi:application"
        assert "0.0.0.0:$PORT" in gunicorn
        module, _, attribute = gunicorn[1].partition(":")
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
        assert attribute == "application"


def test_blueprint__start_restores_an_emptied_database_before_serving() -> None:
    for line in (web_service()["startCommand"], free_plan_start_command()):
        argv_steps = steps(line)
        restore_at = next(i for i, a in enumerate(argv_steps) if a[:3] == ["python", "manage.py", "restore"])
        gunicorn_at = next(i for i, a in enumerate(argv_steps) if a[0] == "gunicorn")
        assert restore_at < gunicorn_at
        assert {"--if-empty", "--latest", "--no-input"} <= set(argv_steps[restore_at])


def test_blueprint__backup_before_migrate_on_every_deploy() -> None:
    for line in (web_service()["preDeployCommand"], free_plan_start_command()):
        names = [argv[2] for argv in steps(line) if argv[:2] == ["python", "manage.py"]]
        assert names.index("backup") < names.index("migrate")


def test_blueprint__health_check_path_is_served_by_the_project() -> None:
    path = web_service()["healthCheckPath"]
    assert resolve(path).url_name == "healthz"


def test_blueprint__python_version_is_the_one_tested_here() -> None:
    for service in services():
        versions = [var["value"] for var in service["envVars"] if var["key"] == "PYTHON_VERSION"]
        assert versions == [platform.python_version()], service["name"]


def test_blueprint__every_required_variable_is_provided() -> None:
    databases = {database["name"] for database in blueprint()["databases"]}
    for service in services():
        provided = {var["key"]: var for var in service["envVars"]}
        # settings.py refuses to start in production (RENDER is set by Render) without SECRET_KEY.
        assert provided["SECRET_KEY"].get("generateValue") is True, service["name"]
        database = provided["DATABASE_URL"]["fromDatabase"]
        assert database["name"] in databases
        assert database["property"] == "connectionString"
        # Backups are useless on an instance's disk: they must reach Cloudinary.
        assert provided["CLOUDINARY_URL"].get("sync") is False


SECRET_SHAPES = [
    re.compile(r"cloudinary://[^\s@]+@"),
    re.compile(r"postgres(?:ql)?://[^\s:@/]+:[^\s@]+@"),
    re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]+"),
    re.compile(r"\bage1[0-9a-z]{58}\b"),
]
SECRET_NAMES = re.compile(r"SECRET|TOKEN|PASSWORD|PASSPHRASE|IDENTITY|RECIPIENT|CLOUDINARY|KEY")


def test_blueprint__commits_no_secret() -> None:
    text = BLUEPRINT_PATH.read_text()
    for shape in SECRET_SHAPES:
        assert not shape.search(text), shape.pattern
    for service in services():
        for var in service["envVars"]:
            if SECRET_NAMES.search(var["key"]):
                assert "value" not in var, f"{service['name']}: {var['key']} has a committed value"


def test_blueprint__cron_runs_daily_backup_with_prune_and_size_sample() -> None:
    (cron,) = [service for service in services() if service["type"] == "cron"]
    minute, hour, day, month, weekday = cron["schedule"].split()
    assert (day, month, weekday) == ("*", "*", "*")
    assert minute.isdigit()
    assert hour.isdigit()
    names = [argv for argv in steps(cron["startCommand"]) if argv[:2] == ["python", "manage.py"]]
    assert any(argv[2] == "backup" and "--prune" in argv for argv in names)
    assert any(argv[2] == "db_size" and "--record" in argv for argv in names)


def test_blueprint__database_is_private_and_pinned() -> None:
    (database,) = blueprint()["databases"]
    assert database["ipAllowList"] == []
    assert str(database["postgresMajorVersion"]).isdigit()
