from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from yamabiko.server.settings import (
    Settings,
    SettingsError,
    load_settings,
    settings_help,
    sqlite_path,
)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def error_of(**kwargs: object) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(**kwargs)  # type: ignore[arg-type]
    return str(info.value)


def test_defaults() -> None:
    settings = load_settings(env={})
    assert settings == Settings()
    assert settings.port == 8765
    assert settings.log_level == "INFO"
    assert settings.encryption_keys == ()
    assert settings.dev is None
    assert settings.dev_mode is True
    assert settings.uses_data_dir_secret is True


def test_effective_database_url_defaults_to_sqlite_in_data_dir(tmp_path: Path) -> None:
    settings = load_settings(env={"YAMABIKO_DATA_DIR": str(tmp_path / "d")})
    assert settings.effective_database_url == f"sqlite:///{tmp_path}/d/yamabiko.db"
    assert sqlite_path(settings.effective_database_url) == f"{tmp_path}/d/yamabiko.db"
    given = load_settings(env={"YAMABIKO_DATABASE_URL": "postgresql://db/x"})
    assert given.effective_database_url == "postgresql://db/x"


def test_each_source_and_precedence(tmp_path: Path) -> None:
    config = write_toml(tmp_path, 'port = 1000\nhost = "0.0.0.0"\nlog_level = "debug"\n')
    assert load_settings(env={}, config_file=config).port == 1000
    env = {"YAMABIKO_PORT": "2000", "YAMABIKO_MCP_PORT": "2001"}
    from_env = load_settings(env=env, config_file=config)
    assert (from_env.port, from_env.mcp_port, from_env.host) == (2000, 2001, "0.0.0.0")
    assert from_env.log_level == "DEBUG"
    top = load_settings(env=env, config_file=config, overrides={"port": 3000, "host": None})
    assert (top.port, top.mcp_port, top.host) == (3000, 2001, "0.0.0.0")


def test_config_file_from_env_and_yamabiko_table(tmp_path: Path) -> None:
    config = write_toml(tmp_path, "[yamabiko]\nport = 1234\n\n[other_tool]\nanything = 1\n")
    assert load_settings(env={"YAMABIKO_CONFIG": str(config)}).port == 1234


def test_env_empty_means_unset_and_unknown_vars_ignored() -> None:
    env = {"YAMABIKO_PORT": "", "YAMABIKO_NOT_A_SETTING": "x", "YAMABIKO_TEST_FOO": "1"}
    assert load_settings(env=env).port == 8765


def test_comma_lists() -> None:
    keys = [Fernet.generate_key().decode() for _ in range(2)]
    settings = load_settings(
        env={
            "YAMABIKO_ALLOWED_ORIGINS": "https://a.example, ,https://b.example,",
            "YAMABIKO_ENCRYPTION_KEYS": ",".join(keys),
        }
    )
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.encryption_keys == tuple(keys)
    cli = load_settings(
        env={}, overrides={"allowed_origins": "https://c.example", "data_dir": Path("/x")}
    )
    assert cli.allowed_origins == ("https://c.example",)
    assert cli.data_dir == "/x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        ("ON", True),
        ("0", False),
        ("no", False),
        ("OFF", False),
    ],
)
def test_bool_parsing(text: str, expected: bool) -> None:
    settings = load_settings(env={"YAMABIKO_COMPRESSION": text, "YAMABIKO_DEV": text})
    assert settings.compression is expected
    assert settings.dev is expected


def test_bad_bool_names_variable() -> None:
    message = error_of(env={"YAMABIKO_COMPRESSION": "maybe"})
    assert message.startswith("YAMABIKO_COMPRESSION:")
    assert "'maybe'" in message


def test_bad_value_from_env_names_variable() -> None:
    assert error_of(env={"YAMABIKO_PORT": "abc"}) == "YAMABIKO_PORT: Expected int, got 'abc'"
    message = error_of(env={"YAMABIKO_PORT": "70000"})
    assert message == "YAMABIKO_PORT: Expected int <= 65535, got '70000'"


def test_bad_value_from_file_names_key_and_file(tmp_path: Path) -> None:
    config = write_toml(tmp_path, "port = -5\n")
    assert error_of(env={}, config_file=config) == (f"port ({config}): Expected int >= 0, got -5")


def test_bad_value_from_overrides_names_flag() -> None:
    message = error_of(env={}, overrides={"max_message_bytes": 10})
    assert message == "--max-message-bytes: Expected int >= 1024, got 10"
    assert error_of(env={}, overrides={"port": "x"}).startswith("--port: ")


def test_bad_log_level_lists_choices() -> None:
    message = error_of(env={"YAMABIKO_LOG_LEVEL": "verbose"})
    assert message.startswith("YAMABIKO_LOG_LEVEL: expected one of DEBUG, INFO, WARNING, ERROR")


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    config = write_toml(tmp_path, "prot = 1\n")
    message = error_of(env={}, config_file=config)
    assert message.startswith(f"prot ({config}): unknown setting")
    assert "'port'" in message  # the close match is suggested


def test_unknown_override_is_an_error() -> None:
    assert error_of(env={}, overrides={"nope": 1}) == "--nope: unknown setting"


def test_missing_and_invalid_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert str(missing) in error_of(env={}, config_file=missing)
    broken = write_toml(tmp_path, "port = = 1\n")
    message = error_of(env={}, config_file=broken)
    assert str(broken) in message
    assert "invalid TOML" in message


def test_bad_fernet_key_names_position_without_echoing_it() -> None:
    good = Fernet.generate_key().decode()
    bad = "not-a-fernet-key-but-secretish"
    message = error_of(env={"YAMABIKO_ENCRYPTION_KEYS": f"{good},{bad}"})
    assert message.startswith("YAMABIKO_ENCRYPTION_KEYS: key 2 of 2 is not a valid Fernet key")
    assert bad not in message
    assert good not in message


@pytest.mark.parametrize(
    "url", ["sqlite:///data.db", "sqlite:////abs/data.db", "postgresql://u@h/db", "postgres://h"]
)
def test_database_url_accepted(url: str) -> None:
    assert load_settings(env={"YAMABIKO_DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize("url", ["mysql://u:hunter2@h/db", "sqlite://rel.db", "sqlite:///", "x"])
def test_database_url_rejected_without_echo(url: str) -> None:
    message = error_of(env={"YAMABIKO_DATABASE_URL": url})
    assert message.startswith("YAMABIKO_DATABASE_URL: expected sqlite:///PATH")
    assert "hunter2" not in message


def test_redis_url_validated() -> None:
    for url in ["redis://h:6379/0", "rediss://h", "unix:///run/redis.sock"]:
        assert load_settings(env={"YAMABIKO_REDIS_URL": url}).redis_url == url
    assert error_of(env={"YAMABIKO_REDIS_URL": "http://h"}).startswith("YAMABIKO_REDIS_URL:")


def test_public_key_file_must_exist_and_excludes_jwks(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    message = error_of(env={"YAMABIKO_JWT_PUBLIC_KEY_FILE": missing})
    assert message.startswith("YAMABIKO_JWT_PUBLIC_KEY_FILE:")
    pem = tmp_path / "key.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\n")
    settings = load_settings(env={"YAMABIKO_JWT_PUBLIC_KEY_FILE": str(pem)})
    assert settings.uses_data_dir_secret is False
    assert settings.dev_mode is False
    message = error_of(
        env={"YAMABIKO_JWT_PUBLIC_KEY_FILE": str(pem)},
        overrides={"jwt_jwks_url": "https://idp/jwks"},
    )
    assert "mutually exclusive" in message
    assert "--jwt-jwks-url" in message


def test_repr_hides_secrets() -> None:
    key = Fernet.generate_key().decode()
    settings = Settings(
        jwt_secret="s3cr3t-value",
        encryption_keys=(key,),
        database_url="postgresql://u:hunter2@h/db",
    )
    text = repr(settings)
    assert "s3cr3t-value" not in text
    assert key not in text
    assert "hunter2" not in text
    assert "postgresql://u:***@h/db" in text


def test_settings_help_covers_every_field() -> None:
    rows = settings_help()
    names = [name for name, _, _ in rows]
    assert len(rows) == len(Settings.__struct_fields__)
    for fixed in ["HOST", "PORT", "DATA_DIR", "LOG_LEVEL", "JWT_SECRET", "ALLOWED_ORIGINS"]:
        assert f"YAMABIKO_{fixed}" in names
    assert rows[names.index("YAMABIKO_PORT")][:2] == ("YAMABIKO_PORT", "8765")
    assert all(description for _, _, description in rows)
