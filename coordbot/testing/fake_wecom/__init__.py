"""A protocol-faithful fake of WeCom's self-built application APIs and callback, for tests.

Real HTTP on 127.0.0.1::

    async with FakeWeCom(token_lifetime=7200) as wecom:
        wecom.add_user("wangmin", "王敏")
        # adapter: base_url=wecom.base_url, corp id / secret / token / EncodingAESKey as below
        await wecom.set_callback("http://127.0.0.1:8080/wecom/callback")  # verified like the admin console
        await wecom.user_sends("wangmin", "绑定 ABCDEFGH")
        [msg] = await wecom.wait_for_messages("wangmin", 1)

Defaults are the official sample's values (sbzhu/weworkapi_python callback/Sample.py): corp id
``ww1436e0e65a779aee``, Token ``hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo``, EncodingAESKey
``6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt``, agent 1000002; the secret is ``app-secret-for-tests``.

APIs (WeCom's answer shapes ``{"errcode": N, "errmsg": "..."}``, always HTTP 200):
    ``GET /cgi-bin/gettoken?corpid&corpsecret``: the same token while it lives (``token_lifetime`` seconds,
    ``expire_tokens()`` ends them), 40013 wrong corp id, 40001 wrong secret.
    ``POST /cgi-bin/message/send?access_token``: 41001 / 40014 / 42001 for a missing / unknown / expired
    token; 47001 not JSON; 40056 wrong agentid; 40008 unknown msgtype; 44004 empty content; 45002 markdown
    over 2048 bytes (text over 2048 bytes is truncated, as WeCom does, and marked ``truncated``); template
    cards: only ``button_interaction``, 1-6 buttons, keys 1-1024 bytes and unique, style 1-4, task_id
    ``[0-9A-Za-z_-@]{1,128}`` unique (42014); file: a media_id from media/upload (40007). Users not added,
    or added with ``visible=False`` (outside the app's visible range), are ``invaliduser``; all invalid:
    81013. ``enable_duplicate_check``: the same content to the same user within the interval is dropped
    (``dropped`` reason "duplicate"). Answers carry ``msgid`` (and ``response_code`` for cards).
    ``POST /cgi-bin/media/upload?access_token&type=file``: multipart field ``media``, 5 B-20 MB (40006).
    ``POST /cgi-bin/message/update_template_card``: consumes a response_code.

Rate limits (``RateLimits``, on by default): per member 30 messages in any 60 s and 1000 in any hour,
excess answered ok but dropped (``dropped``, reason "member_minute"/"member_hour"), as WeCom does; per API
10,000 calls a minute and 150,000 an hour, excess answered 45009 (counted in ``rate_limited``).
``time_scale`` shortens every window alike.

Test hooks: ``add_user(user_id, name, visible=True)``; async ``set_callback(url)``; async
``user_sends(user_id, text)``, ``user_presses(user_id, message, button_index)``, ``user_enters(user_id)``
and ``post_callback(plaintext_xml, timestamp=, signature=, receive_id=, raw_body=)`` (forged callbacks),
each retried like WeCom on a timeout (``callback_timeout``, 5 s) or a non-200 other than 401/403, up to
``callback_retries``; ``callbacks`` (every delivery with coordbot's status and body); ``sent_to(user_id)``
(oldest first, each with ``text``); ``wait_for(predicate, timeout)``, ``wait_for_messages(user, count)``;
``fail_next(n, code, path="*")``; ``outage()`` (a context manager: HTTP 503); ``calls`` / ``calls_to(path)``.
"""

from .server import ApiCall, CallbackDelivery, Dropped, Envelope, FakeWeCom, RateLimits, User

__all__ = ["ApiCall", "CallbackDelivery", "Dropped", "Envelope", "FakeWeCom", "RateLimits", "User"]
