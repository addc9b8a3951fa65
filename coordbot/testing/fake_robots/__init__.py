"""A fake of the three group-robot webhooks (WeCom 群机器人, DingTalk and Feishu 自定义机器人) for tests.

One aiohttp server on 127.0.0.1 serves all three platforms' paths, so every robot's ``base_url`` is
``server.base_url``::

    async with FakeRobots(time_scale=0.01) as server:
        server.add_wecom("amr-group", key="693a91f6-...")
        server.add_dingtalk("office-group", "tok", secret="SECabc")
        server.add_feishu("leaders", "hook-token", secret="s3cret")
        ...
        await server.wait_for(lambda: len(server.sent_to("amr-group")) == 1)

Written from the vendors' documentation, independently of coordbot's adapter (the signatures are checked
with this module's own code):

- WeCom ``POST /cgi-bin/webhook/send?key=KEY``: text (content <= 2048 bytes), markdown (<= 4096 bytes),
  file (a media_id of this robot's upload); ``POST /cgi-bin/webhook/upload_media?key=KEY&type=file``
  (multipart field ``media``, 6 bytes to 20 MB) answers ``media_id``. Errors: 93000 invalid webhook url
  (unknown key), 45009 over 20 a minute (every request counts, failed ones too), 44004 empty content, 40058
  invalid parameter / too long, 40008 bad msgtype, 40007 invalid media_id, 40006 media size.
- DingTalk ``POST /robot/send?access_token=T[&timestamp=MS&sign=S]``: text or markdown ``{title, text}``.
  Errors: 300001 token is not exist, 310000 invalid timestamp (over an hour off) / sign not match /
  keywords not in content, 130101 over 20 a minute, after which the robot answers 130101 for ten minutes,
  40035 missing parameter, 43004 bad Content-Type.
- Feishu ``POST /open-apis/bot/v2/hook/TOKEN`` with ``{timestamp, sign, msg_type, content | card}``: text,
  post, interactive (cards may not carry callback buttons). Answers ``{"code", "data", "msg"}``. Errors:
  19001 token invalid, 19021 sign match fail or timestamp not within one hour, 19024 Key Words Not Found,
  11232 frequency limited (over 5 a second or 100 a minute), 9499 Bad Request (HTTP 400: malformed, or a
  body over 20 KB).

Test-side API:

World
    ``FakeRobots(*, host="127.0.0.1", port=0, time_scale=1.0, rate_limits=True, clock=time.monotonic,
    wall_clock=time.time)``; ``time_scale`` multiplies every window (and DingTalk's ten minutes), so a
    test or benchmark sees the limits hold without waiting minutes. ``start()`` / ``stop()`` or ``async
    with``; ``base_url``, ``port``. ``add_wecom(name, key)``, ``add_dingtalk(name, access_token, *,
    secret="", keywords=())``, ``add_feishu(name, token, *, secret="", keywords=())`` -> ``FakeRobot``;
    ``remove(name)`` (the robot was taken out of its group); ``robot(name_or_credential)``.

Records
    ``sent_to(name_or_credential) -> list[dict]``: what the robot posted to its group, oldest first, with
    ``text`` (the markdown, text or card markdown; a file's name), ``msgtype``, ``title`` (DingTalk),
    ``body``, ``t``, and ``content`` (a file's bytes); ``requests`` (every request: kind, robot, code, t);
    ``rate_limited`` (how many rate-limit answers were given); ``uploads``.

Faults
    ``fail_next(target, code, message="injected", *, times=1, status=200)``: target is a robot's name or
    credential, a kind or "*"; a status >= 500 answers a gateway's HTML page. ``outage(True|False)``: 502
    for everything.

Waiting (async)
    ``wait_for(predicate, timeout=5.0)``.
"""

from .server import DINGTALK, FEISHU, LIMITS, WECOM, FakeRobot, FakeRobots

__all__ = ["DINGTALK", "FEISHU", "LIMITS", "WECOM", "FakeRobot", "FakeRobots"]
