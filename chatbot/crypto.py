"""WXBizMsgCrypt, the message encryption of the dialogue platform (PLATFORM.md, section 4).

This module imports only pycryptodome and the standard library, never Django, so that it can be
tested, benchmarked and audited on its own.

Why decryption is strict: the scheme is AES-CBC without authentication, so a forged or damaged
ciphertext decrypts to *something*. Several SDKs slice the plaintext without checking the
padding, the length field or the appid and hand back garbage (or another app's message). Every
structural check here turns such input into one exception type, ``CryptoError``.

The messages of ``CryptoError`` say which check failed, for our logs. They are a padding oracle
if they reach whoever sent the ciphertext: callers answering a remote party must map every
``CryptoError`` to one generic reply.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable

from Crypto.Cipher import AES
from Crypto.Util.strxor import strxor

__all__ = [
    "CryptoError",
    "WXBizMsgCrypt",
    "decrypt_payload",
    "encrypt_payload",
    "validate_encoding_aes_key",
]

# The scheme pads to 32 bytes although AES blocks are 16: Tencent's samples did so and every
# peer expects pad values up to 32.
_PAD_BLOCK = 32
_PREFIX_LEN = 16
_KEY_LEN = 32
_ENCODING_AES_KEY_LEN = 43
_HEADER_LEN = _PREFIX_LEN + 4
# Smallest well-formed ciphertext: prefix, length field, an appid of at least one byte and the
# padding fill one 32-byte block.
_MIN_CIPHERTEXT_LEN = 32
_MAX_MESSAGE_LEN = 0xFFFFFFFF

_LENGTH_FIELD = struct.Struct(">I")
# Built once: padding is then a lookup instead of a bytes construction per message.
_PADDING = tuple(bytes((n,)) * n for n in range(_PAD_BLOCK + 1))


class CryptoError(ValueError):
    """The one exception type for every refused input."""


def validate_encoding_aes_key(value: str) -> None:
    """Raise CryptoError unless value is exactly 43 characters of (standard) base64 that decode,
    with one '=' appended, to 32 bytes.

    Separate from the constructor so that forms can refuse a mistyped key when it is entered,
    long before the first message fails.
    """
    _key_from_encoding_aes_key(value)


def _key_from_encoding_aes_key(value: str) -> bytes:
    if not isinstance(value, str):
        raise CryptoError("EncodingAESKey must be a string")
    if len(value) != _ENCODING_AES_KEY_LEN:
        raise CryptoError("EncodingAESKey must be 43 characters long")
    try:
        key = base64.b64decode(value + "=", validate=True)
    except (binascii.Error, ValueError):
        # ValueError: non-ASCII characters in a str.
        raise CryptoError("EncodingAESKey is not valid base64") from None
    if len(key) != _KEY_LEN:
        # Unreachable for 43 valid characters; kept so that the length is never an assumption.
        raise CryptoError("EncodingAESKey does not decode to 32 bytes")
    return key


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes | bytearray | memoryview):
        raise CryptoError("key must be bytes")
    key = bytes(key)
    if len(key) != _KEY_LEN:
        raise CryptoError("key must be 32 bytes")
    return key


def _appid_bytes(appid: str) -> bytes:
    if not isinstance(appid, str):
        raise CryptoError("appid must be a string")
    if not appid:
        # An empty appid would make the trailing-appid check accept any message.
        raise CryptoError("appid must not be empty")
    try:
        return appid.encode("utf-8")
    except UnicodeEncodeError:
        raise CryptoError("appid is not encodable as UTF-8") from None


def _encrypt(key: bytes, iv: bytes, appid: bytes, text: str, prefix: bytes) -> str:
    if not isinstance(text, str):
        raise CryptoError("message must be a string")
    try:
        message = text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: the peer would be unable to decode what we sent.
        raise CryptoError("message is not encodable as UTF-8") from None
    if len(message) > _MAX_MESSAGE_LEN:
        raise CryptoError("message too long for the 32-bit length field")
    unpadded = _PREFIX_LEN + 4 + len(message) + len(appid)
    plaintext = b"".join(
        (
            prefix,
            _LENGTH_FIELD.pack(len(message)),
            message,
            appid,
            _PADDING[_PAD_BLOCK - unpadded % _PAD_BLOCK],
        )
    )
    # A fresh cipher object per message: CBC state must restart from the IV each time.
    ciphertext = AES.new(key, AES.MODE_CBC, iv=iv).encrypt(plaintext)
    return binascii.b2a_base64(ciphertext, newline=False).decode("ascii")


def _decrypt(
    decrypt_blocks: Callable[[bytes], bytes], iv: bytes, appid: bytes, encrypted: str
) -> str:
    if not isinstance(encrypted, str):
        raise CryptoError("ciphertext must be a string")
    try:
        ciphertext = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError):
        raise CryptoError("ciphertext is not valid base64") from None
    size = len(ciphertext)
    # CPython's strict mode still accepts surplus '=' after a whole group and non-zero unused
    # bits in the last character. Requiring the one canonical spelling (checked on the length
    # and the last group only, to stay cheap on large messages) leaves no second encoding of a
    # ciphertext.
    tail = size % 3 or 3
    if len(encrypted) != 4 * ((size + 2) // 3) or (
        size and binascii.b2a_base64(ciphertext[-tail:], newline=False) != encrypted[-4:].encode()
    ):
        raise CryptoError("ciphertext is not valid base64")
    if size % AES.block_size or size < _MIN_CIPHERTEXT_LEN:
        raise CryptoError("ciphertext length is not a multiple of 16 of at least 32 bytes")

    # CBC decryption by its definition, P[i] = D(C[i]) xor C[i-1] with C[-1] = IV: the block
    # decryptions are independent, so one ECB call over the whole message (key schedule made
    # once per instance, pipelined AES-NI) replaces pycryptodome's block-by-block CBC, which
    # measured 3-6x slower (bench/crypto_throughput.py). Encryption has no such shortcut.
    plaintext = strxor(decrypt_blocks(ciphertext), iv + ciphertext[: -AES.block_size])
    pad = plaintext[-1]
    if not 1 <= pad <= _PAD_BLOCK:
        raise CryptoError("padding byte out of range")
    end = size - pad
    if plaintext[end:] != _PADDING[pad]:
        raise CryptoError("padding bytes inconsistent")
    if end < _HEADER_LEN:
        raise CryptoError("plaintext too short for prefix and length field")

    (length,) = _LENGTH_FIELD.unpack_from(plaintext, _PREFIX_LEN)
    message_end = _HEADER_LEN + length
    if message_end > end:
        raise CryptoError("length field exceeds the plaintext")
    # The whole tail must be our appid: a prefix or suffix match would accept other apps' data.
    view = memoryview(plaintext)
    if view[message_end:end] != appid:
        raise CryptoError("appid mismatch")
    try:
        return str(view[_HEADER_LEN:message_end], "utf-8")
    except UnicodeDecodeError:
        raise CryptoError("message is not valid UTF-8") from None


def encrypt_payload(key: bytes, appid: str, text: str, *, prefix: bytes) -> str:
    """Encrypt with a caller-chosen prefix.

    The prefix is a parameter so that fixed test vectors can be reproduced; production code goes
    through ``WXBizMsgCrypt.encrypt``, which draws it from ``secrets``.
    """
    key = _check_key(key)
    if not isinstance(prefix, bytes | bytearray | memoryview) or len(prefix) != _PREFIX_LEN:
        raise CryptoError("prefix must be 16 bytes")
    return _encrypt(key, key[:16], _appid_bytes(appid), text, bytes(prefix))


def decrypt_payload(key: bytes, appid: str, encrypted: str) -> str:
    """Decrypt and check a payload; every malformed input raises CryptoError."""
    key = _check_key(key)
    return _decrypt(AES.new(key, AES.MODE_ECB).decrypt, key[:16], _appid_bytes(appid), encrypted)


class WXBizMsgCrypt:
    """One bot's credentials, named after Tencent's sample class so that the seeds read directly.

    Key, IV and encoded appid are derived once here rather than per message.
    """

    __slots__ = ("_appid", "_appid_bytes", "_decrypt_blocks", "_iv", "_key", "_token")

    def __init__(self, token: str, encoding_aes_key: str, appid: str) -> None:
        if not isinstance(token, str):
            raise CryptoError("token must be a string")
        self._key: bytes = _key_from_encoding_aes_key(encoding_aes_key)
        self._iv: bytes = self._key[:16]
        # ECB keeps no state between calls (unlike CBC), so one object serves every decryption
        # and the key schedule is computed once.
        self._decrypt_blocks: Callable[[bytes], bytes] = AES.new(self._key, AES.MODE_ECB).decrypt
        self._appid_bytes: bytes = _appid_bytes(appid)
        self._appid: str = appid
        self._token: str = token

    def __repr__(self) -> str:
        # Token and key end up in logs and tracebacks through repr; the appid is public.
        return f"{type(self).__name__}(appid={self._appid!r})"

    def encrypt(self, text: str) -> str:
        return _encrypt(
            self._key, self._iv, self._appid_bytes, text, secrets.token_bytes(_PREFIX_LEN)
        )

    def decrypt(self, text: str) -> str:
        return _decrypt(self._decrypt_blocks, self._iv, self._appid_bytes, text)

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        parts = (self._token, timestamp, nonce, encrypted)
        if not all(isinstance(part, str) for part in parts):
            raise CryptoError("signature inputs must be strings")
        try:
            # Code-point order of str equals byte order of UTF-8, which is what the SDKs sort.
            joined = "".join(sorted(parts)).encode("utf-8")
        except UnicodeEncodeError:
            raise CryptoError("signature inputs are not encodable as UTF-8") from None
        return hashlib.sha1(joined).hexdigest()  # noqa: S324 - SHA-1 is fixed by the protocol

    def verify_signature(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> bool:
        """Check a callback signature in constant time, so that timing reveals no prefix of it."""
        expected = self.signature(timestamp, nonce, encrypted)
        if not isinstance(signature, str):
            return False
        # Bytes, because compare_digest refuses non-ASCII str and the signature is attacker input.
        return hmac.compare_digest(
            signature.encode("utf-8", "surrogatepass"), expected.encode("ascii")
        )
