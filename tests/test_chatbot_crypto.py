"""Tests for chatbot.crypto, the WXBizMsgCrypt scheme of PLATFORM.md section 4.

Three sources of truth that do not share code with the module under test: ciphertexts made with
the openssl command line, wechatpy (which runs on `cryptography`, not on pycryptodome), and
plaintexts framed by hand below for the malformed-input cases.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from Crypto.Cipher import AES
from hypothesis import HealthCheck, example, given, settings, strategies as st
from wechatpy.crypto import _get_signature
from wechatpy.crypto.base import BasePrpCrypto

from chatbot import crypto
from chatbot.crypto import (
    CryptoError,
    WXBizMsgCrypt,
    decrypt_payload,
    encrypt_payload,
    validate_encoding_aes_key,
)

# The suite's autouse cache fixture is function-scoped; it is harmless to share between
# hypothesis examples, which touch no cache.
hypothesis_settings = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)

# --- Fixed vectors -------------------------------------------------------------------------------
# Produced without chatbot.crypto, by a throwaway bash script (OpenSSL 3.0.19):
#   KEYHEX=$(printf '%s=' "$ENCODING_AES_KEY" | base64 -d | od -An -tx1 -v | tr -d ' \n')
#   IVHEX=${KEYHEX:0:32}
#   { printf '%s' "$PREFIX_HEX" | xxd -r -p            # 16-byte prefix
#     printf '%08x' "$(stat -c %s msg)" | xxd -r -p     # uint32 big-endian UTF-8 length
#     cat msg; printf '%s' "$APPID"; } > plain.bin      # message, appid
#   L=$(stat -c %s plain.bin); PAD=$((32 - L % 32))     # PKCS#7 to 32 bytes, PAD in 1..32
#   for _ in $(seq $PAD); do printf "\\x$(printf %02x $PAD)"; done >> plain.bin
#   openssl enc -aes-256-cbc -K "$KEYHEX" -iv "$IVHEX" -nopad -in plain.bin | openssl base64 -A
# The message files were written with printf '%s' (UTF-8, no trailing newline).
# Vector 1 is chosen so that the unpadded plaintext is exactly 64 bytes: a full block of padding
# (pad value 32), the case implementations most often get wrong.
VECTORS = [
    {
        "id": "ascii-full-pad-block",
        "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "appid": "wxb11529c136998cb6",
        "prefix_hex": "000102030405060708090a0b0c0d0e0f",
        "message": "abcdefghijklmnopqrstuvwxyz",
        "ciphertext": (
            "IG+0eOkLdhYW9kHtuT3HYwYfHaFTUd4ONgIpT+zJC8JHwjiCYe0/v8bZb7iqE/ahygpOlw+IVepwqCcLwGHZ"
            "wbI7AlOCGy96CbBpKj9uZgOmFbjeVlC/gLG1bXzU4dgl"
        ),
    },
    {
        "id": "chinese-and-astral",
        "encoding_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
        "appid": "wx5823bf96d3bd56c7",
        "prefix_hex": "6a8f3c1e9b7d2a4f0e5c8b1d3f6a9c2e",
        "message": "你好，世界！这是对话开放平台的测试消息。\U0001f916",
        "ciphertext": (
            "tO8/GJauZ/hJWP8zAnC2vMNAAeyXdhFP/oYIYSyYXUJH8L9ALI3jBku5xLUXiT+nhLoJKJkTeVn3bOo78B8q"
            "pVGVVts4Md58ylpvusdEUCGM/qXqZ1NvYFpYQ8roOfLXAbMZhTgiHMlIERxCruzdzQ7Re7erF8/goSWCJM9p"
            "nEQ="
        ),
    },
    {
        "id": "setautoreply-xml-cdata",
        "encoding_aes_key": "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
        "appid": "wx8c631f7e9f2465e1",
        "prefix_hex": "fedcba98765432100123456789abcdef",
        "message": (
            "<xml><managerid><![CDATA[管理员-01]]></managerid>"
            "<skillname><![CDATA[售后]]></skillname>"
            "<title><![CDATA[怎么退货？]]></title>"
            '<content><![CDATA[请前往<a href="https://chatbot.weixin.qq.com/">openai</a>配置]]>'
            "</content>"
            "<question><![CDATA[如何退货]]></question>"
            "<question><![CDATA[退货流程]]></question></xml>"
        ),
        "ciphertext": (
            "H3k5a2XMo6o9J0xeIuvuTr/4ivqoyI/2mFbPteI7c/TfJ+Ypkl6yNVlbBOEph8Xm4+xoA8KEkcv3ctumixhD"
            "M46P1DVgWdJmJs4RxCWrJDqEcpOxw3xvEtHzC8VKgfUqvdgPZ9+T9BVvsrmwkQUrHXMHGmA/5GK8Z+dZFlJr"
            "0kJvB6WFzueQ0zr0N9FBh4kfO1UDQy/IfBsFXRc2RDZL/CZXSGjSZ6oRbYs3DNNjeYl/KEDdGpJiqN0RXUaL"
            "wWUrYK4DfuKVTVcNgmxswkIhMlyBukAD4djnQn45LnYHM8Uf3y9znPNkAdbMdUfMOJhINWR951+K8NwkbmdnqM"
            "T2iMaAgZEdt2Bl0DPBeSilYETKdpavTf9noX8RblU+ywjZI6axZNL4Y6D5DcxmLBaF8iH+Ify4dzYwUxu4SOxt"
            "ThH5pBy4QFc1wBrCoi++bIGCDnz9lotrPzlG0PeRDCtTkEvrnV4CWmUpGV+/7VUpTDDCz5sO9fjUuDT+wRWlZfyP"
        ),
    },
]
VECTOR_IDS = [v["id"] for v in VECTORS]

TOKEN = "QDG6eK"
ENCODING_AES_KEY = VECTORS[0]["encoding_aes_key"]
APPID = VECTORS[0]["appid"]
KEY = base64.b64decode(ENCODING_AES_KEY + "=")
IV = KEY[:16]
PREFIX = bytes(range(16))

# Excludes lone surrogates (category Cs), which no UTF-8 peer can receive; includes the astral
# planes by default.
texts = st.text() | st.sampled_from(["", "]]>", "<![CDATA[x]]>]]>", "\U0001f600" * 40, "\x00"])


def _key(vector: dict) -> bytes:
    return base64.b64decode(vector["encoding_aes_key"] + "=")


def _crypt(vector: dict | None = None) -> WXBizMsgCrypt:
    vector = vector or VECTORS[0]
    return WXBizMsgCrypt(TOKEN, vector["encoding_aes_key"], vector["appid"])


def _seal(plaintext: bytes, key: bytes = KEY) -> str:
    """AES-CBC over bytes we framed ourselves, so each malformed case breaks exactly one rule."""
    assert len(plaintext) % 16 == 0
    return base64.b64encode(AES.new(key, AES.MODE_CBC, iv=key[:16]).encrypt(plaintext)).decode()


def _frame(
    message: bytes,
    appid: bytes = APPID.encode(),
    *,
    length: int | None = None,
    pad: bytes | None = None,
) -> bytes:
    body = PREFIX + struct.pack(">I", len(message) if length is None else length) + message + appid
    if pad is None:
        n = 32 - len(body) % 32
        pad = bytes([n]) * n
    return body + pad


def _decrypts_or_refuses(crypt: WXBizMsgCrypt, text: str) -> str | None:
    # Anything other than CryptoError escapes and fails the calling test.
    try:
        result = crypt.decrypt(text)
    except CryptoError:
        return None
    assert isinstance(result, str)
    return result


# --- Fixed vectors -------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_encrypt_payload_matches_openssl_vector(vector: dict) -> None:
    encrypted = encrypt_payload(
        _key(vector), vector["appid"], vector["message"], prefix=bytes.fromhex(vector["prefix_hex"])
    )
    assert encrypted == vector["ciphertext"]


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_decrypt_returns_openssl_vector_message(vector: dict) -> None:
    assert _crypt(vector).decrypt(vector["ciphertext"]) == vector["message"]
    assert decrypt_payload(_key(vector), vector["appid"], vector["ciphertext"]) == vector["message"]


def test_encrypt_draws_prefix_from_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fixed_prefix(n: int) -> bytes:
        calls.append(n)
        return bytes.fromhex(VECTORS[0]["prefix_hex"])

    monkeypatch.setattr(crypto.secrets, "token_bytes", fixed_prefix)
    assert _crypt().encrypt(VECTORS[0]["message"]) == VECTORS[0]["ciphertext"]
    assert calls == [16]


def test_encrypt_uses_a_fresh_prefix_each_time() -> None:
    crypt = _crypt()
    ciphertexts = {crypt.encrypt("same message") for _ in range(20)}
    assert len(ciphertexts) == 20
    first_blocks = {base64.b64decode(c)[:16] for c in ciphertexts}
    assert len(first_blocks) == 20


# --- Interoperability with wechatpy ---------------------------------------------------------------

appids = st.from_regex(r"\Awx[0-9a-f]{16}\Z") | st.text(min_size=1, max_size=40)
keys = st.binary(min_size=32, max_size=32)


def _encoding_aes_key(key: bytes) -> str:
    return base64.b64encode(key).decode()[:-1]


@hypothesis_settings
@given(key=keys, appid=appids, text=texts)
@example(key=KEY, appid=APPID, text="")
@example(key=KEY, appid=APPID, text="]]>")
@example(key=KEY, appid=APPID, text="\U00010348\U0001f916\U000e0001")
def test_ours_encrypts_wechatpy_decrypts(key: bytes, appid: str, text: str) -> None:
    encrypted = WXBizMsgCrypt(TOKEN, _encoding_aes_key(key), appid).encrypt(text)
    assert BasePrpCrypto(key)._decrypt(encrypted, appid) == text


@hypothesis_settings
@given(key=keys, appid=appids, text=texts)
@example(key=KEY, appid=APPID, text="")
@example(key=KEY, appid=APPID, text="]]>")
@example(key=KEY, appid=APPID, text="\U00010348\U0001f916\U000e0001")
def test_wechatpy_encrypts_ours_decrypts(key: bytes, appid: str, text: str) -> None:
    encrypted = BasePrpCrypto(key)._encrypt(text, appid).decode("ascii")
    assert WXBizMsgCrypt(TOKEN, _encoding_aes_key(key), appid).decrypt(encrypted) == text


@pytest.mark.parametrize("size", [1, 31, 32, 33, 1024, 50_000, 200_001])
def test_interoperates_on_large_messages(size: int) -> None:
    text = ("<question><![CDATA[退货]]></question>" * (size // 10 + 1))[:size]
    crypt = _crypt()
    assert BasePrpCrypto(KEY)._decrypt(crypt.encrypt(text), APPID) == text
    assert crypt.decrypt(BasePrpCrypto(KEY)._encrypt(text, APPID).decode()) == text


def test_one_instance_serves_many_threads() -> None:
    # Decryption shares one ECB object per instance; concurrent use must not mix messages.
    crypt = _crypt()
    messages = [
        f"<xml><content><![CDATA[{i}:{'回' * (i % 97) * 50}]]></content></xml>" for i in range(64)
    ]
    encrypted = [BasePrpCrypto(KEY)._encrypt(m, APPID).decode() for m in messages]

    def work(offset: int) -> list[bool]:
        order = encrypted[offset:] + encrypted[:offset]
        expected = messages[offset:] + messages[:offset]
        return [
            crypt.decrypt(e) == m for _ in range(5) for e, m in zip(order, expected, strict=True)
        ]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(0, 64, 4)))
    assert all(all(r) for r in results)


# --- Round trip -----------------------------------------------------------------------------------


@hypothesis_settings
@given(text=texts)
def test_round_trip(text: str) -> None:
    crypt = _crypt()
    assert crypt.decrypt(crypt.encrypt(text)) == text


@hypothesis_settings
@given(key=keys, appid=appids, text=texts, prefix=st.binary(min_size=16, max_size=16))
def test_round_trip_module_functions(key: bytes, appid: str, text: str, prefix: bytes) -> None:
    assert decrypt_payload(key, appid, encrypt_payload(key, appid, text, prefix=prefix)) == text


@hypothesis_settings
@given(key=keys)
def test_any_32_byte_key_round_trips_through_its_encoding(key: bytes) -> None:
    encoding_aes_key = _encoding_aes_key(key)
    validate_encoding_aes_key(encoding_aes_key)
    encrypted = WXBizMsgCrypt(TOKEN, encoding_aes_key, APPID).encrypt("x")
    assert decrypt_payload(key, APPID, encrypted) == "x"


# --- Malformed ciphertexts, one check each --------------------------------------------------------


@pytest.mark.parametrize("value", [None, b"", b"IG+0eOkL", 123, ["x"]])
def test_decrypt_refuses_non_str(value: object) -> None:
    with pytest.raises(CryptoError, match="must be a string"):
        _crypt().decrypt(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        "not base64!",
        "IG+0eO=",  # one '=' where two are due
        VECTORS[0]["ciphertext"] + "=",  # surplus padding (CPython's strict mode lets it pass)
        VECTORS[0]["ciphertext"] + "==",
        VECTORS[1]["ciphertext"][:-2] + "R=",  # non-zero unused bits: "Q=" is the only spelling
        VECTORS[0]["ciphertext"][:-1],  # truncated by one character
        VECTORS[0]["ciphertext"][:40] + "\n" + VECTORS[0]["ciphertext"][40:],  # strict: no \n
        VECTORS[0]["ciphertext"].replace("+", "-").replace("/", "_"),  # urlsafe alphabet
        VECTORS[1]["ciphertext"] + "AAAA",  # data after padding
        "中文",
    ],
)
def test_decrypt_refuses_bad_base64(value: str) -> None:
    with pytest.raises(CryptoError, match="not valid base64"):
        _crypt().decrypt(value)


@pytest.mark.parametrize("size", [0, 15, 16, 17, 31, 33, 47, 63])
def test_decrypt_refuses_bad_ciphertext_length(size: int) -> None:
    raw = base64.b64decode(VECTORS[0]["ciphertext"])[:size]
    raw = raw.ljust(size, b"\x00")
    with pytest.raises(CryptoError, match="length is not a multiple of 16"):
        _crypt().decrypt(base64.b64encode(raw).decode())


def test_decrypt_accepts_a_48_byte_ciphertext() -> None:
    """The scheme pads to 32, but the check is on 16-byte AES blocks: a 16-padded peer works."""
    body = PREFIX + struct.pack(">I", 2) + b"hi" + APPID.encode()  # 40 bytes
    assert _crypt().decrypt(_seal(body + bytes([8]) * 8)) == "hi"


@pytest.mark.parametrize("pad_value", [0, 33, 64, 255])
def test_decrypt_refuses_pad_byte_out_of_range(pad_value: int) -> None:
    plaintext = _frame(b"hello")
    plaintext = plaintext[:-1] + bytes([pad_value])
    with pytest.raises(CryptoError, match="padding byte out of range"):
        _crypt().decrypt(_seal(plaintext))


@pytest.mark.parametrize(
    "pad",
    [
        bytes([5]) * 4 + bytes([6]),  # says 6, but only the last byte is 6
        bytes([3, 4, 4, 4]),
        bytes([32]) * 31 + bytes([31]) + bytes([32]),
    ],
)
def test_decrypt_refuses_inconsistent_padding(pad: bytes) -> None:
    # The body is sized so that body + pad is a whole number of blocks.
    appid = APPID.encode()
    message = b"m" * (64 - 20 - len(appid) - len(pad) % 32)
    plaintext = _frame(message, appid, pad=pad)
    assert len(plaintext) % 16 == 0
    with pytest.raises(CryptoError, match="padding bytes inconsistent"):
        _crypt().decrypt(_seal(plaintext))


@pytest.mark.parametrize(
    "plaintext",
    [
        bytes([32]) * 32,  # all padding
        PREFIX + bytes([16]) * 16,  # prefix, no length field
        PREFIX + b"\x00\x00\x00" + bytes([13]) * 13,  # 19 bytes before the padding
    ],
)
def test_decrypt_refuses_plaintext_too_short(plaintext: bytes) -> None:
    with pytest.raises(CryptoError, match="too short"):
        _crypt().decrypt(_seal(plaintext))


# "hello" and the appid leave 23 bytes after the length field: 24 is the first length too large.
@pytest.mark.parametrize("length", [24, 25, 1000, 0xFFFFFFFF])
def test_decrypt_refuses_length_field_beyond_plaintext(length: int) -> None:
    plaintext = _frame(b"hello", length=length)
    with pytest.raises(CryptoError, match="length field exceeds"):
        _crypt().decrypt(_seal(plaintext))


@pytest.mark.parametrize(
    "message",
    [
        b"\xff\xfe",
        b"caf\xc3",  # truncated sequence
        b"\xed\xa0\x80",  # encoded surrogate (CESU-8)
        b"\xc0\xaf",  # overlong '/'
        b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    ],
)
def test_decrypt_refuses_invalid_utf8(message: bytes) -> None:
    with pytest.raises(CryptoError, match="not valid UTF-8"):
        _crypt().decrypt(_seal(_frame(message)))


@pytest.mark.parametrize(
    "appid",
    [
        b"wx0000000000000000",  # another app
        APPID.encode() + b"x",  # ours plus a suffix
        APPID.encode()[:-1],  # a prefix of ours
        b"x" + APPID.encode(),
        APPID.upper().encode(),
        b"",  # no appid at all
    ],
)
def test_decrypt_refuses_foreign_appid(appid: bytes) -> None:
    with pytest.raises(CryptoError, match="appid mismatch"):
        _crypt().decrypt(_seal(_frame(b"hello", appid)))


def test_decrypt_refuses_short_length_field_as_appid_mismatch() -> None:
    # Declaring fewer bytes than sent pushes message bytes into the appid slot.
    with pytest.raises(CryptoError, match="appid mismatch"):
        _crypt().decrypt(_seal(_frame(b"hello", length=3)))


def test_decrypt_refuses_ciphertext_for_another_appid_with_same_key() -> None:
    other = WXBizMsgCrypt(TOKEN, ENCODING_AES_KEY, "wx0000000000000000")
    with pytest.raises(CryptoError, match="appid mismatch"):
        _crypt().decrypt(other.encrypt("hello"))


@pytest.mark.parametrize("vector", VECTORS[1:], ids=VECTOR_IDS[1:])
def test_decrypt_refuses_ciphertext_under_another_key(vector: dict) -> None:
    other_key = WXBizMsgCrypt(TOKEN, ENCODING_AES_KEY, vector["appid"])
    with pytest.raises(CryptoError):
        other_key.decrypt(vector["ciphertext"])


def test_decrypt_payload_refuses_like_the_class() -> None:
    with pytest.raises(CryptoError, match="appid mismatch"):
        decrypt_payload(KEY, APPID, _seal(_frame(b"hello", b"wx0000000000000000")))


def test_error_messages_carry_no_secrets_or_plaintext() -> None:
    secret_message = "secret-payload-\u9f99"
    crypt = WXBizMsgCrypt(TOKEN, ENCODING_AES_KEY, APPID)
    bad_inputs = [
        _seal(_frame(secret_message.encode(), b"wx0000000000000000")),
        _seal(_frame(secret_message.encode(), length=999)),
        _seal(_frame(secret_message.encode())[:-1] + b"\x00"),
        "not base64",
    ]
    forbidden = [TOKEN, ENCODING_AES_KEY, KEY.hex(), secret_message, "secret-payload"]
    for bad in bad_inputs:
        with pytest.raises(CryptoError) as info:
            crypt.decrypt(bad)
        text = str(info.value) + repr(info.value)
        assert not [f for f in forbidden if f in text]
        assert info.value.__cause__ is None  # `from None`: no chained traceback with data


# --- Fuzz: decrypt returns str or raises CryptoError, nothing else --------------------------------


@hypothesis_settings
@given(value=st.text())
def test_fuzz_arbitrary_text(value: str) -> None:
    _decrypts_or_refuses(_crypt(), value)


@hypothesis_settings
@given(raw=st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_base64(raw: bytes) -> None:
    _decrypts_or_refuses(_crypt(), base64.b64encode(raw).decode())


@hypothesis_settings
@given(blocks=st.integers(min_value=2, max_value=8), data=st.data())
def test_fuzz_random_blocks_decrypt_to_anything(blocks: int, data: st.DataObject) -> None:
    # Random whole blocks pass the length check and exercise the checks after decryption.
    raw = data.draw(st.binary(min_size=16 * blocks, max_size=16 * blocks))
    _decrypts_or_refuses(_crypt(), base64.b64encode(raw).decode())


@hypothesis_settings
@given(
    text=texts,
    flips=st.lists(st.integers(min_value=0), max_size=4),
    cut=st.none() | st.integers(min_value=0),
)
def test_fuzz_mutated_valid_ciphertext(text: str, flips: list[int], cut: int | None) -> None:
    crypt = _crypt()
    raw = bytearray(base64.b64decode(crypt.encrypt(text)))
    for bit in flips:
        bit %= len(raw) * 8
        raw[bit // 8] ^= 1 << (bit % 8)
    if cut is not None:
        del raw[cut % (len(raw) + 1) :]
    result = _decrypts_or_refuses(crypt, base64.b64encode(bytes(raw)).decode())
    if not flips and cut is None:
        assert result == text


@hypothesis_settings
@given(text=texts, position=st.integers(min_value=0), char=st.characters())
def test_fuzz_mutated_base64_characters(text: str, position: int, char: str) -> None:
    crypt = _crypt()
    encrypted = crypt.encrypt(text)
    position %= len(encrypted)
    _decrypts_or_refuses(crypt, encrypted[:position] + char + encrypted[position + 1 :])


# --- EncodingAESKey, constructor and encrypt arguments ----------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        ENCODING_AES_KEY[:-1],  # 42
        ENCODING_AES_KEY + "A",  # 44
        ENCODING_AES_KEY + "=",  # 44, padded
        ENCODING_AES_KEY[:-1] + "!",
        ENCODING_AES_KEY[:-1] + "-",  # urlsafe alphabet
        ENCODING_AES_KEY[:-1] + "_",
        ENCODING_AES_KEY[:-1] + "=",
        ENCODING_AES_KEY[:-1] + " ",
        ENCODING_AES_KEY[:-1] + "é",
        " " * 43,
        None,
        KEY,
    ],
)
def test_bad_encoding_aes_key_refused(value: object) -> None:
    with pytest.raises(CryptoError, match="EncodingAESKey"):
        validate_encoding_aes_key(value)  # type: ignore[arg-type]
    with pytest.raises(CryptoError, match="EncodingAESKey"):
        WXBizMsgCrypt(TOKEN, value, APPID)  # type: ignore[arg-type]


@pytest.mark.parametrize("vector", VECTORS, ids=VECTOR_IDS)
def test_good_encoding_aes_key_accepted(vector: dict) -> None:
    assert validate_encoding_aes_key(vector["encoding_aes_key"]) is None


@pytest.mark.parametrize("appid", ["", None, b"wx1"])
def test_constructor_refuses_bad_appid(appid: object) -> None:
    with pytest.raises(CryptoError, match="appid"):
        WXBizMsgCrypt(TOKEN, ENCODING_AES_KEY, appid)  # type: ignore[arg-type]


def test_constructor_refuses_non_str_token() -> None:
    with pytest.raises(CryptoError, match="token"):
        WXBizMsgCrypt(None, ENCODING_AES_KEY, APPID)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, b"bytes", 1, "lone \ud800 surrogate"])
def test_encrypt_refuses_what_it_cannot_send(value: object) -> None:
    with pytest.raises(CryptoError, match="message"):
        _crypt().encrypt(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "appid", "prefix", "match"),
    [
        (KEY[:31], APPID, PREFIX, "key must be 32 bytes"),
        (KEY + b"x", APPID, PREFIX, "key must be 32 bytes"),
        (ENCODING_AES_KEY, APPID, PREFIX, "key must be bytes"),
        (KEY, APPID, PREFIX[:15], "prefix must be 16 bytes"),
        (KEY, APPID, PREFIX + b"x", "prefix must be 16 bytes"),
        (KEY, APPID, "0" * 16, "prefix must be 16 bytes"),
        (KEY, "", PREFIX, "appid must not be empty"),
    ],
)
def test_encrypt_payload_refuses_bad_arguments(
    key: object, appid: str, prefix: object, match: str
) -> None:
    with pytest.raises(CryptoError, match=match):
        encrypt_payload(key, appid, "hello", prefix=prefix)  # type: ignore[arg-type]


def test_crypto_error_is_a_value_error() -> None:
    assert issubclass(CryptoError, ValueError)


def test_repr_shows_only_the_appid() -> None:
    crypt = _crypt()
    for text in (repr(crypt), str(crypt), f"{crypt!r}"):
        assert APPID in text
        assert TOKEN not in text
        assert ENCODING_AES_KEY not in text
        assert KEY.hex() not in text
        assert repr(KEY) not in text


# --- Signature --------------------------------------------------------------------------------

SIGNATURE_TIMESTAMP = "1409659813"
SIGNATURE_NONCE = "1372623149"
# printf '%s\n' QDG6eK 1409659813 1372623149 "$CIPHERTEXT" | LC_ALL=C sort | tr -d '\n' | sha1sum
SIGNATURE_VECTOR = "021000146405ea08d1415a6494fe3173b297b03e"


def test_signature_known_vector() -> None:
    encrypted = VECTORS[0]["ciphertext"]
    by_hand = hashlib.sha1(  # noqa: S324 - the protocol fixes SHA-1
        "".join(sorted([TOKEN, SIGNATURE_TIMESTAMP, SIGNATURE_NONCE, encrypted])).encode()
    ).hexdigest()
    assert by_hand == SIGNATURE_VECTOR
    assert _crypt().signature(SIGNATURE_TIMESTAMP, SIGNATURE_NONCE, encrypted) == SIGNATURE_VECTOR


@hypothesis_settings
@given(token=st.text(), timestamp=st.text(), nonce=st.text(), encrypted=st.text())
def test_signature_matches_wechatpy(token: str, timestamp: str, nonce: str, encrypted: str) -> None:
    crypt = WXBizMsgCrypt(token, ENCODING_AES_KEY, APPID)
    assert crypt.signature(timestamp, nonce, encrypted) == _get_signature(
        token, timestamp, nonce, encrypted
    )


def test_verify_signature() -> None:
    crypt = _crypt()
    encrypted = VECTORS[0]["ciphertext"]
    args = (SIGNATURE_TIMESTAMP, SIGNATURE_NONCE, encrypted)
    assert crypt.verify_signature(SIGNATURE_VECTOR, *args) is True
    for wrong in [
        SIGNATURE_VECTOR.upper(),
        SIGNATURE_VECTOR[:-1],
        SIGNATURE_VECTOR[:-1] + "f",
        SIGNATURE_VECTOR + "0",
        "",
        "签名" * 20,
        "\ud800",
        None,
        SIGNATURE_VECTOR.encode(),
    ]:
        assert crypt.verify_signature(wrong, *args) is False  # type: ignore[arg-type]
    assert crypt.verify_signature(SIGNATURE_VECTOR, SIGNATURE_TIMESTAMP, SIGNATURE_NONCE, "x") is (
        False
    )


def test_signature_ignores_argument_order() -> None:
    # A property of the protocol (sorted join), pinned so that nobody "fixes" it into
    # incompatibility: swapped timestamp and nonce sign the same.
    crypt = _crypt()
    assert crypt.signature("1", "2", "3") == crypt.signature("2", "1", "3")
    assert crypt.signature("1", "2", "3") == crypt.signature("3", "2", "1")


def test_verify_signature_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # The module calls hmac.compare_digest through the hmac module object, so patching that
    # attribute (undone after the test) sees every comparison.
    assert crypto.hmac is hmac
    calls: list[tuple[object, object]] = []
    original = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(crypto.hmac, "compare_digest", recording)
    crypt = _crypt()
    args = (SIGNATURE_TIMESTAMP, SIGNATURE_NONCE, VECTORS[0]["ciphertext"])
    assert crypt.verify_signature(SIGNATURE_VECTOR, *args) is True
    assert crypt.verify_signature("0" * 40, *args) is False
    assert calls == [
        (SIGNATURE_VECTOR.encode(), SIGNATURE_VECTOR.encode()),
        (b"0" * 40, SIGNATURE_VECTOR.encode()),
    ]


@pytest.mark.parametrize("bad", [None, 1409659813, b"1409659813"])
def test_signature_refuses_non_str(bad: object) -> None:
    with pytest.raises(CryptoError, match="strings"):
        _crypt().signature(bad, SIGNATURE_NONCE, "x")  # type: ignore[arg-type]


# --- Packaging --------------------------------------------------------------------------------


def test_module_imports_without_django() -> None:
    # pytest-django has already imported Django here, so ask a fresh interpreter.
    root = Path(__file__).resolve().parent.parent
    code = (
        "import sys; import chatbot.crypto; "
        "assert not [m for m in sys.modules if m == 'django' or m.startswith('django.')], "
        "'django imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)
