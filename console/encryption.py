"""Encryption at rest for platform secrets.

A secret is stored as an envelope ``gcm1$<key id>$<nonce>$<ciphertext+tag>`` (AES-256-GCM,
pycryptodome). The associated data binds the envelope to the model and field it belongs to, so a
ciphertext copied into another column or table does not decrypt. The key id names the key that
encrypted it: ``CREDENTIALS_KEY`` encrypts, and ``CREDENTIALS_OLD_KEYS`` still decrypt until
``manage.py rotate_credentials_key`` has re-encrypted everything under the current key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as _random
from dataclasses import dataclass
from functools import cache

from Crypto.Cipher import AES
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

ENVELOPE_VERSION = "gcm1"
ENVELOPE_RE = re.compile(r"^gcm1\$([0-9a-f]{8})\$([A-Za-z0-9_-]{16})\$([A-Za-z0-9_-]{22,})$")
_NONCE_BYTES = 12
_KEY_BYTES = 32
# Secrets shorter than this show no characters at all: four characters of an eight-character
# token would be half of it.
_MIN_LENGTH_TO_SHOW_TAIL = 8


class CredentialDecryptError(Exception):
    """An envelope that the configured keys cannot open (wrong key, tampering, wrong column)."""


class Secret:
    """A plaintext secret that does not show itself.

    ``str()`` and ``repr()`` give a mask with at most the last four characters, so a secret that
    reaches a template, a log line or a traceback's local variables stays hidden. Code that
    really needs the value (a platform client) calls :meth:`reveal`.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    @property
    def tail(self) -> str:
        """The last four characters, or nothing for a short secret."""
        if len(self._value) < _MIN_LENGTH_TO_SHOW_TAIL:
            return ""
        return self._value[-4:]

    def masked(self) -> str:
        if not self._value:
            return ""
        return "••••" + self.tail

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        return f"<Secret {self.masked() or 'empty'}>"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            other = other._value
        if not isinstance(other, str):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other.encode())

    def __hash__(self) -> int:
        return hash(self._value)


class UnreadableSecret(Secret):
    """A stored envelope that no configured key opens. It is written back unchanged on save."""

    __slots__ = ("envelope",)

    def __init__(self, envelope: str) -> None:
        super().__init__("")
        self.envelope = envelope

    def reveal(self) -> str:
        raise CredentialDecryptError(
            "This secret cannot be decrypted with the configured CREDENTIALS_KEY or "
            "CREDENTIALS_OLD_KEYS."
        )

    @property
    def tail(self) -> str:
        return ""

    def masked(self) -> str:
        return "⚠"

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnreadableSecret) and other.envelope == self.envelope

    def __hash__(self) -> int:
        return hash(self.envelope)


@dataclass(frozen=True)
class CredentialKey:
    key_id: str
    material: bytes = b""

    def __repr__(self) -> str:
        return f"CredentialKey({self.key_id})"


def new_key_text() -> str:
    """A fresh key in the form CREDENTIALS_KEY expects."""
    return base64.urlsafe_b64encode(_random.token_bytes(_KEY_BYTES)).decode()


def parse_key(text: str, *, setting: str = "CREDENTIALS_KEY") -> CredentialKey:
    cleaned = text.strip()
    try:
        material = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        material = b""
    if len(material) != _KEY_BYTES:
        raise ImproperlyConfigured(
            f"{setting} must be {_KEY_BYTES} random bytes in base64 "
            "(generate one with: python -m console.envfile --new-key)."
        )
    digest = hashlib.sha256(b"console-credentials-key-id\0" + material).hexdigest()
    return CredentialKey(key_id=digest[:8], material=material)


class KeyRing:
    def __init__(self, current: CredentialKey, older: list[CredentialKey]) -> None:
        self.current = current
        self._by_id = {key.key_id: key for key in [*older, current]}

    @classmethod
    def from_settings(cls) -> KeyRing:
        return cls(
            parse_key(settings.CREDENTIALS_KEY),
            [
                parse_key(text, setting="CREDENTIALS_OLD_KEYS")
                for text in settings.CREDENTIALS_OLD_KEYS
                if text.strip()
            ],
        )

    def encrypt(self, plaintext: str, *, context: str) -> str:
        key = self.current
        nonce = _random.token_bytes(_NONCE_BYTES)
        cipher = AES.new(key.material, AES.MODE_GCM, nonce=nonce)
        cipher.update(_associated_data(key.key_id, context))
        ciphertext, tag = cipher.encrypt_and_digest(plaintext.encode("utf-8"))
        return "$".join([ENVELOPE_VERSION, key.key_id, _b64(nonce), _b64(ciphertext + tag)])

    def decrypt(self, envelope: str, *, context: str) -> str:
        match = ENVELOPE_RE.match(envelope)
        if not match:
            raise CredentialDecryptError("Not an encrypted credential envelope.")
        key_id, nonce_text, body_text = match.groups()
        key = self._by_id.get(key_id)
        if key is None:
            raise CredentialDecryptError(f"No configured key has id {key_id}.")
        try:
            nonce, body = _unb64(nonce_text), _unb64(body_text)
            cipher = AES.new(key.material, AES.MODE_GCM, nonce=nonce)
            cipher.update(_associated_data(key_id, context))
            plaintext = cipher.decrypt_and_verify(body[:-16], body[-16:])
            return plaintext.decode("utf-8")
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise CredentialDecryptError("The envelope does not authenticate.") from exc

    @staticmethod
    def key_id_of(envelope: str) -> str | None:
        match = ENVELOPE_RE.match(envelope)
        return match.group(1) if match else None


def _associated_data(key_id: str, context: str) -> bytes:
    return f"{ENVELOPE_VERSION}|{key_id}|{context}".encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@cache
def key_ring() -> KeyRing:
    return KeyRing.from_settings()


@receiver(setting_changed)
def _reset_key_ring(*, setting: str, **kwargs: object) -> None:
    if setting in {"CREDENTIALS_KEY", "CREDENTIALS_OLD_KEYS"}:
        key_ring.cache_clear()
