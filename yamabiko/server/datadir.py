"""The dev-mode data dir: a random HS256 secret and a Fernet key, made once and kept.

Layout: ``<dir>/jwt_secret`` and ``<dir>/fernet.key``, one value per file, mode 0600, in
a directory made with mode 0700. Each file is written to a private temp file and then
hard-linked into place, so it is never seen half-written or world-readable, and two
servers starting at once agree on one value (the second link fails and it reads the
first). An existing file is never rewritten: a new secret would invalidate every token
and a new key would make every stored secret undecryptable, so a damaged file is an
error for the operator to resolve.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

import msgspec
from cryptography.fernet import Fernet

JWT_SECRET_FILE = "jwt_secret"
FERNET_KEY_FILE = "fernet.key"

logger = logging.getLogger("yamabiko.datadir")


class DataDirError(Exception):
    """The data dir is missing, unreadable or holds a damaged file."""


class DataDir(msgspec.Struct, frozen=True):
    """The values in a data dir; ``created`` is True only for the call that wrote one."""

    path: Path
    jwt_secret: str
    fernet_key: str
    created: bool

    def __repr__(self) -> str:
        return f"DataDir(path={self.path!r}, created={self.created!r})"


def ensure_data_dir(path: str | os.PathLike[str]) -> DataDir:
    """Return the data dir at ``path``, creating it and any missing value first.

    Idempotent: later calls (and other processes) read the same values.
    """
    root = Path(path).expanduser().absolute()
    try:
        if not root.is_dir():
            root.mkdir(mode=0o700, parents=True)
            root.chmod(0o700)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        if not root.is_dir():
            raise DataDirError(f"data dir {root} exists and is not a directory") from None
    except OSError as exc:
        raise DataDirError(f"cannot create data dir {root}: {exc.strerror or exc}") from None
    made_secret = _create(root / JWT_SECRET_FILE, secrets.token_urlsafe(48))
    made_key = _create(root / FERNET_KEY_FILE, Fernet.generate_key().decode())
    return _read(root, created=made_secret or made_key)


def read_data_dir(path: str | os.PathLike[str]) -> DataDir:
    """Return the data dir at ``path`` without creating anything (for ``yamabiko token``)."""
    root = Path(path).expanduser().absolute()
    if not (root / JWT_SECRET_FILE).exists() or not (root / FERNET_KEY_FILE).exists():
        raise DataDirError(f"no data dir at {root}: run `yamabiko serve` once, or pass --data-dir")
    return _read(root, created=False)


def _create(file: Path, value: str) -> bool:
    """Write ``value`` to ``file`` unless it exists; True if this call wrote it."""
    if file.exists():
        return False
    temp = file.with_name(f".{file.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, value.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, file)
        except FileExistsError:
            return False  # another process won the race; its value stands
        except OSError:
            os.replace(temp, file)  # file systems without hard links
        return True
    except OSError as exc:
        raise DataDirError(f"cannot write {file}: {exc.strerror or exc}") from None
    finally:
        temp.unlink(missing_ok=True)


def _read_value(file: Path) -> str:
    try:
        mode = file.stat().st_mode
        text = file.read_bytes().decode("ascii").strip()
    except OSError as exc:
        raise DataDirError(f"cannot read {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DataDirError(f"{file} is damaged (not ASCII text); restore it") from None
    if not text:
        raise DataDirError(f"{file} is empty; restore it (a new value would lock users out)")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("data dir file is readable by others", extra={"path": str(file)})
    return text


def _read(root: Path, *, created: bool) -> DataDir:
    jwt_secret = _read_value(root / JWT_SECRET_FILE)
    fernet_key = _read_value(root / FERNET_KEY_FILE)
    try:
        Fernet(fernet_key)
    except ValueError:
        raise DataDirError(
            f"{root / FERNET_KEY_FILE} is damaged (not a Fernet key); restore it, or stored "
            "secrets cannot be decrypted"
        ) from None
    return DataDir(path=root, jwt_secret=jwt_secret, fernet_key=fernet_key, created=created)
