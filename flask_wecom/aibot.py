"""AI bots (智能机器人) in API mode: JSON callbacks, stream replies, ``response_url``.

:class:`BotReceiver` is the :class:`~flask_wecom.receivers.Receiver` of an AI bot's
callback URL. A handler may return:

* a ``str``: the whole answer (a finished stream; the welcome text for ``enter_chat``);
* an iterator or generator of text chunks (and
  :class:`~flask_wecom.replies.StreamImage` objects): the first callback is answered at
  once with a stream id, the chunks are gathered in the background, and every refresh
  callback (流式消息刷新) gets all the content so far, until the iterator ends;
* any bot reply object, or None.

Stream state lives in the pipeline's store (Redis for several workers or hosts), scoped
to the endpoint. A late reply goes to the message's ``response_url``. No web imports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Mapping
from typing import Any, ClassVar

from .aio import is_stream
from .client import post_response_url
from .envelope import EnvelopeFormat
from .ids import unique_id
from .messages import Message
from .receivers import Call, Receiver
from .replies import Reply, StreamReply, TemplateCardReply, WelcomeTextReply
from .streams import StreamStore

__all__ = ["BotReceiver"]

#: Stream producers running on an event loop (a reference keeps each alive until it ends).
_PRODUCERS: set[asyncio.Task[None]] = set()


class BotReceiver(Receiver):
    """An AI bot's callback URL: JSON envelopes, receive id ``""``, streamed answers."""

    format: ClassVar[EnvelopeFormat] = "json"
    default_name: ClassVar[str] = "aibot"
    config_prefix: ClassVar[str] = "WECOM_AIBOT_"
    preset: ClassVar[Mapping[str, Any]] = {"FORMAT": "json", "CORP_ID": "", "PATH": "/aibot"}
    required: ClassVar[tuple[str, ...]] = ("TOKEN", "ENCODING_AES_KEY")
    #: Late bot replies go to the message's response_url.
    sends_late_replies_by_api: ClassVar[bool] = False
    #: The origins a ``response_url`` may point to (``WECOM_RESPONSE_URL_ORIGINS``); None:
    #: :data:`flask_wecom.client.RESPONSE_URL_ORIGINS`, WeCom's own.
    response_url_origins: tuple[str, ...] | None = None

    def receive_ids(
        self, corp_ids: tuple[str, ...], suite_id: str
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """AI bots encrypt with an empty receive id, both ways."""
        return ("",), ("",)

    def streams(self, call: Call) -> StreamStore:
        """The stream states of the call's endpoint."""
        return StreamStore(call.store, scope=call.endpoint)

    def before_handler(self, call: Call) -> Reply | None:
        """Stream refresh callbacks (流式消息刷新) are answered from the stream state."""
        message = call.message
        if message.is_aibot and message.type == "stream":
            stream = message.raw.get("stream") or {}
            stream_id = stream.get("id", "") if isinstance(stream, Mapping) else ""
            return self.streams(call).snapshot(str(stream_id))
        return None

    def to_reply(self, result: Any, call: Call) -> Reply | None:
        """A ``str`` is a finished stream (welcome text for enter_chat); an iterator streams."""
        if isinstance(result, str):
            if not result:
                return None
            if call.message.event == "enter_chat":
                return WelcomeTextReply(result)
            return StreamReply(unique_id(), result, finish=True)
        if is_stream(result):
            streams = self.streams(call)
            stream_id = streams.start()
            if isinstance(result, AsyncIterable) and _running_loop():  # produced on the loop
                producer = asyncio.get_running_loop().create_task(
                    streams.run_async(stream_id, result)
                )
                _PRODUCERS.add(producer)
                producer.add_done_callback(_PRODUCERS.discard)
            elif isinstance(result, AsyncIterable):  # an async generator on a WSGI server
                call.streams.defer(lambda: asyncio.run(streams.run_async(stream_id, result)))
            else:
                call.streams.defer(lambda: streams.run(stream_id, result))
            return StreamReply(stream_id)
        return super().to_reply(result, call)

    def deliver(self, call: Call, reply: Reply) -> None:
        """A late bot reply goes to the message's response_url as markdown (or a card)."""
        self.respond(call.message, reply)

    def respond(self, message: Message, reply: Reply | str) -> None:
        """Actively reply to ``message`` through its ``response_url`` (once, within an hour).

        A ``str`` or a text/stream reply is sent as markdown; a template card as a card.

        :raises ValueError: the message has no response_url, or the reply has no active form.
        :raises APIError: WeCom refused it (e.g. the response_url was used already).
        """
        url = getattr(message, "response_url", None)
        if not url:
            raise ValueError("this message has no response_url to answer")
        payload: dict[str, Any]
        if isinstance(reply, TemplateCardReply):
            payload = {"msgtype": "template_card", "template_card": reply.card}
        else:
            content = reply if isinstance(reply, str) else getattr(reply, "content", None)
            if not isinstance(content, str):
                raise ValueError(f"{type(reply).__name__} cannot be sent to response_url")
            payload = {"msgtype": "markdown", "markdown": {"content": content}}
        post_response_url(url, payload, origins=self.response_url_origins)


def _running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
