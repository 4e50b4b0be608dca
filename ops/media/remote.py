"""Does a media file exist? Answered in bulk, at the fewest Cloudinary Admin API calls.

The Admin API allows about 500 calls an hour on the free plan (HTTP 420 past it), so a check of
thousands of references must not cost a call each:

- dense folders (at least ``BY_IDS_BATCH`` ids wanted under one folder): list the folder by prefix,
  500 resources a call, but never more pages than ``resources_by_ids`` would need for the same ids;
  whatever the listing did not settle is then asked for by id;
- sparse ids: ``resources_by_ids``, 100 ids a call.

Answers are kept in ``known`` (and in a state file when the limit is reached), so a stopped check
resumes where it stopped instead of paying twice. A caller that checks batch by batch
(normalize_media_urls) calls ``forget()`` after each batch, so memory holds one batch's answers,
and sets ``position`` (where its scan is) so a resumed run starts there. A folder whose listing did
not finish within its page budget is asked for by id from then on (listing it again costs as
much). Local storages (FileSystemStorage) and others are asked through the storage itself, at no
API cost.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.errors import OpsError, redact

LIST_PAGE_SIZE = 500
BY_IDS_BATCH = 100

# (resource_type, delivery_type, public_id)
RemoteKey = tuple[str, str, str]


class RateLimitReached(OpsError):
    """The Admin API's allowance ran out (or down to the reserve) before the check finished."""

    NOTHING_WRITTEN = "Nothing was written."

    def __init__(self, message: str, state_file: Path | None) -> None:
        super().__init__(message)
        self.state_file = state_file

    def after_writes(self, outcome: str) -> RateLimitReached:
        """The same stop, for a caller that had written (verified) repairs before it: says so instead."""
        return RateLimitReached(str(self).replace(self.NOTHING_WRITTEN, outcome), self.state_file)


@dataclass
class RemoteExistence:
    """Existence answers for Cloudinary public_ids, and what they cost."""

    # Stop while this many calls of the hour are left, for the site's own uses of the API.
    reserve_calls: int = 10
    state_file: Path | None = None
    known: dict[RemoteKey, bool] = field(default_factory=dict)
    # What the Admin API said of each resource found (version, bytes, format): a backup's media
    # manifest records it at no extra call. Not saved in the state file: existence is what resumes.
    details: dict[RemoteKey, dict[str, Any]] = field(default_factory=dict)
    calls: int = 0
    remaining: int | None = None
    reset_at: str | None = None
    # Where the caller's scan was when the answers in ``known`` were asked for (saved, resumed).
    position: dict[str, Any] | None = None
    # (resource_type, delivery_type, folder) too large to list within a listing's page budget.
    large_folders: set[tuple[str, str, str]] = field(default_factory=set)

    @classmethod
    def resume(cls, state_file: Path, reserve_calls: int = 10) -> RemoteExistence:
        """The answers saved by a check that was stopped by the rate limit."""
        try:
            data = json.loads(state_file.read_text(encoding="utf-8"))
            known = {(str(rt), str(dt), str(pid)): bool(ok) for rt, dt, pid, ok in data["known"]}
            position = data.get("position")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise OpsError(
                f"Cannot read the remote check state {state_file} ({type(error).__name__}). "
                "Run without --resume-from to start the check over."
            ) from None
        return cls(reserve_calls=reserve_calls, state_file=state_file, known=known, position=position)

    def save(self) -> None:
        if self.state_file is None:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_file.with_suffix(".tmp")
        rows = [[rt, dt, pid, ok] for (rt, dt, pid), ok in self.known.items()]
        temporary.write_text(json.dumps({"known": rows, "position": self.position}), encoding="utf-8")
        os.replace(temporary, self.state_file)

    def forget(self) -> None:
        """Drop the answers (not the budget): the caller has used them."""
        self.known.clear()
        self.details.clear()

    def check(self, wanted: Iterable[RemoteKey]) -> None:
        """Settle every key of ``wanted`` into ``known``; raises RateLimitReached when out of calls."""
        pending: dict[tuple[str, str], set[str]] = defaultdict(set)
        for resource_type, delivery_type, public_id in wanted:
            if (resource_type, delivery_type, public_id) not in self.known:
                pending[(resource_type, delivery_type)].add(public_id)
        for (resource_type, delivery_type), ids in sorted(pending.items()):
            self._check_type(resource_type, delivery_type, ids)

    def _check_type(self, resource_type: str, delivery_type: str, ids: set[str]) -> None:
        by_folder: dict[str, set[str]] = defaultdict(set)
        for public_id in ids:
            by_folder[_folder(public_id)].add(public_id)
        sparse: list[str] = []
        for folder, folder_ids in sorted(by_folder.items()):
            if (
                folder
                and len(folder_ids) >= BY_IDS_BATCH
                and (resource_type, delivery_type, folder) not in self.large_folders
            ):
                self._list_folder(resource_type, delivery_type, folder, folder_ids)
                sparse.extend(i for i in folder_ids if (resource_type, delivery_type, i) not in self.known)
            else:
                sparse.extend(folder_ids)
        sparse.sort()
        for start in range(0, len(sparse), BY_IDS_BATCH):
            batch = sparse[start : start + BY_IDS_BATCH]
            response = self._call("resources_by_ids", batch, resource_type=resource_type, type=delivery_type)
            found = set()
            for resource in response.get("resources", []):
                found.add(str(resource["public_id"]))
                self._remember(resource_type, delivery_type, resource)
            for public_id in batch:
                self.known[(resource_type, delivery_type, public_id)] = public_id in found

    def _list_folder(self, resource_type: str, delivery_type: str, folder: str, ids: set[str]) -> None:
        # Never spend more on a listing than asking for the same ids by id would cost.
        page_budget = math.ceil(len(ids) / BY_IDS_BATCH)
        cursor: str | None = None
        for _page in range(page_budget):
            options: dict[str, Any] = {
                "type": delivery_type,
                "resource_type": resource_type,
                "prefix": folder,
                "max_results": LIST_PAGE_SIZE,
            }
            if cursor:
                options["next_cursor"] = cursor
            response = self._call("resources", **options)
            for resource in response.get("resources", []):
                public_id = str(resource["public_id"])
                if public_id in ids:
                    self.known[(resource_type, delivery_type, public_id)] = True
                    self._remember(resource_type, delivery_type, resource)
            cursor = response.get("next_cursor")
            if not cursor:
                # The whole folder was listed: whatever was not in it does not exist.
                for public_id in ids:
                    self.known.setdefault((resource_type, delivery_type, public_id), False)
                return
        self.large_folders.add((resource_type, delivery_type, folder))

    def _remember(self, resource_type: str, delivery_type: str, resource: dict[str, Any]) -> None:
        self.details[(resource_type, delivery_type, str(resource["public_id"]))] = {
            key: resource.get(key) for key in ("version", "bytes", "format")
        }

    def _call(self, name: str, *args: Any, **options: Any) -> Any:
        import cloudinary.api
        import cloudinary.exceptions

        if self.remaining is not None and self.remaining <= self.reserve_calls:
            self._stop(
                f"only {self.remaining} Admin API calls are left this hour (reserve {self.reserve_calls})"
            )
        try:
            response = getattr(cloudinary.api, name)(*args, **options)
        except cloudinary.exceptions.RateLimited as error:
            self._stop(redact(str(error)) or "HTTP 420")
        except cloudinary.exceptions.Error as error:
            self.save()
            raise OpsError(
                f"Cloudinary's Admin API failed ({type(error).__name__}: {redact(str(error))}). "
                "Check the credentials and the service status, then run the command again."
            ) from None
        self.calls += 1
        self.remaining = getattr(response, "rate_limit_remaining", None)
        reset = getattr(response, "rate_limit_reset_at", None)
        if reset:
            year, month, day, hour, minute = reset[:5]
            self.reset_at = f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d} UTC"
        return response

    def _stop(self, why: str) -> None:
        self.save()
        when = f" (the allowance resets at {self.reset_at})" if self.reset_at else ""
        where = (
            f"; re-run with --resume-from {self.state_file} to keep the {len(self.known)} answers so far"
            if self.state_file
            else ""
        )
        raise RateLimitReached(
            f"Stopped the remote check after {self.calls} Admin API calls: {why}{when}. "
            f"{RateLimitReached.NOTHING_WRITTEN} Wait for the reset{where}.",
            self.state_file,
        )


def _folder(public_id: str) -> str:
    """The listing prefix of a public_id: its first two folders (``media/gallery/``)."""
    parts = public_id.split("/")[:-1][:2]
    return "/".join(parts) + "/" if parts else ""
