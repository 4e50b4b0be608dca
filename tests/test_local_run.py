"""The README's local run, as a new user types it, on a copy of the repository.

The copy holds what a clone holds (the files git tracks or would commit), so nothing of this
working tree (db.sqlite3, media/, backups/) helps it. The README's commands run in it verbatim,
with two substitutions said here rather than hidden: the virtualenv step links `.venv` to the
one running the tests (which holds requirements_render.txt's pins, checked below) instead of
creating it and installing from PyPI; set KIDOO_README_INSTALL=1 to run those steps too. And
runserver gets a free loopback port instead of 8000, which the README's curl URL follows.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
INSTALL_STEPS = ("python3 -m venv .venv", ".venv/bin/pip install -r requirements_render.txt")
SERVER_START_LIMIT = 120  # seconds to wait for a server to accept connections (not a timing test)


def readme_section(title: str) -> str:
    start = README.index(title)
    return README[start : README.index("\n**", start + len(title))]


def code_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL)]


SET_UP = code_blocks(readme_section("**Run it on the embedded default**"))[0]
SERVE, CURL = code_blocks(readme_section("**Serve it locally**"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            (
                "CLOUDINARY",
                "RENDER",
                "DATABASE_URL",
                "SECRET_KEY",
                "DEBUG",
                "PRODUCTION",
                "BACKUP_",
                "DJANGO_",
            )
        )
        and key not in {"MEDIA_ROOT", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "VIRTUAL_ENV"}
    }
    env.update(extra)
    return env


def bash(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"set -e; {command}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@contextlib.contextmanager
def server(command: str, cwd: Path, env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` started in its own process group, once it accepts connections on ``port``."""
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + SERVER_START_LIMIT
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"{command} did not start: {stderr[-2000:]}")
            time.sleep(0.2)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def get(url: str) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url)  # noqa: S310 -- loopback only
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return int(response.status), str(response.headers["Content-Type"]), response.read()


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what a clone of this repository holds, set up by the README's first command."""
    folder = tmp_path_factory.mktemp("clone") / "kidoo"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, folder / name)
    steps = SET_UP.split(" && ")
    assert steps[:2] == list(INSTALL_STEPS), SET_UP
    if os.environ.get("KIDOO_README_INSTALL") != "1":
        (folder / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        steps = steps[2:]
    result = bash(" && ".join(steps), folder, clean_env())
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "backup(s) in the local folder" in result.stdout
    return folder


def test_readme_install__the_test_virtualenv_holds_requirements_render_pins() -> None:
    # What the skipped install step would have produced (see the module docstring).
    for line in (ROOT / "requirements_render.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement, version = line.split("==")
            name = requirement.split("[")[0]  # psycopg[binary]: the distribution is psycopg
            assert importlib.metadata.version(name) == version, name


def test_readme_local_run__runserver_answers_the_curl_and_serves_the_images(clone: Path) -> None:
    port = free_port()
    assert SERVE == "DEBUG=1 .venv/bin/python manage.py runserver"
    with server(f"{SERVE} 127.0.0.1:{port}", clone, clean_env(), port):
        assert "http://localhost:8000/" in CURL
        curl = CURL.replace("localhost:8000", f"localhost:{port}")
        if shutil.which("curl") is None:
            pytest.skip("needs curl: apt-get install curl")
        answer = bash(curl, clone, clean_env())
        assert answer.returncode == 0, answer.stderr
        programs = json.loads(answer.stdout)
        assert programs["count"] > 0
        image = programs["results"][0]["image"]
        assert image.startswith(f"http://localhost:{port}/media/"), image

        status, content_type, body = get(image)
        assert (status, content_type) == (200, "image/jpeg")
        assert body[:2] == b"\xff\xd8"


def test_without_debug__plain_http_is_redirected_to_https(clone: Path) -> None:
    # The production defaults stay what they were: a forgotten DEBUG=1 is HTTPS, not debug pages.
    port = free_port()
    with server(f".venv/bin/python manage.py runserver 127.0.0.1:{port}", clone, clean_env(), port):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/api/programs/", headers={"Host": "localhost"})
        response = connection.getresponse()
        assert response.status == 301
        assert response.getheader("Location", "").startswith("https://localhost/api/programs/")


def test_gunicorn__a_chunked_enquiry_is_read(clone: Path) -> None:
    # gunicorn is what Render runs: it de-chunks the body and sets wsgi.input_terminated.
    port = free_port()
    env = clean_env(SECURE_SSL_REDIRECT="0")
    with server(f".venv/bin/gunicorn kidoo_preschool.wsgi -b 127.0.0.1:{port} -w 1", clone, env, port):
        enquiry = {
            "parent_name": "Alex Example",
            "phone": "+44 20 7946 0001",
            "email": "alex@example.com",
            "child_name": "Sam Example",
            "child_age_years": 3,
            "consent": True,
        }
        body = json.dumps(enquiry).encode()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(
            "POST",
            "/api/enquiries/",
            body=iter([body[:20], body[20:]]),
            headers={"Host": "localhost", "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 201, answer
        assert set(answer) == {"public_id"}


@pytest.mark.parametrize(
    "name",
    ["site.kidoo-backup", "backups/x/part-0001", "backup.kidoo", "identity.age", "kidoo-backup-key.txt"],
)
def test_gitignore__backups_and_keys_are_never_committed(name: str) -> None:
    # `backup -o site.kidoo-backup` (README) writes families' personal data into the working tree.
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", name], cwd=ROOT, check=False)
    assert ignored.returncode == 0, f"{name} is not git-ignored"
