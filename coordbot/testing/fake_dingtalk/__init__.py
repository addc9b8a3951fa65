"""A protocol-faithful fake of DingTalk's open platform (api.dingtalk.com and oapi.dingtalk.com) for tests.

Real HTTP on 127.0.0.1, written from DingTalk's documentation independently of coordbot's adapter::

    async with FakeDingTalk(app_key="dingkey", app_secret="secret") as dt:
        dt.add_user("wangmin", "王敏")
        settings = Settings(dingtalk_base_url=dt.url, dingtalk_oapi_url=dt.url, ...)
        dt.callback_url = "http://127.0.0.1:PORT/dingtalk/callback"   # coordbot's web app
        await dt.user_sends("wangmin", "绑定 CODE")                      # a signed callback
        [msg] = await dt.wait_for_messages("wangmin", 1)

Served
    ``POST /v1.0/oauth2/accessToken`` {appKey, appSecret} → {accessToken, expireIn}; wrong credentials: 400
    ``invalidClientIdOrSecret``. Tokens expire after ``token_ttl`` seconds (``expire_tokens()`` ends them
    all now); an unknown or expired token in ``x-acs-dingtalk-access-token`` gets 400 ``InvalidAuthentication``
    "不合法的access_token" (the status the real API gives).
    ``POST /v1.0/robot/oToMessages/batchSend`` {robotCode, userIds, msgKey, msgParam}: robotCode must be
    the app's (``invalidParameter.robotCode.*``), userIds 1-20 strings (``invalidParameter.userIds.empty /
    overMax / invalid``), msgKey one of DingTalk's 13 (``invalidParameter.msgKey.invalid``), msgParam a JSON
    *string* of an object with the key's fields, at most 15,000 bytes, markdown text at most 5,000 characters
    (``invalidParameter.msgParam.invalid``; DingTalk documents no separate code for "too long"). Unknown
    userIds come back in ``invalidStaffIdList`` (all unknown: 400 ``staffId.notExisted``), flow-controlled
    ones in ``flowControlledStaffIdList``; the answer carries ``processQueryKey``.
    ``POST /v1.0/robot/groupMessages/send`` {robotCode, openConversationId, msgKey, msgParam}: unknown
    conversation 400 ``invalid.openConversationId``.
    ``POST /media/upload?access_token=&type=file`` multipart ``media``: the old API's shape, HTTP 200 with
    ``errcode`` (0 → ``media_id``; 40014 invalid token, 42001 expired token, 40004 bad type, 40006 too big,
    90018 QPS). ``sampleFile`` needs a mediaId uploaded here and a fileType DingTalk accepts.
    Errors are ``{"code", "message", "requestid"}`` with the HTTP status.

Rate limits (``rate_limits: RateLimits``, on by default)
    Per API: at most ``qps`` (20, 标准版) calls in any sliding second (shortened by ``slack``); over it 403
    ``Forbidden.AccessDenied.QpsLimitForAppkeyAndApi``. ``rate_limited`` counts those answers (and
    per-user flow controls when ``per_user_per_minute`` is set).

Test hooks
    ``add_user(user_id, name)``, ``add_group(cid, title, members)``; ``user_sends(user_id, text, *,
    conversation_id=None)`` and ``user_presses(user_id, message, button_index)`` (the numbered option's
    number as the user's reply) POST a signed callback to ``callback_url``; ``message_body`` and
    ``post_callback(body, timestamp_ms=, sign_value=)`` for crafted, replayed or wrongly signed ones;
    ``sent_to(user_or_cid)`` (dicts with ``text``, ``msgKey``, ``param``, ``processQueryKey``, ``file``),
    ``wait_for(predicate, timeout)``, ``wait_for_messages(to, count)``; ``fail_next(n, code, status=,
    path=)``, ``flow_control(user_id, times)``, ``outage(on)``; ``calls`` (t, path, status, code).
"""

from .server import MSG_KEYS, ApiError, FakeDingTalk, RateLimits, Sent, sign

__all__ = ["MSG_KEYS", "ApiError", "FakeDingTalk", "RateLimits", "Sent", "sign"]
