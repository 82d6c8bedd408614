"""Append-only CSV records: one header, whole rows, even with two writers at once."""

from __future__ import annotations

import csv
import multiprocessing
import os
import threading
import time

import pytest

from maskdetect import records

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py

FIELDS = ["writer", "number", "text"]


def _write_many(path: str, writer: int) -> None:
    for number in range(150):
        records.append_rows(path, FIELDS, [{"writer": writer, "number": number, "text": "a, \"quoted\"\nvalue"}])


def test_two_processes_appending_at_once_leave_a_valid_csv(tmp_path):
    path = str(tmp_path / "log.csv")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_many, args=(path, writer)) for writer in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == FIELDS
    assert len(rows) == 301 and all(len(row) == 3 for row in rows)
    for writer in ("0", "1"):
        assert [row[1] for row in rows[1:] if row[0] == writer] == [str(n) for n in range(150)]
    # the lock is the record itself: nothing is left beside it
    assert sorted(path.name for path in tmp_path.iterdir()) == ["log.csv"]


def test_a_lock_file_an_earlier_version_left_beside_a_record_goes_and_nothing_else(tmp_path):
    path = tmp_path / "faces.csv"
    (tmp_path / "faces.csv.lock").touch()
    (tmp_path / "notes.csv.lock").write_text("the user's own")
    records.append_rows(path, FIELDS, [{"writer": 0, "number": 1, "text": "x"}])
    records.replace_rows(path, FIELDS, records.read_rows(path) * 2)
    assert sorted(item.name for item in tmp_path.iterdir()) == ["faces.csv", "notes.csv.lock"]
    assert len(records.read_rows(path)) == 2


def test_existing_header_order_wins_and_unknown_columns_are_refused(tmp_path):
    path = tmp_path / "log.csv"
    records.append_rows(path, ["b", "a"], [{"a": 1, "b": 2}])
    records.append_rows(path, ["a", "b"], [{"a": 3, "b": 4}])
    assert path.read_text().splitlines() == ["b,a", "2,1", "4,3"]
    try:
        records.append_rows(path, ["a", "b"], [{"a": 1, "c": 2}])
    except ValueError as error:
        assert "c" in str(error)
    else:
        raise AssertionError("an unknown column was accepted")


def test_a_writer_that_waited_while_the_record_was_rewritten_appends_to_the_new_record(tmp_path):
    path = tmp_path / "faces.csv"
    records.append_rows(path, FIELDS, [{"writer": 0, "number": 0, "text": "old"}])
    with records._lock(path):  # a rewrite in progress, as replace_rows does it
        waiting = threading.Thread(target=records.append_rows,
                                   args=(path, FIELDS, [{"writer": 1, "number": 1, "text": "waited"}]))
        waiting.start()
        time.sleep(0.3)
        assert waiting.is_alive()  # it waits for the lock
        new = tmp_path / ".faces.csv.rewrite"
        new.write_text("writer,number,text\n0,0,new\n")
        os.replace(new, path)
    waiting.join(10)
    assert [row["text"] for row in records.read_rows(path)] == ["new", "waited"]
