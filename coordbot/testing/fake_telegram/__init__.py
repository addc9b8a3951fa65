"""A protocol-faithful fake Telegram Bot API server for tests.

It speaks the real Bot API over HTTP on 127.0.0.1, so an unmodified python-telegram-bot (PTB) drives it::

    async with FakeBotAPI(token="123:ABC", bot_username="coordbot_test_bot") as server:
        server.add_user(1001, "张三", language_code="zh-hans")
        bot = Bot(server.token, base_url=server.base_url, base_file_url=server.base_file_url)
        # or ApplicationBuilder().token(server.token).base_url(server.base_url).base_file_url(...)
        server.user_sends(1001, "/start")
        ...
        [msg] = await server.wait_for_messages(1001, count=1)

Requests may be JSON, form-urlencoded (what PTB sends for ordinary calls) or multipart (PTB's uploads,
including ``attach://`` references); GET with a query string works too. Answers are exactly Telegram's:
``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}`` with the same HTTP status.
A wrong token gets 401 "Unauthorized", an unknown method 404 "Not Found".

Served methods: getMe, getUpdates (offset/limit/timeout long poll/allowed_updates; a second poller ends the
first with 409 like Telegram), setWebhook / deleteWebhook / getWebhookInfo (updates are POSTed as JSON with
``X-Telegram-Bot-Api-Secret-Token``; non-2xx, refused connections and timeouts are retried after
``webhook_retry_delays``, then the update is dropped), sendMessage, sendDocument, sendPhoto, editMessageText,
editMessageReplyMarkup, deleteMessage, answerCallbackQuery, setMyCommands / getMyCommands / deleteMyCommands,
getChat, getFile (+ downloads under ``base_file_url``), close, logOut. ``FakeBotAPI.served_methods()`` lists
them with the documented parameters each one reads; ``legacy_params()`` lists the undocumented ones still
honoured (``reply_to_message_id``, ``allow_sending_without_reply``).

Validation mirrors Telegram's 400s: "chat not found", "message is too long" (> 4096 chars after parsing),
"message text is empty", "BUTTON_DATA_INVALID" (callback_data not 1-64 bytes), "can't parse entities: ..."
(parse_mode=HTML parsed like tdlib: unknown/unclosed/mismatched tags, bare ``<``; a bare ``&`` too unless
``strict_html_ampersand=False`` - real Telegram keeps it literally), "message to edit not found",
"message is not modified: ...", "message to be replied not found", "IMAGE_PROCESS_FAILED" for non-images.
Markdown parse modes are accepted but not parsed.

Test-side API (all synchronous unless marked async; call them while the server runs):

World
    ``FakeBotAPI(token="123:ABC", bot_username="coordbot_test_bot", *, bot_first_name=..., host="127.0.0.1",
    port=0, rate_limits=RateLimits(), strict_chats=True, strict_html_ampersand=True,
    webhook_retry_delays=(0.05, 0.1, 0.2, 0.4), webhook_timeout=10.0, wall_clock=time.time)``;
    ``start()`` / ``stop()`` (async) or ``async with``. Properties ``base_url``, ``base_file_url``, ``url``,
    ``port``, ``token``, ``bot_user`` (the getMe User), ``webhook_url``.
    ``add_user(user_id, first_name="Test", *, last_name=None, username=None, language_code="zh-hans",
    started=True) -> User``: private chat id == user id; ``started=False`` means the bot may not write first
    (403 "bot can't initiate conversation with a user") until the user sends something.
    ``add_group(chat_id, title, *, chat_type=None, username=None) -> Chat``: negative id; "supergroup" for
    ids <= -10**12 else "group". Chats never added answer 400 "chat not found" (``strict_chats=False``
    creates them on first use instead).

Inbound (each returns the Update dict and queues it for getUpdates / the webhook)
    ``user_sends(user_id, text, *, chat_id=None, reply_to_message_id=None)``: ``bot_command`` entities for
    ``/cmd`` and ``/cmd@botname``; ``user_presses(user_id, message_id, data, *, chat_id=None, strict=True)``:
    callback_query with the message (strict: ``data`` must be on the current keyboard);
    ``user_edits(user_id, message_id, new_text, *, chat_id=None)``: edited_message;
    ``inject_raw(update)``: as given, keeping ``update_id`` (deliver duplicates). ``pending_updates()``.

Outbound records
    ``sent_messages(chat_id=None, *, include_deleted=False)``: bot messages in current state, oldest first,
    ``reply_markup`` as sent (ForceReply too, though API Message objects only carry inline keyboards);
    ``message(chat_id, message_id)``; ``calls``: list of ``ApiCall(t, method, params, status)`` with
    ``t = time.monotonic()`` when the outcome was decided and ``params`` decoded; ``calls_to(method, *,
    status=None)``; ``callback_answers``; ``documents`` / ``photos`` (dicts with chat_id, message_id,
    content bytes, caption, file_name/mime_type or width/height and the API object);
    ``deleted_messages`` [(chat_id, message_id)]; ``commands`` {(scope_json, language_code): [...]};
    ``webhook_deliveries``: ``WebhookDelivery(t, update_id, status, error)``;
    ``response_hooks``: callables ``hook(method, params, status, body)`` run on every answer.

Failure injection
    ``fail_next(method, *, status=429, retry_after=None, description=None, parameters=None, times=1,
    chat_id=None)``: the next matching calls ("*" = any method) get that error (429: retry_after default 1,
    "Too Many Requests: retry after N"). ``delay_next(method, seconds, *, times=1)``: hold the call, then
    handle it normally (a client that timed out still had its message sent, as on Telegram).
    ``stall_next(method, seconds, *, times=1, chat_id=None)``: handle the call (the message is sent), then
    hold the answer: a read timeout after Telegram accepted. ``await go_down("refused" | "502")`` /
    ``await come_up()``: the whole API unreachable (the port closed and open connections cut, or every
    request answered 502 Bad Gateway by an nginx-like proxy; no webhook deliveries) and back on the same
    port; ``down`` says which.
    ``block(chat_id, *, description=None)`` / ``unblock``: 403 "Forbidden: bot was blocked by the user"
    (groups: "bot was kicked from the ... chat") for every send; the user writing again unblocks.

Rate limits (``rate_limits: RateLimits``, on by default, mutable)
    sendMessage/sendDocument/sendPhoto: <= 30 per second overall, >= 1 s between sends to one chat, <= 20
    per minute per group; sliding windows on ``time.monotonic()``, shortened by ``slack`` (0.05 s) for jitter.
    Excess gets 429 with an integer ``retry_after`` >= 1 derived from the window. Refused calls do not count.

Waiting (async)
    ``wait_for(predicate, timeout=5.0)``, ``wait_for_messages(chat_id=None, count=1, timeout=5.0)``,
    ``wait_until_consumed(timeout=5.0)`` (queue drained by getUpdates confirmation or webhook 2xx).
"""

from .html_entities import EntityParseError, parse_html, utf16_len
from .ratelimit import RateLimits
from .server import ApiCall, ApiError, FakeBotAPI, Upload, WebhookDelivery

__all__ = [
    "ApiCall",
    "ApiError",
    "EntityParseError",
    "FakeBotAPI",
    "RateLimits",
    "Upload",
    "WebhookDelivery",
    "parse_html",
    "utf16_len",
]
