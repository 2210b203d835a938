"""Identifiers that never repeat (flask_wecom.ids): across threads, and across a fork."""

from __future__ import annotations

import os
import threading

from flask_wecom.ids import unique_id


def test_ids_never_repeat_across_threads() -> None:
    drawn: list[list[str]] = [[] for _ in range(8)]

    def draw(into: list[str]) -> None:
        into.extend(unique_id() for _ in range(5000))

    threads = [threading.Thread(target=draw, args=(ids,)) for ids in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for ids in drawn for i in ids]
    assert len(set(every)) == len(every) == 40000
    assert len({i[:16] for i in every}) == 1  # one random part per process, then a counter


def test_a_forked_child_draws_its_own_random_part() -> None:
    parent = unique_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, unique_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child[:16] != parent[:16]  # the counter alone would repeat the parent's ids
    assert child != unique_id()
