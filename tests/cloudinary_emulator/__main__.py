"""Run the emulator standalone: ``python -m tests.cloudinary_emulator --port 9999``."""

from __future__ import annotations

import argparse
import json
import threading

from .emulator import CloudinaryEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve an in-memory Cloudinary emulator over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--cloud-name", default="emulated-cloud")
    parser.add_argument("--api-key", default="111122223333444")
    parser.add_argument("--api-secret", default="emulator-api-secret")
    parser.add_argument("--admin-rate-limit", type=int, default=500)
    arguments = parser.parse_args(argv)
    emulator = CloudinaryEmulator(
        arguments.cloud_name,
        arguments.api_key,
        arguments.api_secret,
        host=arguments.host,
        port=arguments.port,
        admin_rate_limit=arguments.admin_rate_limit,
    )
    with emulator:
        print(f"Cloudinary emulator listening on {emulator.base_url}", flush=True)
        print("cloudinary.config(**" + json.dumps(emulator.sdk_config()) + ")", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)


if __name__ == "__main__":
    main()
