"""A Render life replayed on this machine with real processes, every command taken from the Blueprints.

A Blueprint is proved by running it: its buildCommand in a fresh virtualenv made from
requirements_render.txt alone, its preDeployCommand and startCommand (gunicorn) against a real
PostgreSQL database, its cron startCommand, each through ``bash -c`` with the environment the
Blueprint declares (values, generated secrets, its environment group's variables, the database's
connection string, and what an operator types into the Dashboard for ``sync: false``). Media and
backups go to the Cloudinary emulator; the alert URL (BACKUP_ALERT_URL) is a local HTTP receiver.
The story of render.yaml (issue 8):

1. build, and ``check --deploy`` with the production environment reports nothing;
2. first deploy on a brand-new database: pre-deploy (backup + migrate), start, /healthz answers;
3. visitors post enquiries, an admin uploads images through the admin's forms;
4. a second deploy keeps everything;
5. the database expires (dropped, recreated empty): the next pre-deploy must not bury the good
   backups, the start command restores the newest one that holds data, the API serves every record
   as before and every image URL it returns answers 200;
6. the cron job backs up with pruning and records the size;
7. a deploy whose migration fails is cancelled at pre-deploy: the data and the last good backup are
   intact, and the backup that pre-deploy took holds the data.

A second test replays render.free.yaml through a free database's life (issue 17): fine, then
expired and inaccessible (the running instance's /healthz answers 503, a new start fails clearly
and the alert URL hears /fail), then deleted and recreated empty (the next start restores it).
Another stops each Blueprint's web start command with SIGTERM, as Render does, run by bash and by
sh: gunicorn (exec'd) shuts down gracefully and leaves no worker behind. The build (fresh
virtualenv, buildCommands) is made once for all.

Everything a process prints is echoed (pytest shows it when the test fails); no secret is printed.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import html.parser
import http.client
import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import yaml
from PIL import Image
from pyrage import x25519

from tests.alert_receiver import CHECK_PATH, AlertReceiver
from tests.cloudinary_emulator import CloudinaryEmulator
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
# What Render would give the web service; the app must accept it as its host.
PUBLIC_HOSTNAME = "kidoo-backend.onrender.com"
HEALTH_WAIT_SECONDS = 120.0
# Variables a build or a process on Render inherits from the machine, not from the Blueprint.
INHERITED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


# The Blueprints

PAID, FREE = "render.yaml", "render.free.yaml"


def blueprint(name: str = PAID) -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def service(kind: str, name: str = PAID) -> dict[str, Any]:
    (found,) = [entry for entry in blueprint(name)["services"] if entry["type"] == kind]
    return dict(found)


def generated_value() -> str:
    # What Render generates: "a base64-encoded 256-bit value" (render.com/docs/blueprint-spec).
    return base64.b64encode(secrets.token_bytes(32)).decode()


def variable_value(
    variable: Mapping[str, Any], *, where: str, database_url: str, dashboard: Mapping[str, str]
) -> str:
    key = variable["key"]
    if "value" in variable:
        return str(variable["value"])
    if variable.get("generateValue"):
        return generated_value()
    if "fromDatabase" in variable:
        assert variable["fromDatabase"]["property"] == "connectionString", variable
        return database_url
    if variable.get("sync") is False:
        assert key in dashboard, f"{where} asks the operator for {key}; the replay has no value for it"
        return dashboard[key]
    pytest.fail(f"{where}: envVar {key} has no value source the replay knows")


def group_environments(name: str, dashboard: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each environment group's variables, valued once: a group's generated value (the backup signing
    key) is one value that every service using the group sees, as on Render."""
    return {
        group["name"]: {
            variable["key"]: variable_value(
                variable, where=f"{name} group {group['name']}", database_url="", dashboard=dashboard
            )
            for variable in group["envVars"]
        }
        for group in blueprint(name).get("envVarGroups", [])
    }


def service_environment(
    spec: Mapping[str, Any],
    *,
    base: Mapping[str, str],
    database_url: str,
    dashboard: Mapping[str, str],
    groups: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    """The environment Render gives a service: ``base`` plus each of the Blueprint's envVars (a
    ``fromGroup`` entry brings in all of that group's variables)."""
    env = dict(base)
    for variable in spec.get("envVars", []):
        if "fromGroup" in variable:
            env.update(groups[variable["fromGroup"]])
            continue
        where = f"service {spec['name']}"
        env[variable["key"]] = variable_value(
            variable, where=where, database_url=database_url, dashboard=dashboard
        )
    return env


# Processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def checkout(destination: Path) -> Path:
    """The repository as Render clones it: tracked and new files, nothing ignored (.venv, media, ...)."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        # Not a git checkout (an unpacked archive): the tree minus what .gitignore keeps out.
        ignored = shutil.ignore_patterns(
            ".git",
            ".venv",
            "__pycache__",
            "*.pyc",
            "*_cache",
            "media",
            "staticfiles",
            "backups",
            "db.sqlite3*",
        )
        shutil.copytree(ROOT, destination, ignore=ignored)
        return destination
    for raw in listing.split(b"\0"):
        relative = raw.decode()
        source = ROOT / relative
        if relative and source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@dataclass
class Replay:
    """Runs the Blueprint's commands in the checkout and keeps a transcript of what they printed."""

    app: Path
    logs: Path
    processes: list[WebInstance] = field(default_factory=list)

    def run(
        self, label: str, command: str, env: Mapping[str, str], *, ok: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        # Its own process group: if it hangs (or starts a server it should not have), all of it goes.
        process = subprocess.Popen(
            ["bash", "-c", command],
            cwd=self.app,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            pytest.fail(f"{label} still ran after {timeout:.0f} s:\n$ {command}\n{output}")
        result = subprocess.CompletedProcess(process.args, process.returncode, output)
        seconds = time.monotonic() - started
        print(f"\n=== {label}: exit {result.returncode} after {seconds:.1f} s\n$ {command}\n{result.stdout}")
        if ok and result.returncode != 0:
            pytest.fail(f"{label} exited {result.returncode}:\n$ {command}\n{result.stdout}")
        return result

    def manage(
        self, label: str, arguments: str, env: Mapping[str, str], *, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run(label, f"python manage.py {arguments}", env, ok=ok)

    def start(self, label: str, command: str, env: Mapping[str, str], *, via: str = "bash") -> WebInstance:
        instance = WebInstance(label, command, {**env, "PORT": str(free_port())}, self, shell=via)
        self.processes.append(instance)
        instance.start()
        return instance

    def stop_all(self) -> None:
        for instance in self.processes:
            instance.stop()


@dataclass
class WebInstance:
    """One web instance: the startCommand (restore, then gunicorn) in its own process group."""

    label: str
    command: str
    env: dict[str, str]
    replay: Replay
    process: subprocess.Popen[bytes] | None = None
    # How the start command is run: Render runs it through a shell (bash); sh (dash on Debian) is
    # the other common one, and unlike bash 5.2 it never execs a command line's last step by itself.
    shell: str = "bash"

    @property
    def port(self) -> int:
        return int(self.env["PORT"])

    @property
    def log_path(self) -> Path:
        return self.replay.logs / f"{self.label}.log"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [self.shell, "-c", self.command],
                cwd=self.replay.app,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: stopping it stops bash, gunicorn's master and its workers.
                start_new_session=True,
            )
        self.wait_healthy()

    def wait_healthy(self) -> None:
        """Render's health check: /healthz answers 200 before the instance gets traffic."""
        assert self.process is not None
        deadline = time.monotonic() + HEALTH_WAIT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"{self.label}: the start command exited {self.process.returncode} before /healthz "
                    f"answered:\n$ {self.command}\n{self.output()}"
                )
            with contextlib.suppress(OSError):
                if plain_get(self.port, "/healthz").status == 200:
                    print(
                        f"\n=== {self.label}: healthy on port {self.port}\n$ {self.command}\n{self.output()}"
                    )
                    return
            time.sleep(0.2)
        pytest.fail(f"{self.label}: /healthz never answered 200:\n{self.output()}")

    def session(self) -> list[tuple[int, str]]:
        """The processes still running in the instance's session: (pid, command line)."""
        assert self.process is not None
        return processes_in_session(self.process.pid)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is not None:
            # The shell is gone; what it started may not be (a gunicorn that was never exec'd).
            for pid, _ in self.session():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        print(f"\n=== {self.label}: stopped (exit {self.process.returncode})\n{self.output()}")


def processes_in_session(session_id: int) -> list[tuple[int, str]]:
    """Every live process whose session is ``session_id`` (from /proc): (pid, command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        # Fields after the parenthesised name: state ppid pgrp session ...
        state, _ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
        if int(session) == session_id and state != "Z":
            found.append((int(entry.name), cmdline))
    return sorted(found)


# HTTP, as Render's proxy forwards it


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Client:
    """Requests as they reach the instance behind Render's TLS proxy: public Host, X-Forwarded-Proto.

    Cookies are kept by hand: the session and CSRF cookies are Secure, and a cookie jar would not
    send them over the plain-HTTP hop the proxy makes.
    """

    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        sent = {"Host": PUBLIC_HOSTNAME, "X-Forwarded-Proto": "https", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        try:
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            response = Response(answer.status, answer.headers, answer.read())
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def get_json(self, path: str) -> Any:
        response = self.get(path)
        assert response.status == 200, f"GET {path}: {response.status} {response.text[:500]}"
        return response.json()

    def post_form(self, path: str, body: bytes | str, content_type: str) -> Response:
        return self.request(
            "POST",
            path,
            body,
            {
                "Content-Type": content_type,
                "Origin": f"https://{PUBLIC_HOSTNAME}",
                "Referer": f"https://{PUBLIC_HOSTNAME}{path}",
            },
        )


def plain_get(port: int, path: str, headers: Mapping[str, str] | None = None) -> Response:
    """A request straight to the instance, as Render's health probe makes it: plain HTTP, no proxy headers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=dict(headers or {}))
        answer = connection.getresponse()
        return Response(answer.status, answer.headers, answer.read())
    finally:
        connection.close()


class AdminForm(html.parser.HTMLParser):
    """What a browser submits for an admin change form as first shown: its inputs, checked boxes,
    selected options and textareas (the inline formsets' management fields included)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: list[tuple[str, str]] = []
        self._in_form = False
        self._select: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._in_form = attributes.get("id", "").endswith("_form")
        name = attributes.get("name", "")
        if not self._in_form or "__prefix__" in name:
            return
        if tag == "input" and name:
            kind = attributes.get("type", "text").lower()
            if kind in {"checkbox", "radio"}:
                if "checked" in attributes:
                    self.fields.append((name, attributes.get("value") or "on"))
            elif kind not in {"file", "submit", "button", "image", "reset"}:
                self.fields.append((name, attributes.get("value", "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select is not None and "selected" in attributes:
            self.fields.append((self._select, attributes.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, "".join(self._text).lstrip("\n")))
            self._textarea = None


def multipart(
    fields: list[tuple[str, str]], files: Mapping[str, tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    boundary = f"----kidoo-replay-{secrets.token_hex(12)}"
    body = io.BytesIO()
    for name, value in fields:
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, (filename, data, content_type) in files.items():
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n".encode()
        )
        body.write(data + b"\r\n")
    body.write(f"--{boundary}--\r\n".encode())
    return body.getvalue(), f"multipart/form-data; boundary={boundary}"


def admin_login(client: Client, username: str, password: str) -> None:
    page = client.get("/admin/login/?next=/admin/")
    assert page.status == 200, page.text[:500]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text[:2000]
    form = {
        "csrfmiddlewaretoken": token.group(1),
        "username": username,
        "password": password,
        "next": "/admin/",
    }
    response = client.post_form(
        "/admin/login/?next=/admin/", urlencode(form), "application/x-www-form-urlencoded"
    )
    assert response.status == 302, f"admin login refused ({response.status}): {form_errors(response.text)}"
    assert "sessionid" in client.cookies


def form_errors(page: str) -> str:
    found = re.findall(
        r'<(?:ul class="errorlist[^"]*"|p class="errornote")[^>]*>(.*?)</(?:ul|p)>', page, re.S
    )
    return " | ".join(re.sub(r"<[^>]+>", " ", error).strip() for error in found) or page[:2000]


def admin_add(
    client: Client,
    model: str,
    values: Mapping[str, str],
    files: Mapping[str, tuple[str, bytes, str]] = {},
) -> None:
    """Fill in /admin/api/<model>/add/ as a person would and save it."""
    path = f"/admin/api/{model}/add/"
    page = client.get(path)
    assert page.status == 200, f"GET {path}: {page.status} {page.text[:500]}"
    form = AdminForm()
    form.feed(page.text)
    fields = [(name, value) for name, value in form.fields if name not in values] + list(values.items())
    body, content_type = multipart(fields, files)
    response = client.post_form(path, body, content_type)
    assert response.status == 302, (
        f"admin add {model} refused ({response.status}): {form_errors(response.text)}"
    )


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


# What the site holds, seen from outside


API_LISTS = (
    "/api/programs/",
    "/api/teachers/",
    "/api/gallery/",
    "/api/events/",
    "/api/announcements/",
    "/api/testimonials/",
)


def api_snapshot(client: Client) -> dict[str, Any]:
    """Every public record, through the public API (lists in one page each, and each album's images)."""
    snapshot: dict[str, Any] = {}
    for path in API_LISTS:
        page = client.get_json(f"{path}?page_size=100")
        assert page["next"] is None
        snapshot[path] = page
    for album in snapshot["/api/gallery/"]["results"]:
        detail = f"/api/gallery/{album['slug']}/"
        snapshot[detail] = client.get_json(detail)
    return snapshot


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def media_urls(snapshot: Mapping[str, Any]) -> set[str]:
    return {text for text in strings_in(snapshot) if re.match(r"https?://", text) and "/api/" not in text}


def database_fingerprint(server: PostgresServer, dbname: str) -> dict[str, tuple[int, str]]:
    """Row count and content hash of every table of the site's data (api_*) and of its users."""
    with contextlib.closing(server.connect(dbname)) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND (table_name LIKE 'api\\_%' OR table_name = 'auth_user') ORDER BY table_name"
        )
        tables = [row[0] for row in cursor.fetchall()]
        fingerprint = {}
        for table in tables:
            cursor.execute(
                "SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') "
                f'FROM "{table}" t'
            )
            count, digest = cursor.fetchone()
            fingerprint[table] = (int(count), str(digest))
        return fingerprint


def table_exists(server: PostgresServer, dbname: str, table: str) -> bool:
    with contextlib.closing(server.connect(dbname)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        return bool(cursor.fetchone()[0])


def listed_backups(replay: Replay, env: Mapping[str, str], label: str) -> list[dict[str, Any]]:
    result = replay.manage(label, "backup --list --format json", env)
    listed = json.loads(result.stdout)
    entries = listed["backups"] if isinstance(listed, dict) else listed
    assert isinstance(entries, list)
    return entries


def holds_data(entry: Mapping[str, Any]) -> bool:
    return bool(entry.get("holds_data", entry.get("rows", 0)))


def by_name(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in entries}


# The replay


@dataclass
class RenderAccount:
    """What the replay deploys with: one build of the checkout, and the values typed into the Dashboard."""

    app: Path
    venv: Path
    machine: dict[str, str]
    dashboard: dict[str, str]
    # Per Blueprint: its environment groups' values, made once (as Render makes them once).
    groups: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def environment(self, kind: str, database_url: str, blueprint_name: str = PAID) -> dict[str, str]:
        spec = service(kind, blueprint_name)
        base = {**self.machine, "RENDER_SERVICE_NAME": spec["name"]}
        if kind == "web":
            base["RENDER_EXTERNAL_HOSTNAME"] = PUBLIC_HOSTNAME
        if blueprint_name not in self.groups:
            self.groups[blueprint_name] = group_environments(blueprint_name, self.dashboard)
        return service_environment(
            spec,
            base=base,
            database_url=database_url,
            dashboard=self.dashboard,
            groups=self.groups[blueprint_name],
        )


@pytest.fixture(scope="module")
def emulator() -> Iterator[CloudinaryEmulator]:
    """An emulator of its own: it outlives every deploy of the replay, as the real account would."""
    with CloudinaryEmulator(cloud_name="kidoo-replay") as running:
        yield running


@pytest.fixture(scope="module")
def alerts() -> Iterator[AlertReceiver]:
    """The monitor behind BACKUP_ALERT_URL (healthchecks.io's part), for the whole module."""
    receiver = AlertReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(autouse=True)
def fresh_accounts(emulator: CloudinaryEmulator, alerts: AlertReceiver) -> None:
    """Each test deploys into empty Cloudinary and monitoring accounts: the Blueprints name one
    backup folder (BACKUP_NAMESPACE), which the tests would otherwise share."""
    emulator.reset()
    alerts.pings.clear()


@pytest.fixture(scope="module")
def account(
    tmp_path_factory: pytest.TempPathFactory,
    emulator: CloudinaryEmulator,
    pg_server: PostgresServer,
    alerts: AlertReceiver,
) -> RenderAccount:
    """The build: a fresh virtualenv, then the Blueprint's buildCommands (which install
    requirements_render.txt into it: nothing else is there). Built once per run, for both tests."""
    root = tmp_path_factory.mktemp("render")
    venv = root / "venv"
    home = root / "home"
    home.mkdir()
    logs = root / "logs"
    logs.mkdir()
    inherited = {name: os.environ[name] for name in INHERITED_VARIABLES if name in os.environ}
    # The fresh virtualenv first; the test runner's own .venv nowhere on the way.
    path = [entry for entry in inherited.get("PATH", "").split(os.pathsep) if not entry.startswith(str(ROOT))]
    machine = {
        **inherited,
        # Render's processes own their home; gunicorn keeps its control socket there.
        "HOME": str(home),
        "PATH": os.pathsep.join([str(venv / "bin"), *path]),
        "VIRTUAL_ENV": str(venv),
        "PYTHONUNBUFFERED": "1",
        # Render's own variables.
        "RENDER": "true",
        "IS_PULL_REQUEST": "false",
        # Only what a laptop needs on top of production settings (plain-HTTP emulator): see the module.
        "DJANGO_SETTINGS_MODULE": "tests.render_settings",
    }
    identity = x25519.Identity.generate()
    # What the operator types into the Dashboard for `sync: false`.
    emulator_address = f"upload_prefix={quote(emulator.base_url, safe='')}&cname={emulator.host_and_port}"
    dashboard = {
        "CLOUDINARY_URL": (
            f"cloudinary://{emulator.api_key}:{emulator.api_secret}@{emulator.cloud_name}?{emulator_address}"
        ),
        "BACKUP_AGE_RECIPIENTS": str(identity.to_public()),
        "BACKUP_AGE_IDENTITY": str(identity),
        "HEALTHCHECK_TOKEN": secrets.token_urlsafe(32),
        "BACKUP_ALERT_URL": alerts.url,
    }
    built = RenderAccount(checkout(root / "app"), venv, machine, dashboard)
    builder = Replay(app=built.app, logs=logs)
    builder.run("create the virtualenv", f"python3 -m venv {venv} && python --version", machine)
    # The build does not reach the database; Render sets DATABASE_URL for it all the same.
    unused = pg_server.url("kidoo_not_used_by_the_build")
    builder.run("build (web)", service("web")["buildCommand"], built.environment("web", unused))
    builder.run("build (cron)", service("cron")["buildCommand"], built.environment("cron", unused))
    # The free-plan Blueprint builds the same way; its build command must work too.
    assert service("web", FREE)["buildCommand"] == service("web")["buildCommand"]
    return built


@pytest.fixture
def replay(account: RenderAccount, tmp_path: Path) -> Iterator[Replay]:
    logs = tmp_path / "logs"
    logs.mkdir()
    session = Replay(app=account.app, logs=logs)
    try:
        yield session
    finally:
        session.stop_all()


@pytest.fixture
def database(pg_server: PostgresServer) -> Iterator[str]:
    name = f"kidoo_replay_{secrets.token_hex(4)}"
    pg_server.create_database(name)
    try:
        yield name
    finally:
        pg_server.drop_database(name)


def post_enquiry(client: Client, number: int, origin: str, program: str = "") -> str:
    response = client.request(
        "POST",
        "/api/enquiries/",
        json.dumps(
            {
                "parent_name": f"Parent {number}",
                "phone": f"+44 20 7946 09{number:02d}",
                "email": f"parent{number}@example.org",
                "child_name": f"Child {number}",
                "child_age_years": 3 + number % 3,
                "program": program,
                "message": "Can we visit? ✿",
                "consent": True,
            }
        ),
        {"Content-Type": "application/json", "Origin": origin},
    )
    assert response.status == 201, response.text
    public_id: str = response.json()["public_id"]
    return public_id


def test_render_life__replayed_end_to_end(
    emulator: CloudinaryEmulator,
    alerts: AlertReceiver,
    account: RenderAccount,
    pg_server: PostgresServer,
    database: str,
    replay: Replay,
) -> None:
    # `replay` comes last so that its processes are stopped before the database goes.
    web, cron = service("web"), service("cron")
    web_env = account.environment("web", pg_server.url(database))
    cron_env = account.environment("cron", pg_server.url(database))

    # 1. The build (fixture `account`) passed; the production settings pass Django's deploy checks.
    check = replay.manage("check --deploy", "check --deploy --fail-level WARNING", web_env)
    assert "System check identified no issues" in check.stdout

    # 2. First deploy, on the brand-new (empty) database: nothing to back up, nothing to restore.
    replay.run("pre-deploy #1 (new database)", web["preDeployCommand"], web_env)
    assert listed_backups(replay, web_env, "backups after pre-deploy #1") == []
    instance = replay.start("start #1", web["startCommand"], web_env)
    # Only /healthz is exempt from the HTTPS redirect: everything else reached over plain HTTP is sent
    # to https (Render's proxy says https in X-Forwarded-Proto, as Client does).
    redirect = plain_get(instance.port, "/api/programs/", {"Host": PUBLIC_HOSTNAME})
    assert redirect.status == 301, redirect.status
    assert redirect.headers["Location"].startswith("https://"), redirect.headers["Location"]
    # The head teacher's account, made in the Render Shell once the site is up.
    admin_password = secrets.token_urlsafe(16)
    replay.manage(
        "createsuperuser (Render Shell)",
        "createsuperuser --no-input",
        {
            **web_env,
            "DJANGO_SUPERUSER_USERNAME": "head-teacher",
            "DJANGO_SUPERUSER_EMAIL": "office@kidoo.example",
            "DJANGO_SUPERUSER_PASSWORD": admin_password,
        },
    )

    # 3. The admin fills the site (uploads go to the emulator); visitors send enquiries.
    admin = Client(instance.port)
    admin_login(admin, "head-teacher", admin_password)
    now = dt.datetime.now(dt.UTC)
    admin_add(
        admin,
        "program",
        {
            "name": "Sunflowers",
            "slug": "sunflowers",
            "age_min_years": "3",
            "age_max_years": "4",
            "monthly_fee": "420.00",
            "schedule": '{"mon": ["08:30", "12:30"]}',
        },
        {"image": ("sunflowers.png", png((250, 200, 0)), "image/png")},
    )
    admin_add(
        admin,
        "teacher",
        {"name": "Ana Lima", "slug": "ana-lima", "role": "Lead teacher", "bio": "Loves maths & music."},
        {"photo": ("ana.png", png((200, 120, 90)), "image/png")},
    )
    admin_add(
        admin,
        "galleryalbum",
        {
            "title": "Spring fair",
            "slug": "spring-fair",
            "images-0-caption": "The band",
            "images-0-sort_order": "1",
            "images-1-caption": "Face painting",
            "images-1-sort_order": "2",
        },
        {
            "cover": ("fair-cover.png", png((30, 160, 60)), "image/png"),
            "images-0-image": ("band.png", png((10, 20, 200)), "image/png"),
            "images-1-image": ("faces.png", png((220, 30, 120)), "image/png"),
        },
    )
    tomorrow = now + dt.timedelta(days=1)
    admin_add(
        admin,
        "event",
        {
            "title": "Open day",
            "slug": "open-day",
            "starts_at_0": tomorrow.strftime("%Y-%m-%d"),
            "starts_at_1": "09:00:00",
            "ends_at_0": tomorrow.strftime("%Y-%m-%d"),
            "ends_at_1": "12:00:00",
            "location": "Main hall",
        },
        {"banner": ("open-day.png", png((240, 240, 240)), "image/png")},
    )
    yesterday = now - dt.timedelta(days=1)
    admin_add(
        admin,
        "announcement",
        {
            "title": "Term dates",
            "body": "Term starts on Monday.",
            "published_at_0": yesterday.strftime("%Y-%m-%d"),
            "published_at_1": "08:00:00",
        },
        {"attachment": ("term-dates.pdf", PDF, "application/pdf")},
    )
    admin_add(
        admin,
        "testimonial",
        {
            "parent_name": "Priya",
            "quote": "Our son runs to the door every morning.",
            "rating": "5",
            "is_approved": "on",
        },
    )
    visitor = Client(instance.port)
    for number in range(5):
        post_enquiry(visitor, number, web_env.get("FRONTEND_ORIGINS", ""), "sunflowers")
    site = api_snapshot(visitor)
    images = media_urls(site)
    # program, teacher, album cover and two images, event banner, announcement attachment
    assert len(images) == 7, sorted(images)
    assert all(url.startswith(emulator.base_url + "/") for url in images), sorted(images)
    data = database_fingerprint(pg_server, database)
    assert data["api_enquiry"][0] == 5

    # 4. A second deploy: pre-deploy while the old instance serves, then the new one takes over.
    replay.run("pre-deploy #2", web["preDeployCommand"], web_env)
    previous, instance = instance, replay.start("start #2", web["startCommand"], web_env)
    previous.stop()
    visitor.port = instance.port
    assert api_snapshot(visitor) == site
    assert database_fingerprint(pg_server, database) == data
    good_backups = [
        entry for entry in listed_backups(replay, web_env, "backups after deploy #2") if holds_data(entry)
    ]
    assert good_backups, "the pre-deploy backup of a database with data is missing or says it holds none"

    # 5. The free database expires: Render recreates it empty; the next deploy must bring the data back.
    instance.stop()
    pg_server.drop_database(database)
    pg_server.create_database(database)
    replay.run("pre-deploy #3 (database recreated empty)", web["preDeployCommand"], web_env)
    after_expiry = by_name(listed_backups(replay, web_env, "backups after pre-deploy #3"))
    for entry in good_backups:
        assert after_expiry.get(entry["name"]) == entry, f"good backup {entry['name']} lost or changed"
    assert not [name for name, entry in after_expiry.items() if not holds_data(entry)], (
        "the pre-deploy backup of the empty database was kept (it must be skipped)"
    )
    instance = replay.start("start #3 (restores)", web["startCommand"], web_env)
    visitor.port = instance.port
    assert "Restored" in instance.output()
    assert database_fingerprint(pg_server, database) == data
    assert api_snapshot(visitor) == site
    for url in sorted(images):
        with urllib.request.urlopen(url, timeout=30) as delivered:  # noqa: S310 - the emulator on loopback
            body = delivered.read()
            assert delivered.status == 200, url
        assert body.startswith(b"%PDF" if url.endswith(".pdf") else b"\x89PNG"), url
    # The admin's account came back with the data.
    admin = Client(instance.port)
    admin_login(admin, "head-teacher", admin_password)

    # 6. The nightly cron job: backup with pruning, then a size sample.
    replay.run("cron", cron["startCommand"], cron_env)
    after_cron = listed_backups(replay, web_env, "backups after cron")
    daily = [entry for entry in after_cron if "daily" in entry["name"]]
    assert daily, [entry["name"] for entry in after_cron]
    assert holds_data(daily[-1])
    with_data = [entry for entry in after_cron if holds_data(entry)]
    assert with_data, "pruning left no backup that holds data"
    # BACKUP_AGE_RECIPIENTS reached both services: nothing left unencrypted.
    assert all(entry["encrypted"] for entry in after_cron), after_cron
    # The monitor heard every backup, the cron job's too (its daily heartbeat), and no failure.
    assert [ping.path for ping in alerts.pings] == [CHECK_PATH] * len(alerts.pings)
    assert any(
        ping.body.startswith("backup --prune succeeded on kidoo-daily-backup") for ping in alerts.pings
    )
    assert any(ping.body.startswith("backup succeeded on kidoo-backend") for ping in alerts.pings)
    # BACKUP_SIGNING_KEY too: every backup verifies against it (the start command checked one).
    assert all(entry["signature"] == "valid" for entry in after_cron), after_cron

    # 7. A release whose migration fails: pre-deploy exits non-zero, Render cancels the deploy and the
    # running instance keeps serving; nothing is lost.
    data = database_fingerprint(pg_server, database)
    before = by_name(after_cron)
    failed = replay.run(
        "pre-deploy #4 (migration fails)",
        web["preDeployCommand"],
        {**web_env, "KIDOO_REPLAY_BROKEN_MIGRATION": "1"},
        ok=False,
    )
    assert failed.returncode != 0
    assert "fails on purpose" in failed.stdout
    assert database_fingerprint(pg_server, database) == data
    assert not table_exists(pg_server, database, "render_broken_migration_doomed")
    assert api_snapshot(visitor) == site
    after_failure = by_name(listed_backups(replay, web_env, "backups after the failed deploy"))
    for name, entry in before.items():
        assert after_failure.get(name) == entry, f"backup {name} lost or changed by the failed deploy"
    (taken,) = [entry for name, entry in after_failure.items() if name not in before]
    assert "pre-deploy" in taken["name"]
    assert holds_data(taken)

    # The last good backup still restores, by hand, to exactly the live data (a scratch database
    # reading production's backup folder, which BACKUP_NAMESPACE names whatever the database's name,
    # as the README's "Restoring by hand" does).
    last_good = max(
        (entry for entry in before.values() if holds_data(entry)), key=lambda entry: entry["created_at"]
    )
    scratch = f"{database}_check"
    pg_server.create_database(scratch)
    try:
        replay.manage(
            "restore the last good backup by hand",
            f"restore {last_good['name']} --no-input",
            {**web_env, "DATABASE_URL": pg_server.url(scratch)},
        )
        assert database_fingerprint(pg_server, scratch) == data
    finally:
        pg_server.drop_database(scratch)


def set_connections_allowed(server: PostgresServer, dbname: str, allowed: bool) -> None:
    """Make ``dbname`` refuse new connections and end its sessions (an expired free database:
    inaccessible, its data still there), or accept them again."""
    with contextlib.closing(server.connect()) as connection:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
            if not allowed:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    [dbname],
                )


def wait_for_health(port: int, status: int) -> None:
    """Poll /healthz as Render does until it answers ``status`` (each answer is cached 1 s)."""
    deadline = time.monotonic() + HEALTH_WAIT_SECONDS
    answers: list[int] = []
    while time.monotonic() < deadline:
        answers.append(plain_get(port, "/healthz").status)
        if answers[-1] == status:
            return
        time.sleep(0.2)
    pytest.fail(f"/healthz never answered {status}: {answers[-10:]}")


def test_render_free_plan__a_free_database_s_life_fine_expired_then_recreated_empty(
    alerts: AlertReceiver, account: RenderAccount, pg_server: PostgresServer, database: str, replay: Replay
) -> None:
    """render.free.yaml: no pre-deploy, no cron; its start line restores if empty, backs up with
    --prune, migrates and execs gunicorn. The free database's three phases (README)."""
    start = service("web", FREE)["startCommand"]
    web_env = account.environment("web", pg_server.url(database), FREE)
    origin = web_env.get("FRONTEND_ORIGINS", "")

    # Fine: the first start on the brand-new database, then visitors.
    instance = replay.start("free plan: start #1 (new database)", start, web_env)
    visitor = Client(instance.port)
    for number in range(3):
        post_enquiry(visitor, number, origin)
    data = database_fingerprint(pg_server, database)
    assert data["api_enquiry"][0] == 3
    instance.stop()
    # The next start (a deploy, or a wake after the free instance slept) backs up what came in.
    instance = replay.start("free plan: start #2", start, web_env)
    # The backup on every start prunes, so a free instance waking many times a day keeps few.
    assert "Pruned the Cloudinary folder" in instance.output()
    assert [entry["reason"] for entry in listed_backups(replay, web_env, "free plan: backups")] == ["start"]
    assert [ping.body.split(" at ")[0] for ping in alerts.pings] == [
        "backup --prune succeeded on kidoo-backend"
    ]

    # Expired: the database is inaccessible (Render's 14-day grace period). The running instance
    # says so to Render's health check; a new start stops with a clear error and the monitor hears it.
    set_connections_allowed(pg_server, database, False)
    wait_for_health(instance.port, 503)
    instance.stop()
    failed = replay.run(
        "free plan: start #3 (database expired, inaccessible)",
        start,
        {**web_env, "PORT": str(free_port())},
        ok=False,
        timeout=120,
    )
    assert failed.returncode != 0
    assert "Cannot use database 'default'" in failed.stdout
    assert "not currently accepting connections" in failed.stdout
    assert "Traceback" not in failed.stdout
    (failure,) = [ping for ping in alerts.pings if ping.path == CHECK_PATH + "/fail"]
    assert failure.body.startswith("restore failed on kidoo-backend")
    assert "(exit 1): Cannot use database 'default'" in failure.body
    assert pg_server.password == "" or pg_server.password not in failure.body

    # Deleted, and recreated empty (by Render, or by you): the next start restores the newest backup.
    set_connections_allowed(pg_server, database, True)
    pg_server.drop_database(database)
    pg_server.create_database(database)
    instance = replay.start("free plan: start #4 (database recreated empty)", start, web_env)
    assert "Restored" in instance.output()
    assert database_fingerprint(pg_server, database) == data
    assert plain_get(instance.port, "/healthz").status == 200
    backups = listed_backups(replay, web_env, "free plan: backups after the restore")
    # The restored data was backed up again on the way up; no backup of the empty database.
    assert len(backups) == 2, backups
    assert all(holds_data(entry) for entry in backups), backups
    assert alerts.pings[-1].path == CHECK_PATH
    assert alerts.pings[-1].body.startswith("backup --prune succeeded on kidoo-backend")


@pytest.mark.parametrize("shell", ["bash", "sh"])
@pytest.mark.parametrize("blueprint_name", [PAID, FREE])
def test_render_stop__sigterm_to_the_start_command_stops_gunicorn_gracefully(
    account: RenderAccount,
    pg_server: PostgresServer,
    database: str,
    replay: Replay,
    blueprint_name: str,
    shell: str,
) -> None:
    """Render stops an instance with SIGTERM to the process it started (the start command's shell).
    With `exec`, that process is gunicorn's master: it stops its workers gracefully and exits 0."""
    web = service("web", blueprint_name)
    env = account.environment("web", pg_server.url(database), blueprint_name)
    if "preDeployCommand" in web:
        replay.run(f"{blueprint_name}: pre-deploy", web["preDeployCommand"], env)
    instance = replay.start(f"{blueprint_name} via {shell}: start", web["startCommand"], env, via=shell)
    assert instance.process is not None
    started = instance.process.pid
    running = dict(instance.session())
    assert "gunicorn" in running[started], running
    assert "kidoo_preschool.wsgi:application" in running[started]
    workers = [pid for pid in running if pid != started]
    assert workers, running

    os.kill(started, signal.SIGTERM)
    returncode = instance.process.wait(timeout=60)

    log = instance.output()
    print(f"\n=== {instance.label}: exit {returncode} after SIGTERM\n{log}")
    assert returncode == 0
    assert "Handling signal: term" in log
    assert "Shutting down: Master" in log
    assert instance.session() == [], "a gunicorn process outlived its master"


def test_render_stop__without_exec_sh_would_leave_gunicorn_serving_after_sigterm(
    account: RenderAccount, pg_server: PostgresServer, database: str, replay: Replay
) -> None:
    """Why the start lines say `exec`: run by sh, `... && gunicorn ...` keeps the shell as the
    process Render signals; SIGTERM ends the shell and gunicorn goes on, orphaned, until SIGKILL."""
    without_exec = service("web", FREE)["startCommand"].replace("exec gunicorn", "gunicorn")
    assert without_exec != service("web", FREE)["startCommand"]
    env = account.environment("web", pg_server.url(database), FREE)
    instance = replay.start("free plan via sh, without exec", without_exec, env, via="sh")
    assert instance.process is not None

    os.kill(instance.process.pid, signal.SIGTERM)
    instance.process.wait(timeout=60)

    survivors = instance.session()
    assert any("gunicorn" in command for _, command in survivors), survivors
    assert plain_get(instance.port, "/healthz").status == 200
    # (The replay fixture kills the orphans.)


def test_render_identity_kept_off_the_server__deploys_go_on_and_an_emptied_database_stops_the_start(
    alerts: AlertReceiver, account: RenderAccount, pg_server: PostgresServer, database: str, replay: Replay
) -> None:
    """BACKUP_AGE_IDENTITY left empty (render.yaml's comment): deploys with data are not affected, and
    on an emptied database the start command stops with a clear error until someone restores by hand."""
    web = service("web")
    identity = account.dashboard["BACKUP_AGE_IDENTITY"]
    web_env = {**account.environment("web", pg_server.url(database)), "BACKUP_AGE_IDENTITY": ""}

    replay.run("no identity: pre-deploy #1", web["preDeployCommand"], web_env)
    instance = replay.start("no identity: start #1", web["startCommand"], web_env)
    post_enquiry(Client(instance.port), 1, web_env.get("FRONTEND_ORIGINS", ""))
    data = database_fingerprint(pg_server, database)
    instance.stop()
    replay.run("no identity: pre-deploy #2", web["preDeployCommand"], web_env)
    # restore --if-empty answers from the database alone: no key needed while data is there.
    replay.start("no identity: start #2 (data present)", web["startCommand"], web_env).stop()

    pg_server.drop_database(database)
    pg_server.create_database(database)
    replay.run("no identity: pre-deploy #3 (database recreated empty)", web["preDeployCommand"], web_env)
    stopped = replay.run(
        "no identity: start #3 (database recreated empty)",
        web["startCommand"],
        {**web_env, "PORT": str(free_port())},
        ok=False,
        timeout=120,
    )
    assert stopped.returncode != 0
    assert "BACKUP_AGE_IDENTITY" in stopped.stdout, "the error should say which key is missing"
    assert [ping.path for ping in alerts.pings][-1] == CHECK_PATH + "/fail"
    assert "Traceback" not in stopped.stdout
    assert database_fingerprint(pg_server, database)["api_enquiry"][0] == 0

    # README, "Restoring by hand": the identity for this one command, never saved on the server.
    replay.manage(
        "no identity: restore by hand",
        "restore --latest --no-input",
        {**web_env, "BACKUP_AGE_IDENTITY": identity},
    )
    assert database_fingerprint(pg_server, database) == data
    replay.start("no identity: start #4 (after the restore by hand)", web["startCommand"], web_env)
