"""Crypto micro-benchmark: flask_wecom against wechatpy 1.8.18 and the bare primitive floor.

All three run in one process on the same AES backend (pycryptodome; wechatpy is
forced onto it). Each figure is the best of several repeats, in microseconds per
call; ratios are reference time / our time, so 3.0 means three times faster.

Run: scripts/bench.sh crypto   (or: python bench/crypto_bench.py)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

from Crypto.Cipher import AES

sys.modules["wechatpy.crypto.cryptography"] = None  # type: ignore[assignment]  # force pycryptodome
from wechatpy.enterprise.crypto import WeChatCrypto  # noqa: E402

from flask_wecom.crypto import WeComCrypto, signature  # noqa: E402
from flask_wecom.envelope import extract_encrypted  # noqa: E402

VECTORS = json.loads((Path(__file__).parent.parent / "tests/vectors/public.json").read_text())
URL_VECTOR = VECTORS[0]
#: The official sample's text-message callback (a 288-byte ciphertext, ~600-byte body).
CALLBACK = VECTORS[1]
REPLY = (
    "<xml><ToUserName><![CDATA[ChenJiaShun]]></ToUserName>"
    "<FromUserName><![CDATA[ww1436e0e65a779aee]]></FromUserName>"
    "<CreateTime>1476422779</CreateTime><MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[echo: 你好, this is a typical short passive reply]]></Content></xml>"
)
TARGETS = {"decrypt_message": 3.0, "encrypt_message": 2.0, "verify_url": None}


def floor_decrypt(key: bytes, token: str) -> Callable[[], object]:
    """sha1 + base64 + one AES-CBC pass with a fresh cipher: the least any decryptor does."""
    encrypted = CALLBACK["encrypt"]
    args = (token, CALLBACK["timestamp"], CALLBACK["nonce"], encrypted)

    def run() -> object:
        hashlib.sha1("".join(sorted(args)).encode()).hexdigest()
        return AES.new(key, AES.MODE_CBC, key[:16]).decrypt(base64.b64decode(encrypted))

    return run


def floor_encrypt(key: bytes, token: str) -> Callable[[], object]:
    """One AES-CBC pass with a fresh cipher + base64 + sha1 over a padded reply."""
    data = REPLY.encode()
    data += bytes([32 - len(data) % 32]) * (32 - len(data) % 32)

    def run() -> object:
        encrypted = base64.b64encode(AES.new(key, AES.MODE_CBC, key[:16]).encrypt(data))
        return hashlib.sha1(b"".join(sorted([token.encode(), b"1", b"2", encrypted]))).hexdigest()

    return run


def best_of(call: Callable[[], object], number: int, repeat: int) -> float:
    """Best time per call, in microseconds."""
    return min(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    """Measure, print a table and the ratios; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    v, u = CALLBACK, URL_VECTOR
    ours = WeComCrypto(v["token"], v["encoding_aes_key"], v["receive_id"])
    theirs = WeChatCrypto(v["token"], v["encoding_aes_key"], v["receive_id"])
    key = base64.b64decode(v["encoding_aes_key"] + "=")
    sig_args = (v["msg_signature"], v["timestamp"], v["nonce"])
    url_args = (u["msg_signature"], u["timestamp"], u["nonce"], u["echostr"])

    # Same answers first: a benchmark of wrong code is worthless.
    assert ours.decrypt_message(v["post_data"], *sig_args).decode() == theirs.decrypt_message(
        v["post_data"], *sig_args
    )
    assert ours.verify_url(*url_args) == theirs.check_signature(*url_args)
    envelope = ours.encrypt_message(REPLY, v["nonce"], v["timestamp"])
    reply_sig = signature(v["token"], v["timestamp"], v["nonce"], extract_encrypted(envelope))
    assert theirs.decrypt_message(envelope, reply_sig, v["timestamp"], v["nonce"]) == REPLY

    cases: dict[str, tuple[Callable[[], object], Callable[[], object], Callable[[], object]]] = {
        "decrypt_message": (
            lambda: ours.decrypt_message(v["post_data"], *sig_args),
            lambda: theirs.decrypt_message(v["post_data"], *sig_args),
            floor_decrypt(key, v["token"]),
        ),
        "encrypt_message": (
            lambda: ours.encrypt_message(REPLY, v["nonce"], v["timestamp"]),
            lambda: theirs.encrypt_message(REPLY, v["nonce"], v["timestamp"]),
            floor_encrypt(key, v["token"]),
        ),
        "verify_url": (
            lambda: ours.verify_url(*url_args),
            lambda: theirs.check_signature(*url_args),
            floor_decrypt(key, v["token"]),
        ),
    }
    print(
        f"{'operation':<16} {'flask_wecom':>12} {'wechatpy':>10} {'floor':>8} "
        f"{'x wechatpy':>11} {'x floor':>8}  target"
    )
    missed = 0
    for name, (our_call, their_call, floor_call) in cases.items():
        t_ours = best_of(our_call, args.number, args.repeat)
        t_theirs = best_of(their_call, args.number, args.repeat)
        t_floor = best_of(floor_call, args.number, args.repeat)
        ratio = t_theirs / t_ours
        target = TARGETS[name]
        verdict = (
            "-"
            if target is None
            else (f">= {target}x ok" if ratio >= target else f"MISSED {target}x")
        )
        missed += target is not None and ratio < target
        print(
            f"{name:<16} {t_ours:>10.1f}us {t_theirs:>8.1f}us {t_floor:>6.1f}us "
            f"{ratio:>10.2f}x {t_floor / t_ours:>7.2f}x  {verdict}"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
