"""Load /healthz the way a busy platform would, and watch it through a database outage.

Starts a throwaway PostgreSQL cluster, migrates a database on it, serves the project with gunicorn
as render.yaml does (2 workers x 4 threads, production settings: DEBUG off, HTTPS redirect on), then
loads /healthz with 100 concurrent keep-alive clients for 30 s and prints p50/p99/max latency and
requests per second. Uses `wrk` when installed (apt-get install wrk), else a Python asyncio client
(which shares the CPU with the server, so its figures are pessimistic). Then stops PostgreSQL,
times /healthz's 503, starts it again and times the recovery.

    .venv/bin/python bench/bench_healthz.py [--duration 30] [--connections 100] [--no-outage]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres_server import ThrowawayPostgresServer, throwaway_cluster  # noqa: E402

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 10.0) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  (loopback only)
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - started


def wait_for(url: str, status: int, within: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < within:
        try:
            if get(url, timeout=5)[0] == status:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"{url} did not answer {status} within {within}s")


def run_wrk(url: str, duration: int, connections: int) -> dict[str, float]:
    result = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    )
    text = result.stdout

    def millis(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", text, re.MULTILINE))
    latency = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", text, re.MULTILINE)
    requests = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    if not (latency and requests):
        raise SystemExit(f"Unexpected wrk output:\n{text}")
    return {
        "p50_ms": millis(percentiles["50"]),
        "p99_ms": millis(percentiles["99"]),
        "max_ms": millis(latency.group(1)),
        "requests_per_s": float(requests.group(1)),
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


async def _client(host: str, port: int, deadline: float, latencies: list[float], statuses: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses.append(int(status_line.split()[1]))
    finally:
        writer.close()


async def _python_load(host: str, port: int, duration: int, connections: int) -> dict[str, float]:
    latencies: list[float] = []
    statuses: list[int] = []
    deadline = time.perf_counter() + duration
    started = time.perf_counter()
    await asyncio.gather(*(_client(host, port, deadline, latencies, statuses) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "max_ms": ordered[-1] * 1000,
        "requests_per_s": len(ordered) / elapsed,
        "non_2xx": float(sum(1 for status in statuses if not 200 <= status < 400)),
        "socket_errors": 0.0,
    }


def serve(server: ThrowawayPostgresServer, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": server.url("kidoo_bench"),
        "SECRET_KEY": "bench-" + "x" * 50,
        "ALLOWED_HOSTS": "kidoo.example",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("DEBUG", None)
    subprocess.run([str(BIN / "python"), "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    return subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "kidoo_preschool.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "2",
            "--threads",
            "4",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--no-outage", action="store_true")
    args = parser.parse_args()

    with throwaway_cluster() as server:
        assert isinstance(server, ThrowawayPostgresServer)
        server.create_database("kidoo_bench")
        port = free_port()
        url = f"http://127.0.0.1:{port}/healthz"
        gunicorn = serve(server, port)
        try:
            wait_for(url, 200, within=30)
            # The first answer comes from the first worker up; keep-alive clients that connect before
            # the second one listens would all stay on the first for the whole run.
            time.sleep(3)
            tool = "wrk" if shutil.which("wrk") else "python asyncio client"
            print(f"Loading {url} with {args.connections} clients for {args.duration}s ({tool})...")
            if shutil.which("wrk"):
                figures = run_wrk(url, args.duration, args.connections)
            else:
                figures = asyncio.run(_python_load("127.0.0.1", port, args.duration, args.connections))
            print(
                f"p50 {figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms  "
                f"max {figures['max_ms']:.1f} ms  {figures['requests_per_s']:.0f} req/s  "
                f"non-2xx {figures['non_2xx']:.0f}"
            )
            if not args.no_outage:
                outage(server, url)
        finally:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)


def outage(server: ThrowawayPostgresServer, url: str) -> None:
    server.stop()
    seen = wait_for(url, 503, within=10)
    answers = [get(url) for _ in range(20)]
    worst = max(seconds for _status, seconds in answers)
    print(
        f"PostgreSQL stopped: 503 seen after {seen * 1000:.0f} ms; "
        f"20 probes during the outage: statuses {sorted({status for status, _ in answers})}, "
        f"slowest {worst * 1000:.1f} ms"
    )
    server.start()
    back = wait_for(url, 200, within=30)
    print(f"PostgreSQL started again: /healthz 200 after {back * 1000:.0f} ms")


if __name__ == "__main__":
    main()
