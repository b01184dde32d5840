"""Secret encryption, without a database."""

from __future__ import annotations

import pytest
from cryptography.fernet import InvalidToken

from yamabiko.store.crypto import SecretBox, generate_key
from yamabiko.store.errors import StoreConfigError


def test_round_trip_and_tokens_differ() -> None:
    box = SecretBox([generate_key()])
    first, second = box.encrypt("sk-secret"), box.encrypt("sk-secret")
    assert first != second
    assert "sk-secret" not in first
    assert box.decrypt(first) == box.decrypt(second) == "sk-secret"


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old, new = generate_key(), generate_key()
    legacy = SecretBox([old]).encrypt("v")
    both = SecretBox([new, old])
    assert both.decrypt(legacy) == "v"
    rotated = both.rotate(legacy)
    assert SecretBox([new]).decrypt(rotated) == "v"
    with pytest.raises(InvalidToken):
        SecretBox([old]).decrypt(rotated)


def test_repr_shows_no_key() -> None:
    key = generate_key()
    assert key not in repr(SecretBox([key, generate_key()]))
    assert repr(SecretBox([key])) == "SecretBox(key_count=1)"


def test_a_malformed_key_is_named_by_position_only() -> None:
    bad = "c2hvcnQ="
    with pytest.raises(StoreConfigError, match="key #2") as caught:
        SecretBox([generate_key(), bad])
    assert bad not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_one_string_is_not_a_list_of_keys() -> None:
    with pytest.raises(StoreConfigError, match="list"):
        SecretBox(generate_key())
