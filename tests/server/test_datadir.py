from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from yamabiko.server.datadir import DataDirError, ensure_data_dir, read_data_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_creates_dir_and_files_with_private_modes(tmp_path: Path) -> None:
    root = tmp_path / "nested" / "data"
    data = ensure_data_dir(root)
    assert data.created is True
    assert data.path == root
    assert mode(root) == 0o700
    assert mode(root / "jwt_secret") == 0o600
    assert mode(root / "fernet.key") == 0o600
    assert len(data.jwt_secret) >= 64
    Fernet(data.fernet_key)
    assert sorted(p.name for p in root.iterdir()) == ["fernet.key", "jwt_secret"]


def test_idempotent(tmp_path: Path) -> None:
    first = ensure_data_dir(tmp_path / "d")
    second = ensure_data_dir(tmp_path / "d")
    assert second.created is False
    assert (second.jwt_secret, second.fernet_key) == (first.jwt_secret, first.fernet_key)
    assert read_data_dir(tmp_path / "d") == second


def test_fresh_dirs_get_different_secrets(tmp_path: Path) -> None:
    a, b = ensure_data_dir(tmp_path / "a"), ensure_data_dir(tmp_path / "b")
    assert a.jwt_secret != b.jwt_secret
    assert a.fernet_key != b.fernet_key


def test_read_never_creates(tmp_path: Path) -> None:
    root = tmp_path / "absent"
    with pytest.raises(DataDirError, match=r"no data dir at .*absent: run `yamabiko serve`"):
        read_data_dir(root)
    assert not root.exists()


def test_empty_secret_is_an_error_not_regenerated(tmp_path: Path) -> None:
    ensure_data_dir(tmp_path)
    (tmp_path / "jwt_secret").write_text("")
    with pytest.raises(DataDirError, match="jwt_secret is empty"):
        ensure_data_dir(tmp_path)
    assert (tmp_path / "jwt_secret").read_text() == ""


def test_corrupt_fernet_key_is_an_error(tmp_path: Path) -> None:
    ensure_data_dir(tmp_path)
    (tmp_path / "fernet.key").write_text("garbage\n")
    with pytest.raises(DataDirError, match=r"fernet\.key is damaged"):
        read_data_dir(tmp_path)


def test_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataDirError, match="not a directory"):
        ensure_data_dir(tmp_path / "f")


def test_repr_hides_values(tmp_path: Path) -> None:
    data = ensure_data_dir(tmp_path)
    assert data.jwt_secret not in repr(data)
    assert data.fernet_key not in repr(data)
