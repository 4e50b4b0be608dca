"""ops.repository.encryption: streaming age encryption, readable by pyrage's own API and the age CLI."""

from __future__ import annotations

import hashlib
import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519

from ops.errors import OpsConfigurationError
from ops.repository.encryption import (
    DecryptionError,
    EncryptionKeys,
    decrypt_bytes,
    decrypting,
    decryption_identities,
    encrypt_bytes,
    encrypting,
    encryption_keys_from_environment,
    is_age_encrypted,
    parse_identities,
    parse_recipients,
    prepare_encryption,
)
from tests.commands import requires_age_cli


def encrypt(data: bytes, recipients: list[x25519.Recipient], chunk: int = 65536) -> bytes:
    sink = io.BytesIO()
    with encrypting(sink, recipients) as plaintext:
        for start in range(0, len(data), chunk):
            plaintext.write(data[start : start + chunk])
    return sink.getvalue()


def decrypt(ciphertext: bytes, identities: list[x25519.Identity]) -> bytes:
    out = bytearray()
    with decrypting(io.BytesIO(ciphertext), identities) as plaintext:
        while block := plaintext.read(65536):
            out += block
    return bytes(out)


@pytest.fixture
def key_pair() -> tuple[x25519.Identity, x25519.Recipient]:
    identity = x25519.Identity.generate()
    return identity, identity.to_public()


def test_encrypting__round_trip_of_a_large_stream(key_pair: tuple[x25519.Identity, x25519.Recipient]) -> None:
    identity, recipient = key_pair
    data = os.urandom(3 * 1024 * 1024) + b"tail"
    ciphertext = encrypt(data, [recipient])
    assert is_age_encrypted(ciphertext)
    assert data[:4096] not in ciphertext
    assert decrypt(ciphertext, [identity]) == data


def test_encrypting__pyrage_independent_decrypt_path_reads_it(
    key_pair: tuple[x25519.Identity, x25519.Recipient],
) -> None:
    identity, recipient = key_pair
    ciphertext = encrypt(b"children's names stay private", [recipient])
    assert pyrage.decrypt(ciphertext, [identity]) == b"children's names stay private"


def test_encrypting__any_of_several_recipients_can_read(
    key_pair: tuple[x25519.Identity, x25519.Recipient],
) -> None:
    identity, recipient = key_pair
    other = x25519.Identity.generate()
    ciphertext = encrypt(b"payload", [other.to_public(), recipient])
    assert decrypt(ciphertext, [identity]) == b"payload"
    assert decrypt(ciphertext, [other]) == b"payload"


def test_decrypting__wrong_key_is_a_clear_error(key_pair: tuple[x25519.Identity, x25519.Recipient]) -> None:
    _, recipient = key_pair
    ciphertext = encrypt(b"secret", [recipient])
    with pytest.raises(DecryptionError, match="does not match any of its recipients"):
        decrypt(ciphertext, [x25519.Identity.generate()])


def test_decrypting__damaged_ciphertext_is_refused(
    key_pair: tuple[x25519.Identity, x25519.Recipient],
) -> None:
    identity, recipient = key_pair
    ciphertext = bytearray(encrypt(os.urandom(200_000), [recipient]))
    ciphertext[len(ciphertext) // 2] ^= 0x01
    with pytest.raises(DecryptionError):
        decrypt(bytes(ciphertext), [identity])


def test_decrypting__truncated_ciphertext_is_refused(
    key_pair: tuple[x25519.Identity, x25519.Recipient],
) -> None:
    identity, recipient = key_pair
    ciphertext = encrypt(os.urandom(200_000), [recipient])
    with pytest.raises(DecryptionError):
        decrypt(ciphertext[: len(ciphertext) - 1000], [identity])


def test_decrypting__reader_may_stop_early(key_pair: tuple[x25519.Identity, x25519.Recipient]) -> None:
    identity, recipient = key_pair
    ciphertext = encrypt(os.urandom(2_000_000), [recipient])
    with decrypting(io.BytesIO(ciphertext), [identity]) as plaintext:
        assert len(plaintext.read(10)) == 10


def test_passphrase_mode__streams_to_a_fresh_key_wrapped_by_the_passphrase(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prepared = prepare_encryption(EncryptionKeys(passphrase="correct horse battery staple"))
    assert prepared.wrapped_identity is not None
    ciphertext = encrypt(b"enquiries", list(prepared.recipients))

    monkeypatch.setenv("BACKUP_AGE_PASSPHRASE", "correct horse battery staple")
    assert decrypt(ciphertext, decryption_identities(prepared.wrapped_identity)) == b"enquiries"

    monkeypatch.setenv("BACKUP_AGE_PASSPHRASE", "wrong")
    with pytest.raises(DecryptionError, match="passphrase does not open"):
        decryption_identities(prepared.wrapped_identity)
    monkeypatch.delenv("BACKUP_AGE_PASSPHRASE")
    with pytest.raises(OpsConfigurationError, match="encrypted with a passphrase"):
        decryption_identities(prepared.wrapped_identity)


def test_parse_recipients__refuses_a_secret_key_without_echoing_it() -> None:
    secret = str(x25519.Identity.generate())
    with pytest.raises(OpsConfigurationError, match="secret key") as refused:
        parse_recipients(secret)
    assert secret not in str(refused.value)


def test_parse_recipients__separators_and_comments(
    key_pair: tuple[x25519.Identity, x25519.Recipient],
) -> None:
    _, recipient = key_pair
    other = x25519.Identity.generate().to_public()
    text = f"# office laptop\n{recipient}, {other}\n\n"
    assert [str(r) for r in parse_recipients(text)] == [str(recipient), str(other)]
    with pytest.raises(OpsConfigurationError, match="not an age X25519 public key"):
        parse_recipients("age1notakey")


def test_parse_identities__garbage_is_refused_without_echo() -> None:
    with pytest.raises(OpsConfigurationError, match="not valid") as refused:
        parse_identities("AGE-SECRET-KEY-1GARBAGE")
    assert "GARBAGE" not in str(refused.value)


def test_environment__recipients_passphrase_identity(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key_pair: tuple[x25519.Identity, x25519.Recipient]
) -> None:
    identity, recipient = key_pair
    for name in ("BACKUP_AGE_RECIPIENTS", "BACKUP_AGE_PASSPHRASE", "BACKUP_AGE_IDENTITY"):
        monkeypatch.delenv(name, raising=False)
    assert encryption_keys_from_environment() is None

    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS", str(recipient))
    keys = encryption_keys_from_environment()
    assert keys is not None
    assert [str(r) for r in keys.recipients] == [str(recipient)]

    monkeypatch.setenv("BACKUP_AGE_PASSPHRASE", "also")
    with pytest.raises(OpsConfigurationError, match="not both"):
        encryption_keys_from_environment()

    with pytest.raises(OpsConfigurationError, match="no age identity is configured"):
        decryption_identities(None)
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"# created: today\n{identity}\n")
    monkeypatch.setenv("BACKUP_AGE_IDENTITY_FILE", str(key_file))
    assert [str(i) for i in decryption_identities(None)] == [str(identity)]


@requires_age_cli
def test_age_cli__decrypts_recipient_and_passphrase_backups(tmp_path: Path) -> None:
    """The promise in the README: the standard `age` tool opens a backup without this project."""
    subprocess.run(["age-keygen", "-o", str(tmp_path / "key.txt")], check=True, capture_output=True)
    identity = parse_identities((tmp_path / "key.txt").read_text())[0]
    data = os.urandom(300_000)
    (tmp_path / "backup.age").write_bytes(encrypt(data, [identity.to_public()]))
    decrypted = subprocess.run(
        ["age", "-d", "-i", str(tmp_path / "key.txt"), str(tmp_path / "backup.age")],
        check=True,
        capture_output=True,
    ).stdout
    assert hashlib.sha256(decrypted).digest() == hashlib.sha256(data).digest()

    # Passphrase mode: the wrapped identity is an age identity file that age itself unlocks,
    # asking for the passphrase on the terminal (it reads passphrases only from a TTY).
    prepared = prepare_encryption(EncryptionKeys(passphrase="pass phrase"))
    assert prepared.wrapped_identity is not None
    (tmp_path / "identity.age").write_bytes(prepared.wrapped_identity)
    (tmp_path / "pp.age").write_bytes(encrypt(data, list(prepared.recipients)))
    prompt, status = run_on_terminal(
        ["age", "-d", "-i", "identity.age", "-o", "pp.out", "pp.age"],
        cwd=tmp_path,
        answer=b"pass phrase\n",
    )
    assert b"Enter passphrase for identity file" in prompt
    assert status == 0
    assert (tmp_path / "pp.out").read_bytes() == data


def run_on_terminal(argv: list[str], *, cwd: Path, answer: bytes) -> tuple[bytes, int]:
    """Run ``argv`` on a pseudo-terminal, typing ``answer`` at its first prompt."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: becomes the program
        os.chdir(cwd)
        os.execvp(argv[0], argv)  # noqa: S606 -- a fixed argv, no shell involved
    seen = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([terminal], [], [], 0.5)
        if not ready:
            continue
        try:
            chunk = os.read(terminal, 1024)
        except OSError:  # the child closed the terminal: it is done
            break
        if not chunk:
            break
        seen += chunk
        if not answered and b"passphrase" in seen.lower():
            os.write(terminal, answer)
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    return seen, os.waitstatus_to_exitcode(status)


# --- small payloads (undo logs) ---------------------------------------------------------------------


def test_encrypt_bytes__to_recipients_opened_with_the_identity_from_the_environment(
    key_pair: tuple[x25519.Identity, x25519.Recipient], monkeypatch: pytest.MonkeyPatch
) -> None:
    identity, recipient = key_pair
    monkeypatch.delenv("BACKUP_AGE_IDENTITY_FILE", raising=False)
    ciphertext = encrypt_bytes(b"names only", EncryptionKeys(recipients=(recipient,)))
    assert is_age_encrypted(ciphertext)

    monkeypatch.delenv("BACKUP_AGE_IDENTITY", raising=False)
    with pytest.raises(OpsConfigurationError, match="the log is encrypted and no age identity is configured"):
        decrypt_bytes(ciphertext, "the log")
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(x25519.Identity.generate()))
    with pytest.raises(DecryptionError, match="the log could not be decrypted"):
        decrypt_bytes(ciphertext, "the log")
    monkeypatch.setenv("BACKUP_AGE_IDENTITY", str(identity))
    assert decrypt_bytes(ciphertext, "the log") == b"names only"


def test_encrypt_bytes__with_a_passphrase_is_one_plain_age_scrypt_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ciphertext = encrypt_bytes(b"names only", EncryptionKeys(passphrase="correct horse battery staple"))

    assert pyrage.passphrase.decrypt(ciphertext, "correct horse battery staple") == b"names only"
    monkeypatch.setenv("BACKUP_AGE_PASSPHRASE", "wrong")
    with pytest.raises(DecryptionError, match="The passphrase does not open the log"):
        decrypt_bytes(ciphertext, "the log")
    monkeypatch.setenv("BACKUP_AGE_PASSPHRASE", "correct horse battery staple")
    assert decrypt_bytes(ciphertext, "the log") == b"names only"


def test_age_cli_tests__skip_saying_what_to_install_when_age_is_missing(tmp_path: Path) -> None:
    # A machine without the age CLI (PATH holds neither age nor age-keygen): skipped, not failed.
    tests = [
        "tests/test_encryption.py::test_age_cli__decrypts_recipient_and_passphrase_backups",
        "tests/test_normalize_media_urls.py::test_undo_log__the_age_cli_and_zstd_open_a_stored_log",
    ]
    env = {**os.environ, "PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *tests],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 skipped" in result.stdout, result.stdout[-3000:]
    assert result.stdout.count("needs the age CLI (age, age-keygen not found): apt-get install age") == 2
