"""Health checks: small dataclasses whose ``run()`` raises, run side by side, each with a timeout.

A check is listed in ``OPS["HEALTH_CHECKS"]`` by dotted path, or as ``(dotted path, {kwargs})``:

    @dataclass
    class QueueCheck(HealthCheck):
        name: str = "queue"

        def run(self) -> str:
            if backlog() > 1000:
                raise HealthWarning("more than 1000 jobs waiting")
            return "queue drained"

``run()`` returns a short message when healthy, raises ``HealthWarning`` when degraded and
``HealthFailure`` (or anything else) when broken. Messages are public-safe sentences (the detailed
HTTP view shows them); driver texts that may hold host names or secrets go in ``detail``, which only
the command shows, redacted.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning
from django.db import connections
from django.utils.module_loading import import_string

from ops.conf import moved_path, ops_setting
from ops.errors import OpsConfigurationError, redact

# A token shorter than this can be guessed by whoever may probe the site for long enough.
MIN_TOKEN_LENGTH = 32


def health_token() -> str | None:
    """The detailed health view's token (from OPS["HEALTH_TOKEN_ENV"]'s variable); None: view disabled."""
    token = os.environ.get(str(ops_setting("HEALTH_TOKEN_ENV")), "").strip()
    return token or None


@register(Tags.security, deploy=True)
def check_health_token(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    token = health_token()
    if token is None or len(token) >= MIN_TOKEN_LENGTH:
        return []
    return [
        CheckWarning(
            f"The detailed health view's token ({ops_setting('HEALTH_TOKEN_ENV')}) is shorter than "
            f"{MIN_TOKEN_LENGTH} characters.",
            hint="Generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`.",
            id="ops.W010",
        )
    ]


class Status(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILURE = "failure"


class HealthFailure(Exception):
    """The checked thing is broken. ``str(error)`` is public-safe; ``detail`` is for operators."""

    status = Status.FAILURE

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class HealthWarning(HealthFailure):
    """Degraded but working (``--fail-on-warning`` counts it as a failure)."""

    status = Status.WARNING


@dataclass
class HealthCheck:
    """Base of every check. Subclasses set ``name`` and implement ``run()``."""

    name: str = ""
    # Seconds; None: OPS["HEALTH_CHECK_TIMEOUT"].
    timeout: float | None = None

    def run(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    message: str
    duration: float
    # Operator-only: a redacted driver error, a path. Never in the public view.
    detail: str | None = None

    def as_dict(self, *, public: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "status": str(self.status),
            "message": self.message,
            "duration_ms": round(self.duration * 1000, 1),
        }
        if not public and self.detail:
            data["detail"] = self.detail
        return data


@dataclass(frozen=True)
class HealthReport:
    results: list[CheckResult] = field(default_factory=list)

    @property
    def status(self) -> Status:
        statuses = {result.status for result in self.results}
        if Status.FAILURE in statuses:
            return Status.FAILURE
        return Status.WARNING if Status.WARNING in statuses else Status.OK

    def healthy(self, *, fail_on_warning: bool = False) -> bool:
        bad = {Status.FAILURE, Status.WARNING} if fail_on_warning else {Status.FAILURE}
        return not any(result.status in bad for result in self.results)

    def unhealthy_names(self, *, fail_on_warning: bool = False) -> list[str]:
        bad = {Status.FAILURE, Status.WARNING} if fail_on_warning else {Status.FAILURE}
        return [result.name for result in self.results if result.status in bad]

    def as_dict(self, *, public: bool = False, fail_on_warning: bool = False) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "healthy": self.healthy(fail_on_warning=fail_on_warning),
            "checks": [result.as_dict(public=public) for result in self.results],
        }


def configured_checks(names: Iterable[str] | None = None) -> list[HealthCheck]:
    """The checks ``OPS["HEALTH_CHECKS"]`` lists (only those called ``names``, when given)."""
    checks: list[HealthCheck] = []
    for entry in ops_setting("HEALTH_CHECKS"):
        path, kwargs = (entry, {}) if isinstance(entry, str) else (entry[0], dict(entry[1]))
        try:
            cls = import_string(path)
        except ImportError:
            new_path = moved_path(path)
            if new_path:
                raise OpsConfigurationError(
                    f"OPS['HEALTH_CHECKS'] lists {path!r}, which has moved. Write {new_path!r} instead."
                ) from None
            raise OpsConfigurationError(
                f"OPS['HEALTH_CHECKS'] lists {path!r}, which cannot be imported. "
                "Give the dotted path of a HealthCheck subclass."
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, HealthCheck)):
            raise OpsConfigurationError(f"OPS['HEALTH_CHECKS'] lists {path!r}, which is not a HealthCheck.")
        try:
            checks.append(cls(**kwargs))
        except TypeError as error:
            raise OpsConfigurationError(f"OPS['HEALTH_CHECKS']: {path} does not take {error}.") from None
    if names is not None:
        wanted = list(dict.fromkeys(names))
        known = {check.name for check in checks}
        unknown = [name for name in wanted if name not in known]
        if unknown:
            raise OpsConfigurationError(
                f"No health check named {', '.join(unknown)}. Configured: {', '.join(sorted(known))}."
            )
        checks = [check for check in checks if check.name in wanted]
    return checks


class _Outcome:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: CheckResult | None = None


def _run_one(check: HealthCheck, outcome: _Outcome) -> None:
    started = time.perf_counter()
    try:
        message = check.run()
        result = CheckResult(check.name, Status.OK, message or "ok", time.perf_counter() - started)
    except HealthFailure as problem:
        result = CheckResult(
            check.name,
            problem.status,
            problem.message,
            time.perf_counter() - started,
            redact(problem.detail) if problem.detail else None,
        )
    except Exception as error:
        # An unexpected error's text may quote a connection string or a host: operators only.
        result = CheckResult(
            check.name,
            Status.FAILURE,
            f"the check failed unexpectedly ({type(error).__name__})",
            time.perf_counter() - started,
            redact(str(error)),
        )
    finally:
        # Django opens a connection per thread; this thread ends here, so must its connections.
        connections.close_all()
    outcome.result = result
    outcome.done.set()


def run_checks(checks: Sequence[HealthCheck]) -> HealthReport:
    """Run ``checks`` side by side; one that outlives its timeout is reported as failed.

    Daemon threads, not an executor: a hung check must not keep the process alive at exit (an
    executor's workers are joined then), and it is abandoned, not killed (Python cannot kill a thread).
    """
    default_timeout = float(ops_setting("HEALTH_CHECK_TIMEOUT"))
    started = time.perf_counter()
    running: list[tuple[HealthCheck, _Outcome, float]] = []
    for check in checks:
        outcome = _Outcome()
        thread = threading.Thread(
            target=_run_one, args=(check, outcome), name=f"healthcheck-{check.name}", daemon=True
        )
        thread.start()
        timeout = default_timeout if check.timeout is None else float(check.timeout)
        running.append((check, outcome, timeout))
    results = []
    for check, outcome, timeout in running:
        remaining = started + timeout - time.perf_counter()
        if outcome.done.wait(max(remaining, 0.0)) and outcome.result is not None:
            results.append(outcome.result)
        else:
            results.append(CheckResult(check.name, Status.FAILURE, f"timed out after {timeout:g}s", timeout))
    return HealthReport(results)


def text_lines(report: HealthReport, *, verbosity: int = 1) -> Iterable[str]:
    width = max((len(result.name) for result in report.results), default=0)
    for result in report.results:
        yield (
            f"{result.name.ljust(width)}  {str(result.status).upper():7}  {result.message}"
            f"  ({result.duration * 1000:.0f} ms)"
        )
        if verbosity >= 2 and result.detail:
            yield f"{' ' * width}  {'':7}  {result.detail}"
