"""Issue 14, findings 1, 2, 3 and 7: backup kinds, safety backups, partial backups, policy, signatures.

Real PostgreSQL and SQLite; the Cloudinary emulator where the repository is Cloudinary.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from pyrage import x25519

from api.models import Enquiry, Program
from ops.backup import backup_source
from ops.repository.backups import MANIFEST, SAFETY, BackupRepository, configured_repository
from ops.repository.prune import prune_repository
from ops.repository.retention import RetentionPolicy
from ops.repository.signing import parse_signing_key
from ops.repository.stores import LocalFolderStore
from tests.cloudinary_emulator import CloudinaryEmulator
from tests.commands import failing_command, run_command
from tests.fidelity import models as fm
from tests.fidelity.data import fingerprint
from tests.ops_databases import ScratchDatabases

SECRET_WORDS = ("AGE-SECRET-KEY", "api_secret")


def new_signing_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def programs(alias: str, *names: str) -> list[Program]:
    return [
        Program.objects.using(alias).create(
            name=name, slug=name.lower(), age_min_years=2, age_max_years=5, monthly_fee="100.00"
        )
        for name in names
    ]


def enquiries(alias: str, count: int, program: Program | None = None, prefix: str = "parent") -> None:
    Enquiry.objects.using(alias).bulk_create(
        Enquiry(
            parent_name=f"{prefix} {n}",
            phone="0",
            email="p@example.org",
            child_name=f"child {n}",
            child_age_years=3,
            consent=True,
            program=program,
        )
        for n in range(count)
    )


def tags(alias: str) -> list[str]:
    return sorted(fm.Tag.objects.using(alias).values_list("name", flat=True))


def backup(alias: str, *args: str, **options: Any) -> str:
    out, _ = run_command("backup", *args, database=alias, format="json", **options)
    return str(json.loads(out)["name"])


def names_in(alias: str) -> list[str]:
    return [b.name for b in configured_repository(alias).backups()]


@pytest.fixture
def cloudinary_repository(settings: Any, cloudinary_emulator: CloudinaryEmulator) -> CloudinaryEmulator:
    """Backups on the emulated Cloudinary, one namespace ("kidoo", as the README's laptop pull says)."""
    settings.OPS = {
        **getattr(settings, "OPS", {}),
        "BACKUP_REPOSITORY": "cloudinary",
        "BACKUP_NAMESPACE": "kidoo",
    }
    return cloudinary_emulator


class Environment:
    """The environment variables of one machine (production, a laptop, an attacker): set on ``use``."""

    VARIABLES = (
        "BACKUP_AGE_RECIPIENTS",
        "BACKUP_AGE_IDENTITY",
        "BACKUP_SIGNING_KEY",
        "BACKUP_AGE_PASSPHRASE",
    )

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
        self._monkeypatch = monkeypatch
        self.values = values

    def use(self) -> None:
        for name in self.VARIABLES:
            if name in self.values:
                self._monkeypatch.setenv(name, self.values[name])
            else:
                self._monkeypatch.delenv(name, raising=False)


@pytest.fixture
def production_keys(monkeypatch: pytest.MonkeyPatch) -> Environment:
    identity = x25519.Identity.generate()
    return Environment(
        monkeypatch,
        BACKUP_AGE_RECIPIENTS=str(identity.to_public()),
        BACKUP_AGE_IDENTITY=str(identity),
        BACKUP_SIGNING_KEY=new_signing_key(),
    )


# --- finding 1: the laptop pull, end to end -------------------------------------------------------


def test_laptop_pull__never_poisons_production_and_if_empty_latest_restores_productions_own_backup(
    scratch: ScratchDatabases,
    cloudinary_repository: CloudinaryEmulator,
    production_keys: Environment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production = scratch.postgres()
    [program] = programs(production, "Sunflowers")
    enquiries(production, 300, program)
    fm.Tag.objects.using(production).create(name="production")
    production_keys.use()
    productions_backup = backup(production, reason="daily")
    produced = fingerprint(production)
    # The laptop (a second PostgreSQL database, its own demo data) has the README's variables:
    # Cloudinary, the namespace and the identity to read production's backups; no recipients, no
    # signing key.
    laptop = scratch.postgres()
    fm.Tag.objects.using(laptop).create(name="laptop demo")
    laptop_env = Environment(monkeypatch, BACKUP_AGE_IDENTITY=production_keys.values["BACKUP_AGE_IDENTITY"])
    laptop_env.use()
    demo = fingerprint(laptop)

    # Its safety backup would land in production's repository in plaintext: the pull stops first.
    refused = failing_command("restore", latest=True, database=laptop, interactive=False)

    assert refused.returncode == 2
    assert "The safety backup of this restore would be written unencrypted" in str(refused)
    assert "BACKUP_AGE_RECIPIENTS" in str(refused)
    assert not any(word in str(refused) for word in SECRET_WORDS)
    assert fingerprint(laptop) == demo
    assert names_in(production) == [productions_backup]

    # With the public key set too (the README's procedure now), the pull goes through: its safety
    # backup is encrypted, kind "safety", and records the laptop as its source.
    laptop_env.values["BACKUP_AGE_RECIPIENTS"] = production_keys.values["BACKUP_AGE_RECIPIENTS"]
    laptop_env.use()
    run_command("restore", latest=True, database=laptop, interactive=False)
    assert tags(laptop) == ["production"]
    assert Enquiry.objects.using(laptop).count() == 300
    listed = configured_repository(laptop).backups()
    laptop_safety = listed[0]
    assert laptop_safety.kind == SAFETY
    assert laptop_safety.encrypted
    assert laptop_safety.source == backup_source(laptop)
    assert laptop_safety.fingerprint != backup_source(production)["fingerprint"]
    # A second pull (the laptop now holds production's data): still never plaintext.
    run_command("restore", latest=True, database=laptop, interactive=False)
    assert all(b.encrypted for b in configured_repository(laptop).backups())

    # Production's database is emptied; the start command restores production's own full backup.
    production_keys.use()
    call_command("flush", database=production, interactive=False, verbosity=0)
    out, _ = run_command("restore", latest=True, if_empty=True, database=production, interactive=False)

    assert out.startswith(f"Restored {productions_backup} into ")
    assert fingerprint(production) == produced
    assert tags(production) == ["production"]
    # And production's --undo never reaches for the laptop's safety backups.
    error = failing_command("restore", undo=True, database=production, interactive=False)
    assert "no safety backup of this database" in str(error)


# --- finding 2: --latest never picks a safety backup ------------------------------------------------


@pytest.mark.parametrize("engine", ["postgres", "sqlite"])
@pytest.mark.usefixtures("backup_dir")
def test_restore__latest_after_a_restore_is_the_full_backup_not_the_safety_backup(
    scratch: ScratchDatabases, engine: str
) -> None:
    alias = scratch.postgres() if engine == "postgres" else scratch.sqlite()
    fm.Tag.objects.using(alias).create(name="good")
    good = backup(alias)
    expected = fingerprint(alias)
    fm.Tag.objects.using(alias).create(name="damaged state")
    run_command("restore", good, database=alias, interactive=False)
    [newest, _] = configured_repository(alias).backups()
    assert newest.kind == SAFETY
    fm.Tag.objects.using(alias).create(name="damaged again")

    out, _ = run_command("restore", latest=True, database=alias, interactive=False)
    verified = json.loads(run_command("backup", "--verify", "--latest", database=alias, format="json")[0])
    media, _ = run_command("restore", latest=True, media_only=True, database=alias)

    assert out.startswith(f"Restored {good} into ")
    assert fingerprint(alias) == expected
    assert verified["name"] == good
    assert media.startswith(f"Media of {good}: ")


@pytest.mark.usefixtures("backup_dir")
def test_restore__undo_brings_back_what_the_last_restore_replaced(scratch: ScratchDatabases) -> None:
    alias = scratch.postgres()
    fm.Tag.objects.using(alias).create(name="old")
    old = backup(alias)
    fm.Tag.objects.using(alias).create(name="work of the day")
    before = fingerprint(alias)
    restored, _ = run_command("restore", old, database=alias, interactive=False)
    safety = restored.split("safety backup ")[1].rstrip(".\n")

    out, _ = run_command("restore", undo=True, database=alias, interactive=False)

    assert out.startswith(f"Restored {safety} into ")
    assert fingerprint(alias) == before
    assert failing_command("restore", old, undo=True, database=alias).returncode == 2


# --- finding 3: partial backups ----------------------------------------------------------------------


@pytest.mark.usefixtures("backup_dir")
def test_restore__if_empty_latest_skips_a_newer_partial_backup(scratch: ScratchDatabases) -> None:
    alias = scratch.postgres()
    [program] = programs(alias, "Sunflowers", "Acorns")[:1]
    enquiries(alias, 5, program)
    full = backup(alias)
    expected = fingerprint(alias)
    partial = backup(alias, include=["api.Program"])
    listed = {b.name: b.kind for b in configured_repository(alias).backups()}
    assert listed == {full: "full", partial: "partial"}
    call_command("flush", database=alias, interactive=False, verbosity=0)

    out, _ = run_command("restore", latest=True, if_empty=True, database=alias, interactive=False)

    assert out.startswith(f"Restored {full} into ")
    assert fingerprint(alias) == expected
    text, _ = run_command("backup", list=True, database=alias)
    assert [line.split()[-4] for line in text.splitlines()[1:3]] == ["partial", "full"]


@pytest.mark.parametrize("engine", ["postgres", "sqlite"])
@pytest.mark.usefixtures("backup_dir")
def test_restore__partial_backup_replaces_only_its_tables_and_the_prompt_and_summary_say_so(
    scratch: ScratchDatabases, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = scratch.postgres() if engine == "postgres" else scratch.sqlite()
    [program] = programs(alias, "Sunflowers")
    enquiries(alias, 7, program)
    without_enquiries = backup(alias, exclude=["api.Enquiry"])
    # Later: the program renamed, more enquiries (some of a new program), a tag.
    Program.objects.using(alias).filter(pk=program.pk).update(name="Renamed")
    enquiries(alias, 3, prefix="later")
    fm.Tag.objects.using(alias).create(name="kept")
    kept_enquiries = sorted(Enquiry.objects.using(alias).values_list("parent_name", flat=True))
    monkeypatch.setattr("builtins.input", lambda: "yes")

    out, _ = run_command("restore", without_enquiries, database=alias)

    prompt, summary = out.splitlines()[1], out.splitlines()[-1]
    assert "This is a partial backup: it will REPLACE the rows of only the " in prompt
    assert "every other table is left as it is" in prompt
    assert summary.startswith(f"Restored {without_enquiries} into ")
    assert "(partial backup: only the " in summary
    assert "every other table is left as it is" in summary
    assert sorted(Enquiry.objects.using(alias).values_list("parent_name", flat=True)) == kept_enquiries
    assert Program.objects.using(alias).get().name == "Sunflowers"
    # fidelity was in the backup (empty then): its tables are the backup's.
    assert tags(alias) == []


@pytest.mark.usefixtures("backup_dir")
def test_restore__partial_backup_that_would_orphan_rows_left_in_place_changes_nothing(
    scratch: ScratchDatabases,
) -> None:
    alias = scratch.postgres()
    only_programs = backup(alias, include=["api.Program"], force=True)
    [program] = programs(alias, "Sunflowers")
    enquiries(alias, 2, program)
    before = fingerprint(alias)

    error = failing_command("restore", only_programs, database=alias, interactive=False)

    assert error.returncode == 1
    assert "nothing was changed" in str(error)
    assert fingerprint(alias) == before


# --- the repository's encryption policy; finding 7: restore checks what --verify checks ----------------


@pytest.mark.usefixtures("backup_dir")
def test_backup__unencrypted_into_a_repository_of_encrypted_backups_is_refused_naming_the_variable(
    scratch: ScratchDatabases, production_keys: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = scratch.postgres()
    fm.Tag.objects.using(alias).create(name="t")
    production_keys.use()
    encrypted = backup(alias)
    monkeypatch.delenv("BACKUP_AGE_RECIPIENTS")

    error = failing_command("backup", database=alias)

    assert error.returncode == 2
    assert "BACKUP_AGE_RECIPIENTS" in str(error)
    assert f"holds encrypted backups ({encrypted})" in str(error)
    assert names_in(alias) == [encrypted]


@pytest.mark.usefixtures("backup_dir")
def test_restore__manifest_claiming_encryption_over_plaintext_parts_is_refused_whatever_the_key(
    scratch: ScratchDatabases, backup_dir: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    # One database's backup restored into another: both read one namespace of the local repository.
    settings.OPS = {**settings.OPS, "BACKUP_NAMESPACE": "shared"}
    source = scratch.postgres()
    fm.Tag.objects.using(source).create(name="planted")
    name = backup(source)
    manifest_path = next(backup_dir.rglob(f"{name}/{MANIFEST}"))
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "encryption": "age-x25519"}))
    target = scratch.postgres()
    fm.Tag.objects.using(target).create(name="real")
    before = fingerprint(target)

    for identity in ("", str(x25519.Identity.generate())):
        monkeypatch.setenv("BACKUP_AGE_IDENTITY", identity)
        restore_error = failing_command("restore", name, database=target, interactive=False)
        expected = f"Backup {name} is listed as encrypted but its data is not"
        assert expected in str(restore_error), identity
        assert restore_error.returncode == 1
        if identity:  # without one, --verify stops earlier, asking for it
            assert expected in str(failing_command("backup", database=target, verify=name))
    assert fingerprint(target) == before


@pytest.mark.usefixtures("backup_dir")
def test_restore__with_an_identity_an_unencrypted_backup_needs_allow_unencrypted(
    scratch: ScratchDatabases, monkeypatch: pytest.MonkeyPatch
) -> None:
    alias = scratch.postgres()
    fm.Tag.objects.using(alias).create(name="plain")
    plain = backup(alias)
    expected = fingerprint(alias)
    fm.Tag.objects.using(alias).create(name="later")
    before = fingerprint(alias)
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(x25519.Identity.generate()))

    error = failing_command("restore", plain, database=alias, interactive=False)
    assert error.returncode == 2
    assert "is not encrypted" in str(error)
    assert "--allow-unencrypted" in str(error)
    assert fingerprint(alias) == before

    run_command("restore", plain, database=alias, interactive=False, allow_unencrypted=True)
    assert fingerprint(alias) == expected


# --- finding 7: authenticity ---------------------------------------------------------------------------


def test_signing__a_planted_backup_is_refused_by_the_start_command_and_verify(
    scratch: ScratchDatabases,
    cloudinary_repository: CloudinaryEmulator,
    production_keys: Environment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    production = scratch.postgres()
    fm.Tag.objects.using(production).create(name="production")
    production_keys.use()
    good = backup(production)
    produced = fingerprint(production)
    # Someone holding only the Cloudinary credentials (and the public recipients, which are public)
    # plants a newer full backup: unsigned, then signed with a key of their own.
    planter = scratch.postgres()
    fm.Tag.objects.using(planter).create(name="planted")
    attacker = Environment(monkeypatch, BACKUP_AGE_RECIPIENTS=production_keys.values["BACKUP_AGE_RECIPIENTS"])
    attacker.use()
    unsigned = backup(planter)
    listing, _ = run_command("backup", list=True, database=production)
    attacker.values["BACKUP_SIGNING_KEY"] = new_signing_key()
    attacker.use()
    forged = backup(planter)
    production_keys.use()
    call_command("flush", database=production, interactive=False, verbosity=0)
    empty = fingerprint(production)

    error = failing_command("restore", latest=True, if_empty=True, database=production, interactive=False)
    assert error.returncode == 1
    assert f"Backup {forged} is signed with another key" in str(error)
    assert production_keys.values["BACKUP_SIGNING_KEY"] not in str(error)
    assert "is not signed" in str(
        failing_command("restore", unsigned, database=production, interactive=False)
    )
    assert "is not signed" in str(failing_command("backup", database=production, verify=unsigned))
    assert fingerprint(production) == empty
    # Signed lines say so; the listing made without the key shows the unsigned one as NO.
    assert "NO" in next(line for line in listing.splitlines() if line.startswith(unsigned)).split()
    assert "yes" in next(line for line in listing.splitlines() if line.startswith(good)).split()

    run_command("restore", good, database=production, interactive=False)
    assert fingerprint(production) == produced


@pytest.mark.usefixtures("backup_dir")
def test_signing__a_changed_manifest_no_longer_matches_its_signature(
    scratch: ScratchDatabases, backup_dir: Path, production_keys: Environment
) -> None:
    alias = scratch.postgres()
    fm.Tag.objects.using(alias).create(name="t")
    production_keys.use()
    name = backup(alias)
    manifest_path = next(backup_dir.rglob(f"{name}/{MANIFEST}"))
    manifest = json.loads(manifest_path.read_text())
    intact, _ = run_command("backup", database=alias, verify=name)
    assert intact.startswith(f"Backup {name} is intact")
    assert "encrypted, signed by this deployment's key, " in intact
    manifest["summary"]["reason"] = "changed"
    manifest_path.write_text(json.dumps(manifest))

    error = failing_command("backup", database=alias, verify=name)

    assert error.returncode == 1
    assert "does not match its signature" in str(error)
    [record] = json.loads(run_command("backup", list=True, database=alias, format="json")[0])
    assert (record["signed"], record["signature"]) == (True, "invalid")


def test_signing_key__too_short_or_not_base64_is_refused_without_echoing_it() -> None:
    for value in ("c2hvcnQ=", "not base64 at all!", base64.b64encode(b"x" * 15).decode()):
        with pytest.raises(Exception, match="BACKUP_SIGNING_KEY is not a usable signing key") as raised:
            parse_signing_key(value)
        assert value not in str(raised.value)
    assert len(parse_signing_key(new_signing_key())) == 32
    assert (
        len(parse_signing_key(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="))) == 32
    )


# --- retention of safety backups -------------------------------------------------------------------------


def test_prune__safety_backups_kept_apart_the_newest_n_of_each_database(
    tmp_path: Path, settings: Any
) -> None:
    repository = BackupRepository(LocalFolderStore(tmp_path))
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

    def stored(name: str, kind: str, fingerprint: str | None, hours: int) -> str:
        when = start + dt.timedelta(hours=hours)
        full_name = f"{when:%Y%m%dT%H%M%SZ}-{name}"
        source = {"fingerprint": fingerprint} if fingerprint else {}
        with repository.create(full_name, kind=kind, source=source) as under_construction:
            under_construction.write(b"archive bytes")
            under_construction.summary.update(holds_data=True, reason=name)
        return full_name

    full = stored("daily", "full", "prod", 0)
    prod_safety = [stored(f"pre-restore-p{n}", "safety", "prod", 1 + n) for n in range(4)]
    laptop_safety = [stored(f"pre-restore-l{n}", "safety", "laptop", 10 + n) for n in range(2)]
    # An old safety backup (no kind, no source): told by its reason, counted on its own.
    legacy = stored("pre-restore-old", "", None, 20)
    manifest_path = tmp_path / legacy / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    del manifest["kind"], manifest["source"]
    manifest_path.write_text(json.dumps(manifest))
    assert repository.info(legacy).kind == SAFETY

    result = prune_repository(
        repository, RetentionPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0, keep_safety=2)
    )

    left = {b.name for b in repository.backups()}
    assert left == {full, *prod_safety[2:], *laptop_safety, legacy}
    reasons = {entry.name: entry.reason for entry in result.entries}
    assert reasons[full] == "newest backup holding data, last"
    assert reasons[prod_safety[0]] == "safety backup beyond the newest 2 of its database"
    assert {entry.kind for entry in result.deleted} == {SAFETY}
    settings.OPS = {**getattr(settings, "OPS", {}), "BACKUP_KEEP_SAFETY": 5}
    from ops.repository.prune import configured_policy

    assert configured_policy().keep_safety == 5


def test_policy__what_the_check_costs_on_cloudinary(
    scratch: ScratchDatabases, cloudinary_repository: CloudinaryEmulator, production_keys: Environment
) -> None:
    """Encrypted writes check nothing; a refused plaintext one lists once and reads the newest manifest."""
    emulator = cloudinary_repository
    alias = scratch.postgres()
    fm.Tag.objects.using(alias).create(name="t")

    def spent(*args: str, **options: Any) -> Counter[str]:
        before = emulator.calls
        run_command(*args, **options)
        return emulator.calls - before

    production_keys.use()
    first = spent("backup", database=alias)
    second = spent("backup", database=alias)
    # The size limit (1 Admin call), the part and the manifest, the manifest read back: no check.
    assert first == second == Counter(admin=1, upload=2, download=1)
    Environment(production_keys._monkeypatch).use()  # no keys at all
    # One listing, then the newest manifest is encrypted: refused before the size limit is asked.
    before = emulator.calls
    assert failing_command("backup", database=alias).returncode == 2
    assert emulator.calls - before == Counter(admin=1, download=1)
    assert len(names_in(alias)) == 2
