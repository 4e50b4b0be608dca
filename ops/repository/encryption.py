"""Encryption of backups at rest, in the age format (https://age-encryption.org), through pyrage.

Backups hold whatever personal data the database does, so they leave the machine encrypted. Two ways
to say who can read them:

- X25519 recipients (``age1...`` public keys, the recommended way): the server holds only public
  keys, so a compromised server cannot read old backups. The matching identity
  (``AGE-SECRET-KEY-1...``) is given only to a restore.
- A passphrase: each backup is encrypted to a fresh X25519 key, and that key is stored beside the
  backup, itself encrypted with the passphrase (age's scrypt recipient). pyrage can only encrypt
  with a passphrase in memory, and a key is tiny; the archive itself still streams.

Either way the archive stream is one standard age file: ``age -d -i key.txt`` decrypts it, and in
passphrase mode ``age -d -i identity.age`` (age asks for the passphrase to unlock that identity
file). Encryption and decryption stream through a pipe and a worker thread, so memory stays flat
whatever the archive's size.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import pyrage
from pyrage import x25519

from ops.conf import ops_setting
from ops.errors import OpsConfigurationError, OpsError

AGE_MAGIC = b"age-encryption.org/v1\n"
_KEY_SEPARATORS = re.compile(r"[\s,]+")


class ByteReader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class DecryptionError(OpsError):
    """The archive could not be decrypted with the keys given."""


def is_age_encrypted(head: bytes) -> bool:
    """Whether a stream beginning with ``head`` is an age file (binary form)."""
    return head.startswith(AGE_MAGIC)


def parse_recipients(text: str) -> list[x25519.Recipient]:
    """``age1...`` public keys separated by commas, spaces or new lines; comments (#) allowed."""
    keys = [key for line in text.splitlines() for key in _KEY_SEPARATORS.split(line.split("#", 1)[0]) if key]
    recipients = []
    for number, key in enumerate(keys, start=1):
        if key.startswith("AGE-SECRET-KEY-"):
            raise OpsConfigurationError(
                f"Recipient {number} is a secret key (AGE-SECRET-KEY-...), not a public one. "
                "Give the server only the public key: `age-keygen -y key.txt` prints it."
            )
        try:
            recipients.append(x25519.Recipient.from_str(key))
        except pyrage.RecipientError:
            raise OpsConfigurationError(
                f"Recipient {number} is not an age X25519 public key (they begin with 'age1'). "
                "Create a key pair with `age-keygen -o key.txt` and use the public key it prints."
            ) from None
    return recipients


def parse_identities(text: str) -> list[x25519.Identity]:
    """``AGE-SECRET-KEY-1...`` lines, as ``age-keygen`` writes them (comments allowed)."""
    identities = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            # Never echo the line: it may be a mangled secret key.
            raise OpsConfigurationError(
                "The age identity is not valid: expected lines beginning with 'AGE-SECRET-KEY-1' "
                "as `age-keygen` writes them."
            ) from None
    return identities


@dataclass(frozen=True)
class EncryptionKeys:
    """Who a new backup is encrypted to."""

    recipients: tuple[x25519.Recipient, ...] = ()
    passphrase: str | None = None

    def __post_init__(self) -> None:
        if bool(self.recipients) == bool(self.passphrase):
            raise OpsConfigurationError(
                "Encrypt backups either to age recipients or with a passphrase, not both."
            )


@dataclass(frozen=True)
class PreparedEncryption:
    """The keys one backup is written with, and what must be stored beside it to read it back."""

    recipients: tuple[x25519.Recipient, ...]
    # Passphrase mode only: the backup's own identity, encrypted with the passphrase.
    wrapped_identity: bytes | None


def prepare_encryption(keys: EncryptionKeys) -> PreparedEncryption:
    if keys.passphrase:
        identity = x25519.Identity.generate()
        wrapped = pyrage.passphrase.encrypt(f"{identity}\n".encode(), keys.passphrase)
        return PreparedEncryption(recipients=(identity.to_public(),), wrapped_identity=wrapped)
    return PreparedEncryption(recipients=keys.recipients, wrapped_identity=None)


def unwrap_identity(wrapped_identity: bytes, passphrase: str) -> x25519.Identity:
    try:
        text = pyrage.passphrase.decrypt(wrapped_identity, passphrase).decode()
    except pyrage.DecryptError:
        raise DecryptionError(
            "The passphrase does not open this backup. Set the passphrase it was taken with "
            "(OPS['ENCRYPTION_PASSPHRASE_ENV'] names the variable)."
        ) from None
    return parse_identities(text)[0]


def _env(setting: str) -> str:
    return os.environ.get(str(ops_setting(setting)), "").strip()


def _env_and_file(value_setting: str, file_setting: str, what: str) -> str:
    """The keys in the variable ``OPS[value_setting]`` names, then those of the file ``OPS[file_setting]``
    names (either may be unset)."""
    text = _env(value_setting)
    path = _env(file_setting)
    if path:
        try:
            text += "\n" + Path(path).read_text()
        except OSError as error:
            raise OpsConfigurationError(
                f"Cannot read the age {what} file named by {ops_setting(file_setting)} "
                f"({error.strerror}). Fix the path."
            ) from None
    return text


def encryption_keys_from_environment() -> EncryptionKeys | None:
    """The keys new backups are encrypted to, or None when encryption is not configured."""
    recipients_text = _env_and_file(
        "ENCRYPTION_RECIPIENTS_ENV", "ENCRYPTION_RECIPIENTS_FILE_ENV", "recipients"
    )
    passphrase = os.environ.get(str(ops_setting("ENCRYPTION_PASSPHRASE_ENV")), "")
    recipients = tuple(parse_recipients(recipients_text)) if recipients_text.strip() else ()
    if not recipients and not passphrase:
        return None
    return EncryptionKeys(recipients=recipients, passphrase=passphrase or None)


def identities_from_environment() -> list[x25519.Identity]:
    """The identities a restore decrypts with: the key itself, or a file holding it."""
    return parse_identities(
        _env_and_file("ENCRYPTION_IDENTITY_ENV", "ENCRYPTION_IDENTITY_FILE_ENV", "identity")
    )


def decryption_configured() -> bool:
    """Whether this environment holds a key that reads backups: an identity, or the passphrase.

    Where one is set, backups are expected to be encrypted; a restore refuses a plaintext one
    unless told otherwise (anyone can write plaintext, only the keys' owners can read).
    """
    passphrase = os.environ.get(str(ops_setting("ENCRYPTION_PASSPHRASE_ENV")), "")
    return bool(_env("ENCRYPTION_IDENTITY_ENV") or _env("ENCRYPTION_IDENTITY_FILE_ENV") or passphrase)


def decryption_identities(wrapped_identity: bytes | None) -> list[x25519.Identity]:
    """What decrypts a backup: its passphrase-wrapped identity, else the configured identities."""
    if wrapped_identity is not None:
        passphrase = os.environ.get(str(ops_setting("ENCRYPTION_PASSPHRASE_ENV")), "")
        if not passphrase:
            raise OpsConfigurationError(
                "This backup is encrypted with a passphrase. Set it in the variable named by "
                f"OPS['ENCRYPTION_PASSPHRASE_ENV'] ({ops_setting('ENCRYPTION_PASSPHRASE_ENV')})."
            )
        return [unwrap_identity(wrapped_identity, passphrase)]
    identities = identities_from_environment()
    if not identities:
        raise OpsConfigurationError(
            "This backup is encrypted and no age identity is configured. Set the secret key "
            f"in {ops_setting('ENCRYPTION_IDENTITY_ENV')} or a file path in "
            f"{ops_setting('ENCRYPTION_IDENTITY_FILE_ENV')}; keep it off the server otherwise."
        )
    return identities


class _WorkerFailure:
    def __init__(self) -> None:
        self.error: BaseException | None = None
        # The toolkit's own error raised by the sink or source the worker used (a failed upload, a
        # damaged part): pyrage reports it only as its type, so it is kept here and raised instead.
        self.cause: OpsError | None = None


class _Watched:
    """The sink or source handed to pyrage: an OpsError it raises is recorded as the cause."""

    def __init__(self, target: Any, failure: _WorkerFailure) -> None:
        self._target = target
        self._failure = failure

    def write(self, data: bytes) -> int:
        try:
            return int(self._target.write(data))
        except OpsError as error:
            self._failure.cause = error
            raise

    def read(self, size: int = -1) -> bytes:
        try:
            return bytes(self._target.read(size))
        except OpsError as error:
            self._failure.cause = error
            raise

    def flush(self) -> None:
        flush = getattr(self._target, "flush", None)
        if flush is not None:
            flush()


def _run(failure: _WorkerFailure, function: Any, *args: Any) -> None:
    try:
        function(*args)
    except BaseException as error:  # handed to the caller's thread, which raises it
        failure.error = error


@contextlib.contextmanager
def encrypting(sink: IO[bytes], recipients: Sequence[x25519.Recipient]) -> Iterator[IO[bytes]]:
    """A writable stream: what is written to it reaches ``sink`` as one age file.

    The age file is complete only when the block exits without an error.
    """
    read_fd, write_fd = os.pipe()
    failure = _WorkerFailure()
    with os.fdopen(read_fd, "rb", buffering=0) as pipe_out:

        def encrypt() -> None:
            try:
                pyrage.encrypt_io(pipe_out, _Watched(sink, failure), list(recipients))
            except BaseException:
                # Nobody reads the pipe any more: the writer must fail now (BrokenPipeError), not
                # block forever once the pipe is full.
                pipe_out.close()
                raise

        worker = threading.Thread(target=_run, args=(failure, encrypt), daemon=True)
        worker.start()
        pipe_in = os.fdopen(write_fd, "wb")
        try:
            yield pipe_in
        except BrokenPipeError:
            worker.join()
            if failure.error is None:
                raise
            # The worker's error, raised below, says what went wrong.
        finally:
            with contextlib.suppress(BrokenPipeError, ValueError):
                pipe_in.close()
            worker.join()
    if failure.cause is not None:
        raise failure.cause from None
    if failure.error is not None:
        raise OpsError(f"Encrypting the backup failed ({type(failure.error).__name__}).") from failure.error


class _DecryptedReader:
    """The read end of the decryption pipe; at its end, the worker's verdict is raised."""

    def __init__(self, pipe_out: IO[bytes], worker: threading.Thread, failure: _WorkerFailure) -> None:
        self._pipe_out = pipe_out
        self._worker = worker
        self._failure = failure

    def read(self, size: int = -1) -> bytes:
        data = self._pipe_out.read(size)
        if not data and size != 0:
            self._worker.join()
            self._raise_if_failed()
        return data

    def readable(self) -> bool:
        return True

    def _raise_if_failed(self) -> None:
        error = self._failure.error
        if error is None:
            return
        if self._failure.cause is not None:
            raise self._failure.cause from None
        if isinstance(error, pyrage.DecryptError):
            raise DecryptionError(
                "The backup could not be decrypted: the age identity does not match any of its "
                "recipients, or the file is damaged. Use the key it was encrypted to."
            ) from None
        raise DecryptionError(f"Decrypting the backup failed ({type(error).__name__}).") from None


@contextlib.contextmanager
def decrypting(source: ByteReader, identities: Sequence[x25519.Identity]) -> Iterator[ByteReader]:
    """A readable stream of the plaintext of the age file read from ``source``.

    A wrong key or a damaged file raises DecryptionError from ``read()`` (at the latest when the
    end is reached), so nothing read from it may be trusted before then: callers verify
    checksums before writing anything.
    """
    read_fd, write_fd = os.pipe()
    failure = _WorkerFailure()
    pipe_in = os.fdopen(write_fd, "wb")

    def decrypt() -> None:
        try:
            pyrage.decrypt_io(_Watched(source, failure), pipe_in, list(identities))
        finally:
            with contextlib.suppress(BrokenPipeError):
                pipe_in.close()

    worker = threading.Thread(target=_run, args=(failure, decrypt), daemon=True)
    with os.fdopen(read_fd, "rb") as pipe_out:
        worker.start()
        try:
            yield _DecryptedReader(pipe_out, worker, failure)
        finally:
            pipe_out.close()  # a reader that stops early unblocks the worker (BrokenPipe)
            worker.join()


# --- small payloads (undo logs): whole in memory, one age file ----------------------------------


def encrypt_bytes(data: bytes, keys: EncryptionKeys) -> bytes:
    """``data`` as one age file: to the recipients, or with the passphrase itself (age's scrypt).

    A small payload needs no per-file key beside it: ``age -d`` asks for the passphrase directly.
    """
    if keys.passphrase:
        return bytes(pyrage.passphrase.encrypt(data, keys.passphrase))
    return bytes(pyrage.encrypt(data, list(keys.recipients)))


def _is_passphrase_file(data: bytes) -> bool:
    header = data[: data.find(b"\n---")] if b"\n---" in data else data[:4096]
    return b"\n-> scrypt " in header


def decrypt_bytes(data: bytes, what: str) -> bytes:
    """The plaintext of an age file made by ``encrypt_bytes``, with the keys of the environment.

    ``what`` names the file in messages ("the undo log ...").
    """
    if _is_passphrase_file(data):
        passphrase = os.environ.get(str(ops_setting("ENCRYPTION_PASSPHRASE_ENV")), "")
        if not passphrase:
            raise OpsConfigurationError(
                f"{what} is encrypted with a passphrase. Set it in the variable named by "
                f"OPS['ENCRYPTION_PASSPHRASE_ENV'] ({ops_setting('ENCRYPTION_PASSPHRASE_ENV')})."
            )
        try:
            return bytes(pyrage.passphrase.decrypt(data, passphrase))
        except pyrage.DecryptError:
            raise DecryptionError(
                f"The passphrase does not open {what}. Set the one it was written with."
            ) from None
    identities = identities_from_environment()
    if not identities:
        raise OpsConfigurationError(
            f"{what} is encrypted and no age identity is configured. Set the secret key in "
            f"{ops_setting('ENCRYPTION_IDENTITY_ENV')} or a file path in "
            f"{ops_setting('ENCRYPTION_IDENTITY_FILE_ENV')} for this command only."
        )
    try:
        return bytes(pyrage.decrypt(data, list(identities)))
    except pyrage.DecryptError:
        raise DecryptionError(
            f"{what} could not be decrypted: the age identity does not match any of its recipients, "
            "or the file is damaged. Use the key it was encrypted to."
        ) from None
