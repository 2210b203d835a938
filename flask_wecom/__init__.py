"""flask_wecom: receive WeCom (企业微信) callbacks in any WSGI application.

The core (crypto, envelopes, messages, replies, routing, middleware) imports no
web framework; the Flask names below are loaded only when first used.

Flask (loaded lazily, from :mod:`flask_wecom.extension`):
    ``WeCom`` (an app's callback URL and its handlers), ``AIBot`` (智能机器人),
    ``WeComSuite`` (第三方应用), ``current_message`` (the message being handled).

Framework-free: ``WeComCrypto``, ``signature``, ``Decrypted`` (crypto);
``WeComError`` (the error root); ``Message``, ``parse_message`` (messages);
``Reply`` and its kinds ``TextReply``, ``ImageReply``, ``VoiceReply``, ``VideoReply``,
``NewsReply`` with ``Article``, ``StreamReply``, ``TemplateCardReply``,
``UpdateButtonReply``, ``UpdateTaskcardReply``, ``UpdateTemplateCardReply``,
``WelcomeTextReply`` (replies); ``Router`` (routing); ``WeComMiddleware``, ``Endpoint``,
``Outcome`` (the WSGI adapter). ``__version__`` is the installed version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .crypto import Decrypted as Decrypted
from .crypto import WeComCrypto as WeComCrypto
from .crypto import signature as signature
from .errors import WeComError as WeComError
from .messages import Message as Message
from .messages import parse_message as parse_message
from .middleware import Endpoint as Endpoint
from .middleware import Outcome as Outcome
from .middleware import WeComMiddleware as WeComMiddleware
from .replies import Article as Article
from .replies import ImageReply as ImageReply
from .replies import NewsReply as NewsReply
from .replies import Reply as Reply
from .replies import StreamReply as StreamReply
from .replies import TemplateCardReply as TemplateCardReply
from .replies import TextReply as TextReply
from .replies import UpdateButtonReply as UpdateButtonReply
from .replies import UpdateTaskcardReply as UpdateTaskcardReply
from .replies import UpdateTemplateCardReply as UpdateTemplateCardReply
from .replies import VideoReply as VideoReply
from .replies import VoiceReply as VoiceReply
from .replies import WelcomeTextReply as WelcomeTextReply
from .router import Router as Router

if TYPE_CHECKING:
    from .extension import AIBot as AIBot
    from .extension import WeCom as WeCom
    from .extension import WeComSuite as WeComSuite
    from .extension import current_message as current_message

__all__ = [
    "AIBot",
    "Article",
    "Decrypted",
    "Endpoint",
    "ImageReply",
    "Message",
    "NewsReply",
    "Outcome",
    "Reply",
    "Router",
    "StreamReply",
    "TemplateCardReply",
    "TextReply",
    "UpdateButtonReply",
    "UpdateTaskcardReply",
    "UpdateTemplateCardReply",
    "VideoReply",
    "VoiceReply",
    "WeCom",
    "WeComCrypto",
    "WeComError",
    "WeComMiddleware",
    "WeComSuite",
    "WelcomeTextReply",
    "current_message",
    "parse_message",
    "signature",
]

_FLASK_NAMES = {"AIBot", "WeCom", "WeComSuite", "current_message"}


def __dir__() -> list[str]:
    """Every public name, the lazily loaded Flask ones included (for ``dir()`` and IDEs)."""
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    if name in _FLASK_NAMES:
        from . import extension

        return getattr(extension, name)
    if name == "__version__":
        from importlib.metadata import version

        return version("flask-wecom")
    raise AttributeError(f"module 'flask_wecom' has no attribute {name!r}")
