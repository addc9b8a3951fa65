"""A protocol-faithful fake of the Feishu Open Platform (飞书开放平台) for tests, written from the vendor's
documentation independently of coordbot's adapter.

Real HTTP on 127.0.0.1 (aiohttp)::

    async with FakeFeishu(app_id=..., app_secret=..., verification_token=..., encrypt_key=...) as fs:
        fs.add_user("ou_wang", "王敏")
        fs.event_url = "http://127.0.0.1:PORT/feishu/events"   # the console's 请求地址
        await fs.user_sends("ou_wang", "绑定 CODE")
        [msg] = await fs.wait_for_messages("ou_wang", 1)

Served APIs, with Feishu's answers ``{"code", "msg", "data"}`` and HTTP statuses:

- ``POST /open-apis/auth/v3/tenant_access_token/internal``: ``{app_id, app_secret}`` -> ``{code: 0,
  tenant_access_token: "t-…", expire}``; the same token until it has under 30 minutes left, then a new one
  (both valid). Unknown app_id 10003, wrong secret 10014.
- ``POST /open-apis/im/v1/messages?receive_id_type=…``: Bearer token (missing 99991661, invalid or expired
  99991663); receive_id_type one of open_id/union_id/user_id/email/chat_id; ``content`` must be a JSON string
  matching ``msg_type`` (text, post with its tags and styles, interactive card JSON 1.0 with ``action``
  modules, JSON 2.0 refusing ``action`` with 230099/200861, file with an uploaded file_key or 230017);
  body over 150 KB (text) or 30 KB (post, card) 230025; an unknown or invisible user 230013, a group without
  the bot 230002; ``uuid`` (<= 50 chars) de-duplicates for an hour (the first message's answer again).
- ``POST /open-apis/im/v1/files`` (multipart file_type, file_name, file): empty 234010, over 30 MB 234006.

Rate limits (``RateLimits``, on by default, mutable): im/v1/messages 50/s and 1000/min per app (HTTP 429,
99991400, ``x-ogw-ratelimit-reset``), 5/s to one receiver (HTTP 400, 230020); files 50/s and 1000/min.
Sliding windows on ``time.monotonic()`` shortened by ``slack``; ``time_scale`` stretches them. Refused calls
do not count; ``rate_limited`` counts the refusals.

Test hooks: ``add_user(open_id, name, *, visible=True)``, ``add_group(chat_id, name, *, bot_in=True)``,
``sent_to(open_id_or_chat_id)`` (dicts with ``message_id``, ``msg_type``, ``content`` parsed, ``text``,
``buttons`` [(label, value)], ``uuid``, ``chat_id``, ``file``), ``messages``, ``files``, ``calls`` [(t, api,
status, code)], ``wait_for(predicate, timeout)``, ``wait_for_messages(user, count)``; inbound (async, each
returns coordbot's (status, answer)): ``user_sends(open_id, text, *, chat_id=None, reply_to=None,
mention_bot=False)``, ``user_presses(open_id, message, button_index)`` (``card.action.trigger`` with the
button's value; answers in ``callback_answers``), ``verify_url(token=None)``, ``push(payload, *, encrypt,
sign, timestamp, tamper, raw)``; faults: ``fail_next(n, code, *, status=400, api="messages")``,
``outage(on=True)`` (HTTP 502),
``lose_next_answer(n)`` (carried out, answered 504), ``expire_tokens()``.

Events are AES-256-CBC encrypted (key sha256(encrypt key), random IV prepended, PKCS#7, base64) and signed
with ``X-Lark-Signature`` = sha256(timestamp + nonce + encrypt key + body), as Feishu pushes them.
"""

from .server import ApiError, FakeFeishu, Group, RateLimits, User

__all__ = ["ApiError", "FakeFeishu", "Group", "RateLimits", "User"]
