"""Tests for flask_wecom.replies: render -> parse round trips, limits and the reply table."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_wecom.errors import ParseError, ReplyError
from flask_wecom.messages import Message, parse_message, xml_to_dict
from flask_wecom.replies import (
    ALLOWED_REPLIES,
    MAX_FEEDBACK_ID_BYTES,
    MAX_NEWS_ARTICLES,
    MAX_STREAM_BYTES,
    MAX_STREAM_IMAGE_BYTES,
    MAX_STREAM_IMAGES,
    MAX_TEXT_BYTES,
    Article,
    BotUpdateTemplateCardReply,
    ImageReply,
    NewsReply,
    Reply,
    StreamImage,
    StreamReply,
    StreamWithTemplateCardReply,
    TemplateCardReply,
    TextReply,
    UpdateButtonReply,
    UpdateTaskcardReply,
    UpdateTemplateCardReply,
    VideoReply,
    VoiceReply,
    WelcomeTextReply,
    allowed_replies,
    parse_reply,
    truncate_utf8_tail,
)

CORPUS = Path(__file__).parent / "corpus"
NOW = 1700000000.75


def corpus(path: str) -> Message:
    return parse_message((CORPUS / path).read_bytes())


def clock() -> float:
    return NOW


# --------------------------------------------------------------------------- strategies

#: Pieces that break naive XML writers: CDATA terminators, markup, CR/LF, C1 controls,
#: line separators, non-BMP characters and a BOM.
HOSTILE_PIECES = [
    "]]>",
    "]]",
    "]",
    ">",
    "<",
    "&",
    "&amp;",
    "<![CDATA[",
    "\r",
    "\r\n",
    "\n",
    "\t",
    "\x7f",
    "\x85",
    "\x9f",
    "\u2028",
    "\ufeff",
    "\U0001f600",
    "\U0010ffff",
    " ",
    "",
]


def xml_char(char: str) -> bool:
    """True for the characters XML 1.0 can carry."""
    return char in "\t\n\r" or (char >= "\x20" and char not in "\ufffe\uffff")


XML_TEXT = st.lists(
    st.one_of(
        st.sampled_from(HOSTILE_PIECES),
        st.text(st.characters(exclude_categories=("Cs",)).filter(xml_char), max_size=20),
    ),
    max_size=12,
).map("".join)
JSON_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=60) | XML_TEXT
JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | JSON_TEXT,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(JSON_TEXT, children, max_size=3)
    ),
    max_leaves=12,
)
JSON_CARD = st.dictionaries(JSON_TEXT, JSON_VALUE, max_size=5).map(
    lambda card: {**card, "card_type": "text_notice", "task_id": "TASKID"}
)


def items(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(st.fixed_dictionaries(fields), max_size=3)


#: Cards in the snake_case schema of doc 101032, with hostile text in every leaf.
XML_CARD = st.fixed_dictionaries(
    {
        "card_type": st.sampled_from(
            [
                "text_notice",
                "news_notice",
                "button_interaction",
                "vote_interaction",
                "multiple_interaction",
            ]
        ),
    },
    optional={
        "source": st.fixed_dictionaries(
            {"icon_url": XML_TEXT, "desc": XML_TEXT, "desc_color": st.integers(0, 3)}
        ),
        "main_title": st.fixed_dictionaries({"title": XML_TEXT, "desc": XML_TEXT}),
        "sub_title_text": XML_TEXT,
        "horizontal_content_list": items(
            keyname=XML_TEXT, value=XML_TEXT, type=st.integers(0, 3), userid=XML_TEXT
        ),
        "jump_list": items(
            type=st.integers(0, 3), title=XML_TEXT, appid=XML_TEXT, pagepath=XML_TEXT
        ),
        "card_image": st.fixed_dictionaries(
            {"url": XML_TEXT, "aspect_ratio": st.floats(1.3, 2.25)}
        ),
        "button_list": items(text=XML_TEXT, style=st.integers(1, 4), key=XML_TEXT),
        "checkbox": st.fixed_dictionaries(
            {
                "question_key": XML_TEXT,
                "option_list": items(id=XML_TEXT, text=XML_TEXT, is_checked=st.booleans()),
                "disable": st.booleans(),
                "mode": st.integers(0, 1),
            }
        ),
        "action_menu": st.fixed_dictionaries(
            {"desc": XML_TEXT, "action_list": items(text=XML_TEXT, key=XML_TEXT)}
        ),
        "replace_text": XML_TEXT,
        "task_id": XML_TEXT,
    },
)
FEEDBACK_ID = st.none() | JSON_TEXT.filter(lambda t: len(t.encode()) <= MAX_FEEDBACK_ID_BYTES)
STREAM = st.builds(
    StreamReply, id=JSON_TEXT, content=JSON_TEXT, finish=st.just(False), feedback_id=FEEDBACK_ID
) | st.builds(
    StreamReply,
    id=JSON_TEXT,
    content=JSON_TEXT,
    finish=st.just(True),
    msg_items=st.lists(st.binary(max_size=64).map(StreamImage.from_bytes), max_size=3),
    feedback_id=FEEDBACK_ID,
)

ROUND_TRIPS = [
    pytest.param(st.builds(TextReply, XML_TEXT), "app/text.xml", id="text"),
    pytest.param(st.builds(ImageReply, XML_TEXT), "app/text.xml", id="image"),
    pytest.param(st.builds(VoiceReply, XML_TEXT), "app/voice.xml", id="voice"),
    pytest.param(
        st.builds(VideoReply, XML_TEXT, XML_TEXT, XML_TEXT), "app/event_click.xml", id="video"
    ),
    pytest.param(
        st.builds(
            NewsReply,
            st.lists(
                st.builds(Article, XML_TEXT, XML_TEXT, XML_TEXT, XML_TEXT),
                min_size=1,
                max_size=MAX_NEWS_ARTICLES,
            ),
        ),
        "app/event_subscribe.xml",
        id="news",
    ),
    pytest.param(
        st.builds(UpdateButtonReply, XML_TEXT),
        "app/event_template_card_event.xml",
        id="update_button",
    ),
    pytest.param(
        st.builds(UpdateTemplateCardReply, XML_CARD),
        "app/event_template_card_event.xml",
        id="update_template_card",
    ),
    pytest.param(
        st.builds(UpdateTaskcardReply, XML_TEXT),
        "app/event_taskcard_click.xml",
        id="update_taskcard",
    ),
    pytest.param(STREAM, "aibot/text.json", id="stream"),
    pytest.param(STREAM, "aibot/stream.json", id="stream-refresh"),
    pytest.param(
        st.builds(WelcomeTextReply, JSON_TEXT), "aibot/event_enter_chat.json", id="welcome_text"
    ),
    pytest.param(st.builds(TemplateCardReply, JSON_CARD), "aibot/mixed.json", id="template_card"),
    pytest.param(
        st.builds(StreamWithTemplateCardReply, STREAM, JSON_CARD),
        "aibot/voice.json",
        id="stream_with_template_card",
    ),
    pytest.param(
        st.builds(
            BotUpdateTemplateCardReply, JSON_CARD, st.none() | st.lists(JSON_TEXT, max_size=3)
        ),
        "aibot/event_template_card_event.json",
        id="bot_update_template_card",
    ),
]


class TestRoundTrip:
    """render -> parse_reply gives the same reply, addressed back to the sender."""

    @pytest.mark.parametrize(("strategy", "message_path"), ROUND_TRIPS)
    @settings(max_examples=150, deadline=None)
    @given(data=st.data())
    def test_render_then_parse(
        self, strategy: st.SearchStrategy[Reply], message_path: str, data: st.DataObject
    ) -> None:
        """The rendered plaintext parses back to an equal reply object."""
        reply = data.draw(strategy)
        message = corpus(message_path)
        plaintext = reply.render(message, clock=clock)
        assert parse_reply(plaintext) == reply
        assert parse_reply(plaintext.encode("utf-8")) == reply
        if reply.format == "xml":
            document = xml_to_dict(plaintext)
            assert document["ToUserName"] == message.from_user_name
            assert document["FromUserName"] == message.to_user_name
            assert document["CreateTime"] == "1700000000"
        else:
            compact = json.dumps(json.loads(plaintext), ensure_ascii=False, separators=(",", ":"))
            assert plaintext == compact

    def test_cdata_terminator_is_split(self) -> None:
        """``]]>`` is written as two CDATA sections, not left to end the first one early."""
        plaintext = TextReply("a]]>b").render(corpus("app/text.xml"), clock=clock)
        assert "<Content><![CDATA[a]]]]><![CDATA[>b]]></Content>" in plaintext

    def test_text_reply_layout(self) -> None:
        """A text reply has exactly the documented elements, in order."""
        plaintext = TextReply("hi").render(corpus("app/text.xml"), clock=clock)
        assert plaintext == (
            "<xml><ToUserName><![CDATA[ZhangSan]]></ToUserName>"
            "<FromUserName><![CDATA[ww1436e0e65a779aee]]></FromUserName>"
            "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            "<Content><![CDATA[hi]]></Content></xml>"
        )

    def test_stream_reply_layout(self) -> None:
        """A stream reply is compact JSON with non-ASCII kept."""
        reply = StreamReply("s1", "你好", finish=True, feedback_id="f")
        assert reply.render(corpus("aibot/text.json")) == (
            '{"msgtype":"stream","stream":{"id":"s1","finish":true,"content":"你好",'
            '"feedback":{"id":"f"}}}'
        )

    def test_default_clock_is_now(self) -> None:
        """Without a clock, CreateTime is the current time in seconds."""
        before = int(time.time())
        document = xml_to_dict(ImageReply("m").render(corpus("app/text.xml")))
        assert before <= int(document["CreateTime"]) <= time.time()

    def test_update_template_card_writes_documented_xml_names(self) -> None:
        """Card keys become doc 90241's CamelCase elements, including the irregular ones."""
        card = {
            "card_type": "button_interaction",
            "checkbox": {"question_key": "q", "option_list": [{"id": "1", "is_checked": True}]},
            "horizontal_content_list": [{"keyname": "k", "userid": "u"}],
            "jump_list": [{"appid": "wx1", "pagepath": "/p"}],
        }
        plaintext = UpdateTemplateCardReply(card).render(
            corpus("app/event_template_card_event.xml"), clock=clock
        )
        template_card = xml_to_dict(plaintext)["TemplateCard"]
        assert template_card == {
            "CardType": "button_interaction",
            "CheckBox": {"QuestionKey": "q", "OptionList": {"Id": "1", "IsChecked": "true"}},
            "HorizontalContentList": {"KeyName": "k", "UserId": "u"},
            "JumpList": {"AppId": "wx1", "PagePath": "/p"},
        }

    def test_xml_card_is_stored_as_text(self) -> None:
        """Card leaves become their XML text; list keys stay lists, other 1-lists unwrap."""
        reply = UpdateTemplateCardReply(
            {
                "card_type": "text_notice",
                "source": {"desc_color": 1},
                "button_list": (),
                "jump_list": {"type": 1},
                "sub_title_text": ["only"],
                "card_image": {},
            }
        )
        assert reply.card == {
            "card_type": "text_notice",
            "source": {"desc_color": "1"},
            "jump_list": [{"type": "1"}],
            "sub_title_text": "only",
            "card_image": "",
        }


UNREPRESENTABLE = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1f", "\ufffe", "\uffff", "\ud800"]


class TestConstructionRules:
    """Limits and refused characters raise ReplyError when the reply is built."""

    @pytest.mark.parametrize(
        "char", [pytest.param(char, id=f"U+{ord(char):04X}") for char in UNREPRESENTABLE]
    )
    @pytest.mark.parametrize(
        "build",
        [
            pytest.param(TextReply, id="text"),
            pytest.param(lambda text: VideoReply("m", description=text), id="video"),
            pytest.param(lambda text: Article("t", url=text), id="article"),
            pytest.param(UpdateButtonReply, id="update_button"),
            pytest.param(
                lambda text: UpdateTemplateCardReply({"card_type": "x", "sub_title_text": text}),
                id="update_template_card",
            ),
        ],
    )
    def test_xml_refuses_characters_xml_cannot_carry(self, build: Any, char: str) -> None:
        """Controls other than tab/LF/CR, U+FFFE/U+FFFF and lone surrogates are refused."""
        with pytest.raises(ReplyError):
            build(f"a{char}b")

    @pytest.mark.parametrize(
        ("build", "message_path"),
        [
            pytest.param(WelcomeTextReply, "aibot/event_enter_chat.json", id="welcome_text"),
            pytest.param(lambda text: StreamReply("s", text), "aibot/text.json", id="stream"),
            pytest.param(
                lambda text: TemplateCardReply({"title": text}),
                "aibot/text.json",
                id="template_card",
            ),
        ],
    )
    def test_json_refuses_lone_surrogates_only(self, build: Any, message_path: str) -> None:
        """JSON escapes control characters, but UTF-8 cannot carry a lone surrogate."""
        reply = build("a\x00\x1fb")
        assert parse_reply(reply.render(corpus(message_path))) == reply
        with pytest.raises(ReplyError):
            build("a\ud800b")

    @pytest.mark.parametrize(
        ("content", "ok"),
        [
            pytest.param("a" * MAX_TEXT_BYTES, True, id="2048-ascii"),
            pytest.param("a" * (MAX_TEXT_BYTES + 1), False, id="2049-ascii"),
            pytest.param("é" * (MAX_TEXT_BYTES // 2), True, id="2048-bytes-2-byte-chars"),
            pytest.param("é" * (MAX_TEXT_BYTES // 2) + "a", False, id="2049-bytes"),
            pytest.param("\U0001f600" * (MAX_TEXT_BYTES // 4), True, id="2048-bytes-non-bmp"),
            pytest.param("你" * 683, False, id="2049-bytes-cjk"),
        ],
    )
    def test_text_reply_limit_is_counted_in_utf8_bytes(self, content: str, ok: bool) -> None:
        """Text over 2048 UTF-8 bytes is refused, not truncated."""
        if ok:
            assert TextReply(content).content == content
        else:
            with pytest.raises(ReplyError, match="2048"):
                TextReply(content)

    @pytest.mark.parametrize(
        ("count", "ok"),
        [
            pytest.param(0, False, id="none"),
            pytest.param(1, True, id="one"),
            pytest.param(MAX_NEWS_ARTICLES, True, id="max"),
            pytest.param(MAX_NEWS_ARTICLES + 1, False, id="too-many"),
        ],
    )
    def test_news_article_count(self, count: int, ok: bool) -> None:
        """A news reply holds 1 to MAX_NEWS_ARTICLES articles."""
        articles = [Article(f"t{i}") for i in range(count)]
        if ok:
            assert NewsReply(articles).articles == tuple(articles)
        else:
            with pytest.raises(ReplyError, match="articles"):
                NewsReply(articles)

    def test_news_needs_article_objects(self) -> None:
        """Anything but Article objects is refused."""
        with pytest.raises(ReplyError):
            NewsReply(["title"])  # type: ignore[list-item]

    def test_stream_content_keeps_the_last_bytes(self) -> None:
        """Content over 20480 bytes keeps its tail, cut on a character boundary."""
        head, tail = "€" * 10, "€" * (MAX_STREAM_BYTES // 3)  # 3 bytes each; 20478 in the tail
        assert StreamReply("s", "x" * MAX_STREAM_BYTES).content == "x" * MAX_STREAM_BYTES
        assert StreamReply("s", "y" + "x" * MAX_STREAM_BYTES).content == "x" * MAX_STREAM_BYTES
        assert StreamReply("s", head + tail).content == tail

    @given(text=st.text(), max_bytes=st.integers(0, 40))
    def test_truncate_utf8_tail(self, text: str, max_bytes: int) -> None:
        """The result is the longest suffix of ``text`` that fits in ``max_bytes``."""
        result = truncate_utf8_tail(text, max_bytes)
        assert text.endswith(result)
        assert len(result.encode("utf-8")) <= max_bytes
        if result != text:
            longer = text[len(text) - len(result) - 1 :]
            assert len(longer.encode("utf-8")) > max_bytes

    def test_stream_images_only_when_finished(self) -> None:
        """msg_item needs finish=True and holds at most 10 images."""
        image = StreamImage.from_bytes(b"\x89PNG")
        with pytest.raises(ReplyError, match="finish"):
            StreamReply("s", msg_items=[image])
        with pytest.raises(ReplyError, match="10"):
            StreamReply("s", finish=True, msg_items=[image] * (MAX_STREAM_IMAGES + 1))
        assert StreamReply("s", finish=True, msg_items=[image] * MAX_STREAM_IMAGES).msg_items

    def test_stream_image_encoding_and_size(self) -> None:
        """An image carries base64 and the MD5 of the raw bytes; over 10 MB is refused."""
        image = StreamImage.from_bytes(b"\xff\xd8jpeg")
        assert base64.b64decode(image.base64) == b"\xff\xd8jpeg"
        assert image.md5 == hashlib.md5(b"\xff\xd8jpeg").hexdigest()
        with pytest.raises(ReplyError):
            StreamImage.from_bytes(bytes(MAX_STREAM_IMAGE_BYTES + 1))

    def test_feedback_id_limit(self) -> None:
        """feedback.id holds at most 256 bytes."""
        assert StreamReply("s", feedback_id="f" * MAX_FEEDBACK_ID_BYTES).feedback_id
        with pytest.raises(ReplyError, match="256"):
            StreamReply("s", feedback_id="f" * (MAX_FEEDBACK_ID_BYTES + 1))

    @pytest.mark.parametrize(
        "card",
        [
            pytest.param({"main_title": {"title": "t"}}, id="no-card-type"),
            pytest.param({"card_type": "x", "MainTitle": {}}, id="camel-case-key"),
            pytest.param({"card_type": "x", "option_1": "a"}, id="key-not-round-tripping"),
            pytest.param({"card_type": "x", "a": [["x", "y"]]}, id="list-of-lists"),
            pytest.param({"card_type": "x", "a": None}, id="none-leaf"),
            pytest.param(["card_type"], id="not-a-mapping"),
        ],
    )
    def test_xml_card_rules(self, card: Any) -> None:
        """Cards that XML cannot carry, or that lack a card_type, are refused."""
        with pytest.raises(ReplyError):
            UpdateTemplateCardReply(card)

    def test_json_card_must_be_json(self) -> None:
        """JSON cards refuse values JSON cannot carry."""
        with pytest.raises(ReplyError):
            TemplateCardReply({"card_type": "x", "bad": object()})
        with pytest.raises(ReplyError):
            TemplateCardReply({"card_type": "x", "bad": float("nan")})
        assert TemplateCardReply({"a": (1, 2)}).card == {"a": [1, 2]}

    def test_replies_are_frozen_and_hashable(self) -> None:
        """Replies cannot be changed; even card replies hash."""
        reply = TemplateCardReply({"card_type": "text_notice"})
        assert hash(reply) == hash(TemplateCardReply({"card_type": "text_notice"}))
        with pytest.raises(AttributeError):
            reply.card = {}  # type: ignore[misc]


TEXT = TextReply("hi")
CARD = {"card_type": "text_notice", "task_id": "TASKID"}


def reply_row(reply: Reply, path: str, ok: bool) -> Any:
    return pytest.param(reply, path, ok, id=f"{type(reply).__name__}->{path.split('.')[0]}")


class TestReplyTable:
    """Which callbacks accept which replies, from the one table."""

    @pytest.mark.parametrize(
        ("reply", "message_path", "ok"),
        [
            reply_row(TEXT, "app/text.xml", True),
            reply_row(TEXT, "app/unknown_file.xml", True),
            reply_row(NewsReply([Article("t")]), "app/event_subscribe.xml", True),
            reply_row(TEXT, "app/event_enter_agent.xml", True),
            reply_row(TEXT, "app/event_location.xml", True),
            reply_row(TEXT, "app/event_click.xml", True),
            reply_row(TEXT, "app/event_view.xml", True),
            reply_row(TEXT, "app/event_view_miniprogram.xml", True),
            reply_row(TEXT, "app/event_scancode_waitmsg.xml", True),
            reply_row(TEXT, "app/event_template_card_menu_event.xml", True),
            reply_row(TEXT, "app/event_scancode_push.xml", False),
            reply_row(TEXT, "app/event_unsubscribe.xml", False),
            reply_row(TEXT, "app/event_change_contact_create_user.xml", False),
            reply_row(TEXT, "app/event_unknown.xml", False),
            reply_row(TEXT, "app/event_template_card_event.xml", False),
            reply_row(UpdateButtonReply("x"), "app/event_template_card_event.xml", True),
            reply_row(UpdateButtonReply("x"), "app/event_click.xml", False),
            reply_row(UpdateButtonReply("x"), "app/text.xml", False),
            reply_row(UpdateTaskcardReply("x"), "app/event_taskcard_click.xml", True),
            reply_row(UpdateTaskcardReply("x"), "app/event_template_card_event.xml", False),
            reply_row(TEXT, "suite/suite_ticket.xml", False),
            reply_row(TEXT, "aibot/text.json", False),
            reply_row(StreamReply("s"), "app/text.xml", False),
            reply_row(StreamReply("s"), "aibot/text.json", True),
            reply_row(StreamReply("s"), "aibot/unknown.json", True),
            reply_row(StreamReply("s"), "aibot/stream.json", True),
            reply_row(TemplateCardReply(CARD), "aibot/stream.json", False),
            reply_row(TemplateCardReply(CARD), "aibot/image.json", True),
            reply_row(TemplateCardReply(CARD), "aibot/event_enter_chat.json", True),
            reply_row(WelcomeTextReply("hi"), "aibot/event_enter_chat.json", True),
            reply_row(WelcomeTextReply("hi"), "aibot/text.json", False),
            reply_row(StreamReply("s"), "aibot/event_enter_chat.json", False),
            reply_row(
                StreamWithTemplateCardReply(StreamReply("s"), CARD), "aibot/stream.json", True
            ),
            reply_row(
                BotUpdateTemplateCardReply(CARD), "aibot/event_template_card_event.json", True
            ),
            reply_row(BotUpdateTemplateCardReply(CARD), "aibot/text.json", False),
            reply_row(WelcomeTextReply("thanks"), "aibot/event_feedback_event.json", False),
            reply_row(StreamReply("s"), "aibot/event_feedback_event.json", False),
            reply_row(StreamReply("s"), "aibot/event_unknown.json", False),
        ],
    )
    def test_render_follows_the_table(self, reply: Reply, message_path: str, ok: bool) -> None:
        """An allowed reply renders; any other raises ReplyError naming what is accepted."""
        message = corpus(message_path)
        assert isinstance(reply, allowed_replies(message)) is ok
        if ok:
            assert parse_reply(reply.render(message, clock=clock)) == reply
        else:
            with pytest.raises(ReplyError, match="cannot answer") as caught:
                reply.render(message, clock=clock)
            assert caught.value.code == -40011

    def test_feedback_event_accepts_only_an_empty_reply(self) -> None:
        """The error says so explicitly."""
        with pytest.raises(ReplyError, match="only an empty reply"):
            TEXT.render(corpus("aibot/event_feedback_event.json"))

    def test_every_table_entry_lists_reply_classes_of_its_channel(self) -> None:
        """App rows list XML replies, AI-bot rows JSON replies."""
        for (channel, _, _), replies in ALLOWED_REPLIES.items():
            assert {cls.format for cls in replies} <= {"xml" if channel == "app" else "json"}

    def test_reply_to_message_without_sender_is_refused(self) -> None:
        """An XML reply needs the message's FromUserName and ToUserName to address it."""
        with pytest.raises(ReplyError, match="FromUserName"):
            TEXT.render(parse_message("<xml><MsgType>text</MsgType></xml>"))

    def test_bot_card_update_needs_the_event_task_id(self) -> None:
        """update_template_card must carry the task_id of the template_card_event."""
        event = corpus("aibot/event_template_card_event.json")
        with pytest.raises(ReplyError, match="task_id"):
            BotUpdateTemplateCardReply({"card_type": "text_notice", "task_id": "OTHER"}).render(
                event
            )


@pytest.mark.parametrize(
    "plaintext",
    [
        pytest.param("hello", id="not-a-document"),
        pytest.param("<xml><MsgType>music</MsgType></xml>", id="unknown-xml-type"),
        pytest.param("<xml><Content>x</Content></xml>", id="xml-without-type"),
        pytest.param("<xml><MsgType>image</MsgType></xml>", id="xml-missing-body"),
        pytest.param(
            "<xml><MsgType>text</MsgType><Content>" + "a" * 3000 + "</Content></xml>",
            id="xml-over-limit",
        ),
        pytest.param('{"msgtype": "markdown"}', id="unknown-json-type"),
        pytest.param('{"msgtype": "stream"}', id="json-missing-body"),
        pytest.param('{"msgtype": "stream", "stream": {"id": "s", "content": 5}}', id="bad-type"),
        pytest.param("{not json", id="malformed-json"),
        pytest.param(b"\xff<xml/>", id="invalid-utf8"),
    ],
)
def test_parse_reply_refuses_what_no_reply_renders(plaintext: str | bytes) -> None:
    """parse_reply raises ParseError for anything that is not a reply."""
    with pytest.raises(ParseError):
        parse_reply(plaintext)


def test_a_reply_holding_a_mapping_renders_what_the_mapping_holds_when_rendered() -> None:
    """Only replies of immutable values keep the JSON written to check them."""
    reply = TemplateCardReply({"card_type": "text_notice", "task_id": "T1"})
    reply.card["task_id"] = "T2"  # type: ignore[index]  # its own copy, changed after
    message = corpus("aibot/mixed.json")
    assert json.loads(reply.render(message))["template_card"]["task_id"] == "T2"
    stream = StreamReply("s", "done", finish=True)
    assert (
        stream.render(message)
        == stream.render(message)
        == ('{"msgtype":"stream","stream":{"id":"s","finish":true,"content":"done"}}')
    )
