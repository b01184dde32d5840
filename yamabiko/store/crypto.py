"""Encryption of stored secrets: Fernet through ``MultiFernet``.

The first key encrypts; every key decrypts. Rotating keys is: put a new key first, run
``rotate`` over every stored token (``yamabiko rotate-keys``), then drop the old key.
Neither this object's repr nor any error it raises contains a key or a plaintext.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from yamabiko.store.errors import StoreConfigError

__all__ = ["InvalidToken", "SecretBox", "generate_key"]


def generate_key() -> str:
    """A fresh Fernet key (url-safe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Encrypts and decrypts secret values with a list of Fernet keys (first encrypts).

    Raises :class:`StoreConfigError` for an empty list or a malformed key, naming the
    key's position, never the key. ``decrypt`` and ``rotate`` raise
    :class:`cryptography.fernet.InvalidToken` when no key opens the token.
    """

    __slots__ = ("_fernet", "_key_count")

    def __init__(self, keys: Sequence[str]) -> None:
        if isinstance(keys, str):
            # A lone string is a sequence of characters: refuse it rather than treat
            # each character as a key.
            raise StoreConfigError("encryption keys must be a list of keys, not one string")
        if not keys:
            raise StoreConfigError("at least one encryption key is required")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip()))
            except (ValueError, TypeError):
                # from None: the original error's context would carry the key.
                raise StoreConfigError(
                    f"encryption key #{position} is not a Fernet key (url-safe base64 of 32 bytes)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._key_count = len(fernets)

    def __repr__(self) -> str:
        return f"SecretBox(key_count={self._key_count})"

    def encrypt(self, plaintext: str) -> str:
        """The Fernet token for ``plaintext``, made with the first key."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The plaintext of a token made with any of the keys."""
        return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")

    def rotate(self, token: str) -> str:
        """The same plaintext, re-encrypted with the first key."""
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")
