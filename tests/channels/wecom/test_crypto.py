"""The callback envelope against WeCom's official sample (sbzhu/weworkapi_python, callback/Sample.py) and
against the fake's independent implementation."""

from __future__ import annotations

import base64

import pytest

from coordbot.channels.wecom import CallbackCryptoError, WeComCrypto
from coordbot.testing.fake_wecom import Envelope

# The official sample's settings and requests (Sample.py, "使用示例一" and "使用示例二").
S_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
S_AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
S_CORP_ID = "ww1436e0e65a779aee"
VERIFY_SIG = "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb"
VERIFY_TS = "1476416373"
VERIFY_NONCE = "47744683"
VERIFY_ECHO = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
MSG_SIG = "0c3914025cb4b4d68103f6bfc8db550f79dcf48e"
MSG_TS = "1476422779"
MSG_NONCE = "1597212914"
MSG_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew"
    "+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24Yh"
    "mZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwo"
    "cugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)
MSG_PLAIN = (
    "<xml><ToUserName>ww1436e0e65a779aee</ToUserName><FromUserName>ChenJiaShun</FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType>text</MsgType><Content>你好</Content><MsgId>1456453720</MsgId>"
    "<AgentID>1000002</AgentID></xml>"
)


@pytest.fixture
def crypto() -> WeComCrypto:
    return WeComCrypto(S_TOKEN, S_AES_KEY, S_CORP_ID)


def test_official_url_verification(crypto: WeComCrypto) -> None:
    assert crypto.signature(VERIFY_TS, VERIFY_NONCE, VERIFY_ECHO) == VERIFY_SIG
    assert crypto.verify(VERIFY_SIG, VERIFY_TS, VERIFY_NONCE, VERIFY_ECHO)
    assert crypto.decrypt(VERIFY_ECHO) == b"1288432023552776189"


def test_official_message(crypto: WeComCrypto) -> None:
    assert crypto.verify(MSG_SIG, MSG_TS, MSG_NONCE, MSG_ENCRYPT)
    assert crypto.decrypt(MSG_ENCRYPT).decode() == MSG_PLAIN


def test_signature_is_over_all_four_values(crypto: WeComCrypto) -> None:
    assert not crypto.verify(MSG_SIG, str(int(MSG_TS) + 1), MSG_NONCE, MSG_ENCRYPT)
    assert not crypto.verify(MSG_SIG, MSG_TS, MSG_NONCE + "0", MSG_ENCRYPT)
    assert not crypto.verify(MSG_SIG, MSG_TS, MSG_NONCE, VERIFY_ECHO)
    assert not WeComCrypto("another-token", S_AES_KEY, S_CORP_ID).verify(MSG_SIG, MSG_TS, MSG_NONCE, MSG_ENCRYPT)


def test_another_receiver_is_refused() -> None:
    with pytest.raises(CallbackCryptoError, match="another receiver"):
        WeComCrypto(S_TOKEN, S_AES_KEY, "wwsomebodyelse").decrypt(MSG_ENCRYPT)


@pytest.mark.parametrize("text", ["", "x", "绑定 ABCDEFGH", "a" * 4, "a" * 12, "b" * 1000])
def test_fake_and_adapter_understand_each_other(crypto: WeComCrypto, text: str) -> None:
    fake = Envelope(S_TOKEN, S_AES_KEY, S_CORP_ID)
    assert crypto.decrypt(fake.seal(text)).decode() == text
    assert fake.open(crypto.encrypt(text.encode())) == text
    sealed = fake.seal(text)
    assert fake.sign("1", "2", sealed) == crypto.signature("1", "2", sealed)


def test_padding_is_to_32_byte_blocks(crypto: WeComCrypto) -> None:
    # 16 random + 4 length + 12 message = 32 bytes, + 18 corp id = 50 -> padded to 64 (14 bytes of 14).
    raw = base64.b64decode(crypto.encrypt(b"a" * 12))
    assert len(raw) == 64
    # A whole block already: a full block of padding (32 x 32), as WXBizMsgCrypt does.
    message = b"m" * (64 - 16 - 4 - len(S_CORP_ID))
    assert len(base64.b64decode(crypto.encrypt(message))) == 96
    assert crypto.decrypt(crypto.encrypt(message)) == message


@pytest.mark.parametrize(
    "bad", ["", "not base64!", base64.b64encode(b"x" * 15).decode(), base64.b64encode(b"\0" * 64).decode()]
)
def test_garbage_is_refused(crypto: WeComCrypto, bad: str) -> None:
    with pytest.raises(CallbackCryptoError):
        crypto.decrypt(bad)


def test_the_key_must_be_43_characters() -> None:
    with pytest.raises(ValueError):
        WeComCrypto(S_TOKEN, S_AES_KEY[:-1], S_CORP_ID)
