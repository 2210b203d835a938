"""Call the WeCom server API (企业微信服务端 API): access token, message/send, recall, menus.

Usage::

    from flask_wecom.client import WeComClient
    from flask_wecom.stores import RedisStore

    client = WeComClient(corp_id, secret, agent_id=1000002, store=RedisStore(redis_url))
    client.send_text("构建完成", to_user="zhangsan|lisi")
    client.menu_create(load_menu("menu.json"))  # from flask_wecom.menu

**Access token.** ``gettoken`` is rate-limited, so the token is cached in a
:class:`~flask_wecom.stores.Store` per (corp_id, secret): one entry holds the token with
its refresh and expiry times, under a key derived from a SHA-256 of corp_id and secret (the
secret itself never reaches the store). The token is refreshed 5 minutes before it expires,
by one caller at a time across threads, processes and hosts sharing the store: the caller
that takes the lock key (``Store.add``) calls gettoken; the others keep using the old token
while it is valid, or else poll the cache for the new one, for a bounded time after which
they call gettoken themselves. Without a store, the clients of one process share one
:class:`~flask_wecom.stores.MemoryStore`; pass a :class:`~flask_wecom.stores.RedisStore` to
share the token between gunicorn workers or hosts.

**Errors.** A non-zero errcode raises :class:`~flask_wecom.errors.APIError`. Before that,
an invalid-token errcode (40001, 40014, 42001, as wechatpy) makes the client drop the cached
token, if it is still the failing one, fetch a new one and retry once; -1 (system busy) and
45009 (call-frequency limit) are retried after 0.5 s then 1 s, 3 attempts in all. A failure
to reach WeCom, an HTTP error status or an answer that is not a JSON object raises
:class:`TransportError`.

**Secrets.** ``access_token`` and ``corpsecret`` travel in the query string, so no message
or log line of this module contains a URL's query, and :class:`TransportError` does not
chain the requests exception (whose text quotes the full URL). urllib3 logs request lines,
query included, at DEBUG level: importing this module installs
:class:`~flask_wecom.redact.RedactingFilter` on urllib3's loggers and on this module's,
so ``corpsecret=`` and ``access_token=`` values read ``[REDACTED]`` even at DEBUG.

**Where requests go.** The API base URL must be ``https://``; plain ``http://`` is
accepted only to a loopback address (a local TLS-terminating proxy, a test fake) or with
``allow_http=True`` (``WECOM_API_ALLOW_HTTP``). A ``response_url`` (AI bots) must be
``https://`` on an origin of :data:`RESPONSE_URL_ORIGINS` (WeCom's
``https://qyapi.weixin.qq.com``; a private deployment sets ``WECOM_RESPONSE_URL_ORIGINS``,
or passes ``origins=``): a callback cannot make this server post to 127.0.0.1 or another
host. No request follows a redirect.

Needs the ``client`` extra (``pip install 'flask-wecom[client]'``) for requests. Imports
nothing from Flask.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from .errors import APIError, TransportError, WeComError
from .menu import validate_menu
from .redact import install_redaction
from .replies import ImageReply, NewsReply, Reply, TextReply, VideoReply, VoiceReply
from .stores import MemoryStore, Store

try:
    import requests
except ImportError:  # without the `client` extra; WeComClient() says how to install it
    requests = None  # type: ignore[assignment]

__all__ = [
    "RESPONSE_URL_ORIGINS",
    "RETRY_ERRCODES",
    "TOKEN_INVALID_ERRCODES",
    "TransportError",
    "UnsafeURLError",
    "WeComClient",
    "check_api_base_url",
    "check_origin",
    "check_response_url",
    "post_response_url",
]

logger = logging.getLogger(__name__)
#: urllib3's loggers that print request URLs (query strings included) at DEBUG level.
URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.util.retry")
install_redaction(logger, *URLLIB3_LOGGERS)

#: The origins (scheme://host[:port]) a ``response_url`` may point to. WeCom's cloud sends
#: ``https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=...`` (doc 101138);
#: a private deployment (私有化部署) adds its own origin at start-up.
RESPONSE_URL_ORIGINS: tuple[str, ...] = ("https://qyapi.weixin.qq.com",)

#: Called with the path and errcode of every answer of the WeCom API (gettoken included).
ANSWER_HOOKS: list[Callable[[str, int], None]] = []

#: errcodes that mean the access token is no longer valid: 40001 invalid credential,
#: 40014 invalid access_token, 42001 access_token expired. Fetch a new token, retry once.
TOKEN_INVALID_ERRCODES = frozenset({40001, 40014, 42001})
#: errcodes worth retrying after a pause: -1 system busy (系统繁忙), 45009 call-frequency
#: limit (接口调用频率超过限制).
RETRY_ERRCODES = frozenset({-1, 45009})

_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


@dataclass(frozen=True)
class _CachedToken:
    """An access token with its refresh and expiry times (``clock`` seconds): one store value."""

    access_token: str
    refresh_at: float
    expires_at: float

    def encode(self) -> bytes:
        """The store value: compact JSON."""
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> _CachedToken | None:
        """Read a store value; None (and a warning) if it is not one :meth:`encode` wrote."""
        try:
            fields = json.loads(raw)
            return cls(
                str(fields["access_token"]),
                float(fields["refresh_at"]),
                float(fields["expires_at"]),
            )
        except (ValueError, TypeError, KeyError):
            logger.warning("ignoring an unreadable cached WeCom access token")
            return None


@functools.cache
def _process_store() -> MemoryStore:
    """The store shared by the clients of this process that were given none."""
    return MemoryStore()


class WeComClient:
    """A client for the WeCom server API of one app (应用): one corp_id, one secret.

    ::

        client = WeComClient("ww0123456789abcdef", secret, agent_id=1000002)
        answer = client.send_text("hello", to_user="@all")
        client.recall(answer["msgid"])

    Safe to share between threads. Close it (or use it as a context manager) to close the
    HTTP session it created.

    :param corp_id: the enterprise id (企业ID, corpid).
    :param secret: the app's secret (应用Secret, corpsecret). Never logged.
    :param agent_id: the app's AgentId, needed for messages and menus.
    :param base_url: scheme and host of the API (a private deployment's, a test fake's);
        ``https://``, or ``http://`` to a loopback address.
    :param store: where the access token and its refresh lock live; by default a
        :class:`~flask_wecom.stores.MemoryStore` shared by this process's clients.
    :param session: the requests session to send with; by default a new one, closed by
        :meth:`close`. A session passed in is left open.
    :param timeout: seconds to wait for WeCom to connect and to answer, per request.
    :param clock: wall-clock seconds (shared with other hosts through the store).
    :param sleep: pauses between retries and while waiting for another caller's refresh.
    :param allow_http: accept an ``http://`` base URL on any host; the secret and tokens
        then cross the network in clear text. For tests and trusted networks only.
    :raises ImportError: requests is not installed.
    :raises ValueError: corp_id or secret is empty, timeout is not positive, or base_url
        is not an acceptable URL (:class:`UnsafeURLError`).
    """

    #: Refresh the token this many seconds before it expires (at most half its lifetime).
    token_refresh_margin = 300.0
    #: The refresh lock expires after this many seconds, in case its holder dies; longer than
    #: a gettoken call with its retries usually takes (3 x ``timeout`` + 1.5 s by default).
    token_lock_ttl = 60.0
    #: Seconds to wait for another caller's refresh before calling gettoken anyway.
    token_wait = 15.0
    #: Seconds between looks at the cache while waiting.
    token_poll_interval = 0.05
    #: Attempts at one call while WeCom answers -1 or 45009.
    max_attempts = 3
    #: Seconds to pause before the second attempt, doubled before each later one.
    retry_backoff = 0.5

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        agent_id: int | None = None,
        base_url: str = "https://qyapi.weixin.qq.com",
        store: Store | None = None,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        allow_http: bool = False,
    ) -> None:
        if requests is None:
            raise ImportError("WeComClient needs requests: pip install 'flask-wecom[client]'")
        if not corp_id or not secret:
            raise ValueError("WeComClient needs a corp_id (企业ID) and the app's secret")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        #: The enterprise id (corpid).
        self.corp_id = corp_id
        #: The app's AgentId, or None.
        self.agent_id = agent_id
        #: Scheme and host of the API, without a trailing slash.
        self.base_url = check_api_base_url(base_url, allow_http=allow_http).rstrip("/")
        #: Seconds to wait for WeCom per request.
        self.timeout = timeout
        self._secret = secret
        self._store = store if store is not None else _process_store()
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._clock = clock
        self._sleep = sleep
        digest = hashlib.sha256(f"{corp_id}\n{secret}".encode()).hexdigest()
        self._token_key = f"access_token:{digest}"
        self._lock_key = f"access_token_lock:{digest}"

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> WeComClient:
        """Return the client itself; :meth:`close` it on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the client."""
        self.close()

    # Access token

    def access_token(self) -> str:
        """Return a valid access token: the cached one, or a new one from gettoken.

        :raises APIError: gettoken failed, e.g. 40001 for a wrong secret.
        :raises TransportError: WeCom could not be reached.
        :raises flask_wecom.errors.StoreError: the store could not be reached.
        """
        cached = self._cached_token()
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.access_token
        return self._refresh_token()

    def _refresh_token(self) -> str:
        """Fetch a new token under the refresh lock, or let the lock holder fetch it."""
        owner = secrets.token_hex(16).encode()
        for _ in range(max(1, round(self.token_wait / self.token_poll_interval))):
            if self._store.add(self._lock_key, owner, self.token_lock_ttl):
                try:
                    cached = self._cached_token()  # another caller may have just refreshed it
                    if cached is not None and self._clock() < cached.refresh_at:
                        return cached.access_token
                    return self._fetch_token()
                finally:
                    self._store.compare_and_set(self._lock_key, owner, None, self.token_lock_ttl)
            cached = self._cached_token()
            if cached is not None and self._clock() < cached.expires_at:
                return cached.access_token  # fresh, or still valid while the holder refreshes
            self._sleep(self.token_poll_interval)
        logger.warning(
            "no WeCom access token after waiting %.1f s for another caller's refresh; "
            "calling gettoken",
            self.token_wait,
        )
        return self._fetch_token()

    def _fetch_token(self) -> str:
        """Call gettoken and cache the answer."""
        answer = self._call(
            "GET",
            "/cgi-bin/gettoken",
            {"corpid": self.corp_id, "corpsecret": self._secret},
            with_token=False,
        )
        access_token, expires_in = answer.get("access_token"), answer.get("expires_in")
        if not (
            isinstance(access_token, str)
            and access_token
            and isinstance(expires_in, int)
            and expires_in > 0
        ):
            raise TransportError("GET /cgi-bin/gettoken answered without access_token, expires_in")
        now = self._clock()
        cached = _CachedToken(
            access_token,
            refresh_at=now + max(expires_in - self.token_refresh_margin, expires_in / 2),
            expires_at=now + expires_in,
        )
        self._store.set(self._token_key, cached.encode(), expires_in)
        logger.info("fetched an access token for corp %s, valid %d s", self.corp_id, expires_in)
        return access_token

    def _cached_token(self) -> _CachedToken | None:
        raw = self._store.get(self._token_key)
        return None if raw is None else _CachedToken.decode(raw)

    def _forget_token(self, access_token: str) -> None:
        """Drop the cached token if it is still ``access_token`` (not one refreshed since)."""
        raw = self._store.get(self._token_key)
        if raw is None:
            return
        cached = _CachedToken.decode(raw)
        if cached is not None and cached.access_token == access_token:
            self._store.compare_and_set(self._token_key, raw, None, self.token_lock_ttl)

    # Messages (消息推送)

    def send_message(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Send an app message (``message/send``), filling ``agentid`` from ``agent_id``.

        :param message: the documented body: recipients (``touser``, ``toparty``,
            ``totag``), ``msgtype`` and its content, options such as ``safe``.
        :returns: WeCom's answer: ``msgid`` (for :meth:`recall`), ``invaliduser``,
            ``invalidparty``, ``invalidtag``, ``unlicenseduser`` (a partial failure still
            delivers to the valid recipients) and, for interactive template cards,
            ``response_code``.
        :raises ValueError: the message has no ``agentid`` and the client no ``agent_id``.
        :raises APIError: e.g. 81013 when every recipient is invalid.
        """
        body = dict(message)
        if "agentid" not in body:
            body["agentid"] = self._require_agent_id("send_message")
        return self._call("POST", "/cgi-bin/message/send", body=body)

    def send_text(
        self,
        content: str,
        *,
        to_user: str = "",
        to_party: str = "",
        to_tag: str = "",
        safe: bool = False,
    ) -> dict[str, Any]:
        """Send a text message (文本消息).

        :param content: the text.
        :param to_user: user ids separated by ``|``, or ``"@all"``.
        :param to_party: department ids separated by ``|``.
        :param to_tag: tag ids separated by ``|``.
        :param safe: send as confidential (保密消息): no forwarding, watermarked.
        :returns: WeCom's answer, as for :meth:`send_message`.
        :raises ValueError: no recipient is given.
        """
        return self._send_typed(
            "text", {"content": content}, to_user, to_party, to_tag, safe=int(safe)
        )

    def send_markdown(
        self, content: str, *, to_user: str = "", to_party: str = "", to_tag: str = ""
    ) -> dict[str, Any]:
        """Send a markdown message (markdown消息, the WeCom subset of markdown).

        Recipients and answer as for :meth:`send_text`.
        """
        return self._send_typed("markdown", {"content": content}, to_user, to_party, to_tag)

    def send_news(
        self,
        articles: Sequence[Mapping[str, str]],
        *,
        to_user: str = "",
        to_party: str = "",
        to_tag: str = "",
    ) -> dict[str, Any]:
        """Send a news message (图文消息).

        :param articles: each with ``title`` and optionally ``description``, ``url``,
            ``picurl``, or ``appid`` and ``pagepath`` for a mini program.

        Recipients and answer as for :meth:`send_text`.
        """
        return self._send_typed(
            "news", {"articles": [dict(article) for article in articles]}, to_user, to_party, to_tag
        )

    def send_textcard(
        self,
        title: str,
        description: str,
        url: str,
        *,
        btntxt: str = "详情",
        to_user: str = "",
        to_party: str = "",
        to_tag: str = "",
    ) -> dict[str, Any]:
        """Send a text card (文本卡片消息) that opens ``url`` when tapped.

        :param title: the card's title.
        :param description: the card's text; WeCom accepts a few ``<div class=...>`` tags.
        :param url: the page the card opens.
        :param btntxt: the button's text; WeCom's default is 详情.

        Recipients and answer as for :meth:`send_text`.
        """
        card = {"title": title, "description": description, "url": url, "btntxt": btntxt}
        return self._send_typed("textcard", card, to_user, to_party, to_tag)

    def send_template_card(
        self, card: Mapping[str, Any], *, to_user: str = "", to_party: str = "", to_tag: str = ""
    ) -> dict[str, Any]:
        """Send a template card (模板卡片消息).

        :param card: the ``template_card`` object, with its ``card_type``.

        Recipients as for :meth:`send_text`. WeCom's answer holds ``response_code`` for
        interactive cards: usable once, within 72 hours, to update the card.
        """
        return self._send_typed("template_card", dict(card), to_user, to_party, to_tag)

    def recall(self, msgid: str) -> None:
        """Recall (撤回) a message sent in the last 24 hours.

        :param msgid: the ``msgid`` from the answer of a send.
        """
        self._call("POST", "/cgi-bin/message/recall", body={"msgid": msgid})

    def _send_typed(
        self,
        msgtype: str,
        content: Mapping[str, Any],
        to_user: str,
        to_party: str,
        to_tag: str,
        **options: int,
    ) -> dict[str, Any]:
        """Build the message/send body for one msgtype and send it."""
        recipients = {"touser": to_user, "toparty": to_party, "totag": to_tag}
        if not any(recipients.values()):
            raise ValueError("give at least one of to_user, to_party or to_tag ('@all': everyone)")
        message: dict[str, Any] = {key: ids for key, ids in recipients.items() if ids}
        message.update(msgtype=msgtype, **{msgtype: content}, **options)
        return self.send_message(message)

    def send_reply(self, reply: Reply, *, to_user: str) -> dict[str, Any]:
        """Send what would have been a passive reply as an app message (发送应用消息).

        Used for handlers that finished after WeCom's 5-second deadline. Text,
        image, voice, video and news replies have message/send equivalents; card
        updates do not and raise :class:`ValueError`.
        """
        content: dict[str, Any]
        if isinstance(reply, TextReply):
            msgtype, content = "text", {"content": reply.content}
        elif isinstance(reply, ImageReply | VoiceReply):
            msgtype, content = reply.msg_type, {"media_id": reply.media_id}
        elif isinstance(reply, VideoReply):
            msgtype = "video"
            content = {
                "media_id": reply.media_id,
                "title": reply.title,
                "description": reply.description,
            }
        elif isinstance(reply, NewsReply):
            msgtype = "news"
            content = {
                "articles": [
                    {
                        "title": a.title,
                        "description": a.description,
                        "url": a.url,
                        "picurl": a.pic_url,
                    }
                    for a in reply.articles
                ]
            }
        else:
            raise ValueError(f"{type(reply).__name__} has no message/send equivalent")
        return self._send_typed(msgtype, content, to_user, "", "")

    # Custom menu (自定义菜单)

    def menu_create(self, menu: Mapping[str, Any]) -> None:
        """Create (replace) the app's custom menu, after checking it against the documented limits.

        :param menu: ``{"button": [...]}``, e.g. from :func:`flask_wecom.menu.load_menu`.
        :raises flask_wecom.errors.MenuError: the menu breaks a limit; nothing was sent.
        :raises ValueError: the client has no ``agent_id``.
        """
        validate_menu(menu)
        agent_id = self._require_agent_id("menu_create")
        self._call("POST", "/cgi-bin/menu/create", {"agentid": agent_id}, body=menu)

    def menu_get(self) -> dict[str, Any]:
        """Return the app's custom menu, ``{"button": [...]}``, as :meth:`menu_create` takes it.

        :raises APIError: e.g. when the app has no menu.
        """
        agent_id = self._require_agent_id("menu_get")
        answer = self._call("GET", "/cgi-bin/menu/get", {"agentid": agent_id})
        return {key: value for key, value in answer.items() if key not in ("errcode", "errmsg")}

    def menu_delete(self) -> None:
        """Delete the app's custom menu."""
        agent_id = self._require_agent_id("menu_delete")
        self._call("GET", "/cgi-bin/menu/delete", {"agentid": agent_id})

    def _require_agent_id(self, operation: str) -> int:
        if self.agent_id is None:
            raise ValueError(f"{operation} needs the app's AgentId: WeComClient(..., agent_id=...)")
        return self.agent_id

    # The one request path

    def _call(
        self,
        method: str,
        path: str,
        query: Mapping[str, str | int] | None = None,
        *,
        body: Mapping[str, Any] | None = None,
        with_token: bool = True,
    ) -> dict[str, Any]:
        """Call one endpoint: inject the token, retry as the module docstring says, check errcode.

        :returns: the decoded answer, whose errcode is 0.
        """
        token_refetched = False
        attempt = 1
        while True:
            params = dict(query or {})
            access_token = None
            if with_token:
                access_token = params["access_token"] = self.access_token()
            answer = self._send(method, path, params, body)
            errcode: int = answer["errcode"]
            for hook in ANSWER_HOOKS:  # metrics (flask_wecom.metrics); a hook must not raise
                hook(path, errcode)
            if errcode == 0:
                return answer
            if (
                access_token is not None
                and errcode in TOKEN_INVALID_ERRCODES
                and not token_refetched
            ):
                logger.info("WeCom %s answered %d: fetching a new access token", path, errcode)
                self._forget_token(access_token)
                token_refetched = True
            elif errcode in RETRY_ERRCODES and attempt < self.max_attempts:
                delay = self.retry_backoff * 2 ** (attempt - 1)
                logger.warning(
                    "WeCom %s answered %d (attempt %d of %d): retrying in %.2f s",
                    path,
                    errcode,
                    attempt,
                    self.max_attempts,
                    delay,
                )
                self._sleep(delay)
                attempt += 1
            else:
                raise APIError(errcode, str(answer.get("errmsg", "")))

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int],
        body: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Send one HTTP request; return the JSON object WeCom answered."""
        return _exchange(
            self._session,
            method,
            self.base_url + path,
            f"{method} {path}",
            params,
            body,
            self.timeout,
        )


def _exchange(
    session: requests.Session,
    method: str,
    url: str,
    where: str,
    params: Mapping[str, str | int],
    body: Mapping[str, Any] | None,
    timeout: float,
) -> dict[str, Any]:
    """One HTTP exchange with WeCom; errors name ``where``, never the URL's query."""
    # Chinese text travels as UTF-8, not as \uXXXX escapes.
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
    try:
        response = session.request(
            method,
            url,
            params=params,
            data=data,
            headers=_JSON_HEADERS if data is not None else None,
            timeout=timeout,
            allow_redirects=False,  # a 3xx is an HTTP error status below, never followed
        )
    except requests.RequestException as error:
        raise TransportError(f"{where} failed: {type(error).__name__}") from None
    if response.status_code != 200:
        raise TransportError(f"{where} answered HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        raise TransportError(f"{where} answered something other than JSON") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("errcode"), int):
        raise TransportError(f"{where} answered JSON without an integer errcode")
    return answer


def post_response_url(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout: float = 10.0,
    session: requests.Session | None = None,
    origins: Collection[str] | None = None,
) -> dict[str, Any]:
    """An AI bot's active reply (doc 101138): POST plain JSON to a callback's ``response_url``.

    Each ``response_url`` works once, within an hour. Errors never show the URL,
    whose ``response_code`` is as good as a password for that one reply. The URL is
    checked first (:func:`check_response_url`) and redirects are not followed.

    :param origins: the accepted origins; by default :data:`RESPONSE_URL_ORIGINS`.
    :raises UnsafeURLError: the URL is not https on an accepted origin; nothing was sent.
    :raises APIError: WeCom answered a non-zero errcode.
    :raises TransportError: WeCom could not be reached.
    """
    check_response_url(url, RESPONSE_URL_ORIGINS if origins is None else origins)
    if requests is None:
        raise ImportError(
            "posting to response_url needs requests: pip install 'flask-wecom[client]'"
        )
    http = session or requests.Session()
    try:
        answer = _exchange(http, "POST", url, "POST response_url", {}, payload, timeout)
    finally:
        if session is None:
            http.close()
    if answer["errcode"] != 0:
        raise APIError(answer["errcode"], str(answer.get("errmsg", "")))
    return answer


class UnsafeURLError(WeComError, ValueError):
    """A URL this library would send secrets or replies to is not an acceptable one:
    not https, not an accepted host, or written so that parsers may disagree on its host.
    The message never holds the URL's query (a ``response_code`` is a one-time secret)."""

    reason = "unsafe_url"


def _origin(parts: SplitResult) -> str:
    """``scheme://host:port`` of a parsed URL, lower-cased, with the scheme's default port."""
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme, 0)
    host = parts.hostname or ""
    return f"{parts.scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


def _split(url: str, what: str) -> SplitResult:
    """Parse ``url``; refuse what parsers read differently (user info, backslashes,
    white space, control characters) and what is not http(s) with a host."""
    if "\\" in url or not url.isprintable() or any(c.isspace() for c in url):
        raise UnsafeURLError(f"{what} holds a backslash, white space or a control character")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise UnsafeURLError(f"{what} is not a valid URL") from None
    if "@" in parts.netloc:
        raise UnsafeURLError(f"{what} holds user info (user@host)")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeURLError(f"{what} must be an https:// URL with a host name")
    return parts


def check_response_url(url: str, origins: Collection[str] = RESPONSE_URL_ORIGINS) -> None:
    """Refuse a ``response_url`` that is not on one of ``origins`` (https by default).

    An origin is ``scheme://host[:port]``; the URL must match one exactly (no sub-domains,
    default ports implied). An ``http://`` origin in ``origins`` is an explicit allowance
    (a loopback fake in tests).

    :raises UnsafeURLError: the URL is malformed or on another origin.
    """
    parts = _split(url, "response_url")
    if _origin(parts) not in {_origin(_split(origin, "an origin")) for origin in origins}:
        raise UnsafeURLError(
            f"response_url points to {parts.scheme}://{parts.hostname}, not to an accepted "
            "origin (flask_wecom.client.RESPONSE_URL_ORIGINS)"
        )


def check_origin(origin: str) -> str:
    """Check one entry of the accepted ``response_url`` origins: ``scheme://host[:port]``
    (http or https), nothing else; return it unchanged.

    :raises UnsafeURLError: it is not an origin.
    """
    parts = _split(origin, "an origin")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UnsafeURLError("an origin is scheme://host[:port], without a path or query")
    return origin


def check_api_base_url(url: str, *, allow_http: bool = False) -> str:
    """Check the API base URL (``WECOM_API_BASE_URL``); return it unchanged.

    ``https://`` always; ``http://`` only to a loopback address (127.0.0.0/8, ::1,
    localhost) or with ``allow_http``. No query or fragment.

    :raises UnsafeURLError: the URL is not acceptable.
    """
    parts = _split(url, "the API base URL")
    if parts.query or parts.fragment:
        raise UnsafeURLError("the API base URL must not hold a query or fragment")
    if parts.scheme == "http" and not (allow_http or _is_loopback(parts.hostname or "")):
        raise UnsafeURLError(
            "the API base URL must be https:// (the secret and access tokens travel in it); "
            "http:// is accepted only to a loopback address, or with allow_http=True"
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
