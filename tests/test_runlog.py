"""The training log (maskdetect.runlog): appending rows, trial keys, the leaderboard and the reproduce command."""

from __future__ import annotations

import dataclasses
import logging
import shlex

import pytest

from maskdetect import __version__, records, runlog
from maskdetect.settings import Settings
from maskdetect.train import build_parser

pytestmark = pytest.mark.unit

RUN = {"model": "small", "epochs": 30, "batch_size": 32, "image_size": 64, "kernel_size": 3, "optimizer": "adam",
       "learning_rate": 0.001, "augmentation": "light", "seed": 42, "val_split": 0.15, "test_split": 0.15,
       "data": "processed_data", "data_hash": "d1", "status": "ok"}


def ranked(rows, rank_on=None) -> list[str]:
    return [row["run_id"] for row in runlog.leaderboard(rows, rank_on)]


def test_the_header_is_written_once_when_the_log_is_created_and_rows_are_appended_never_rewritten(tmp_path):
    logs = tmp_path / "logs"
    runlog.append_log(logs, {**RUN, "run_id": "first", "val_accuracy": 0.9})
    before = (logs / runlog.LOG_NAME).read_bytes()
    runlog.append_log(logs, {**RUN, "run_id": "second", "val_accuracy": 0.8})
    after = (logs / runlog.LOG_NAME).read_bytes()
    assert after.startswith(before) and len(after) > len(before)
    assert records.read_header(logs / runlog.LOG_NAME) == runlog.LOG_FIELDS
    assert after.decode().count("time,run_id,") == 1
    assert [row["run_id"] for row in records.read_rows(logs / runlog.LOG_NAME)] == ["first", "second"]


def test_an_empty_log_file_gets_the_header_as_a_new_one_would(tmp_path):
    (tmp_path / runlog.LOG_NAME).write_bytes(b"")
    runlog.append_log(tmp_path, {**RUN, "run_id": "a"})
    assert records.read_header(tmp_path / runlog.LOG_NAME) == runlog.LOG_FIELDS
    assert [row["run_id"] for row in records.read_rows(tmp_path / runlog.LOG_NAME)] == ["a"]


@pytest.mark.parametrize("content", [b"name,score,status\nx,1,ok\n", b"# maskdetect\n\nFinds the faces\n",
                                     b"\x89PNG\r\n\x00\x00"], ids=["foreign csv", "readme", "binary"])
def test_a_file_that_is_not_a_training_log_is_refused_in_one_line_and_left_as_it_was(tmp_path, content):
    (tmp_path / runlog.LOG_NAME).write_bytes(content)
    with pytest.raises(ValueError, match=r"training_log\.csv is not a training log .*: move it aside or give another "
                                         r"--logs folder"):
        runlog.append_log(tmp_path, {**RUN, "run_id": "a"})
    assert (tmp_path / runlog.LOG_NAME).read_bytes() == content
    with pytest.raises(ValueError, match="is a folder, not a training log"):
        runlog.check_log(tmp_path)
    assert runlog.check_log(tmp_path / "absent.csv") is None


def test_a_row_fills_every_log_column_leaves_missing_ones_empty_and_drops_keys_the_log_has_no_column_for(tmp_path):
    notes = 'a, "quoted" note\nover two lines'
    runlog.append_log(tmp_path, {**RUN, "run_id": "a", "notes": notes, "curve": [0.5, 0.6], "not_a_column": 1})
    (row,) = records.read_rows(tmp_path / runlog.LOG_NAME)
    assert list(row) == runlog.LOG_FIELDS
    assert row["notes"] == notes and row["model"] == "small" and row["learning_rate"] == "0.001"
    assert row["test_accuracy"] == "" and row["error"] == ""


def test_a_log_begun_by_an_older_version_keeps_its_columns_and_warns_about_the_ones_it_lacks(tmp_path, caplog):
    old_columns = [column for column in runlog.LOG_FIELDS if column not in ("alpha", "rank_on")]
    records.append_rows(tmp_path / runlog.LOG_NAME, old_columns, [{"run_id": "old", "status": "ok"}])
    with caplog.at_level(logging.WARNING, logger="maskdetect.runlog"):
        runlog.append_log(tmp_path, {**RUN, "run_id": "new", "alpha": 0.35, "rank_on": "street"})
    assert records.read_header(tmp_path / runlog.LOG_NAME) == old_columns
    old, new = records.read_rows(tmp_path / runlog.LOG_NAME)
    assert old["run_id"] == "old" and new["run_id"] == "new" and new["model"] == "small"
    assert "alpha, rank_on" in caplog.text and "older log" in caplog.text


def test_numbers_compare_to_six_significant_digits_in_a_trial_key():
    assert runlog.normalised(0.001) == runlog.normalised("1e-3") == runlog.normalised("0.00100000001") == "0.001"
    assert runlog.normalised(20) == runlog.normalised("20.0") == "20"
    assert runlog.normalised(0.1234567) == "0.123457"
    assert runlog.normalised(None) == runlog.normalised("") == ""
    assert runlog.normalised("adam") == "adam"


def test_a_trial_key_is_its_key_fields_and_the_data_hash_and_nothing_else(tmp_path):
    key = runlog.trial_key(RUN, "d1")
    assert key.split("|") == [*(f"{field}={runlog.normalised(RUN.get(field))}" for field in runlog.KEY_FIELDS),
                              "data=d1"]
    # the run's id, its notes and its scores are not part of what it is
    assert runlog.trial_key({**RUN, "run_id": "x", "notes": "again", "val_accuracy": 0.5}, "d1") == key
    assert runlog.trial_key({**RUN, "learning_rate": "1e-3", "epochs": "30.0"}, "d1") == key
    assert runlog.trial_key(RUN, "other data") != key
    assert runlog.trial_key({**RUN, "seed": 43}, "d1") != key
    assert runlog.trial_key({**RUN, "val_split": 0.2}, "d1") != key


@pytest.mark.parametrize("settings", [
    Settings(model="small", epochs=3, image_size=64),
    Settings(model="small", epochs=3, image_size=64, learning_rate=0.001),
    Settings(model="mobilenetv2", epochs=5, alpha=0.5, optimizer="sgd"),
], ids=["optimizer default rate", "rate given", "mobilenetv2 defaults filled in"])
def test_the_key_of_settings_is_the_key_of_the_row_its_run_logs_so_a_rerun_skips_it(tmp_path, settings):
    # the row as train.run logs it: the settings, the rate actually used, the data hash; read back as text
    runlog.append_log(tmp_path, {**dataclasses.asdict(settings), "learning_rate": settings.rate, "data_hash": "h",
                                 "run_id": "r", "status": "ok"})
    rows = records.read_rows(tmp_path / runlog.LOG_NAME)
    assert runlog.settings_key(settings, "h") in runlog.completed_keys(rows)
    assert runlog.settings_key(settings, "other data") not in runlog.completed_keys(rows)


def test_only_runs_that_finished_or_were_pruned_count_as_completed():
    rows = [{**RUN, "seed": seed, "status": status}
            for seed, status in enumerate(["ok", "pruned", "failed", "interrupted", ""])]
    assert runlog.COMPLETED == ("ok", "pruned")
    assert runlog.completed_keys(rows) == {runlog.trial_key(row, "d1") for row in rows[:2]}
    assert runlog.completed_keys([]) == set()


def test_the_leaderboard_ranks_completed_runs_by_validation_accuracy_never_by_test_accuracy():
    rows = [{"run_id": run_id, "status": status, "val_accuracy": val, "test_accuracy": test}
            for run_id, status, val, test in [("a", "ok", "0.91", "0.99"), ("b", "ok", "0.97", "0.80"),
                                              ("c", "pruned", "0.95", "0.95"), ("d", "failed", "0.99", "0.99"),
                                              ("e", "interrupted", "0.98", ""), ("f", "ok", "", "0.99"),
                                              ("g", "ok", "nan", "0.99"), ("h", "ok", "inf", "")]]
    assert ranked(rows) == ["b", "c", "a"]
    assert ranked([]) == []


def test_a_tie_in_validation_accuracy_goes_to_the_lower_validation_loss_then_to_the_earlier_run():
    rows = [{"run_id": run_id, "status": "ok", "val_accuracy": val, "val_loss": loss}
            for run_id, val, loss in [("a", "0.9", "0.30"), ("b", "0.9", "0.20"), ("c", "0.95", "0.90"),
                                      ("d", "0.9", "0.20"), ("e", "0.90", "0.25")]]
    assert ranked(rows) == ["c", "b", "d", "e", "a"]
    assert ranked(list(reversed(rows))) == ["c", "d", "b", "e", "a"]


def test_rank_on_puts_runs_scored_on_that_folder_first_however_the_folder_is_spelled(tmp_path, monkeypatch):
    (tmp_path / "street").mkdir()
    monkeypatch.chdir(tmp_path)
    rows = [{"run_id": run_id, "status": "ok", "val_accuracy": val, "rank_on": folder, "rank_on_accuracy": score}
            for run_id, val, folder, score in [
                ("a", "0.99", "street", "0.70"),  # relative to the working folder, as the user typed it
                ("b", "0.95", str(tmp_path / "street"), "0.85"),
                ("c", "0.97", "", ""),
                ("d", "0.90", str(tmp_path / "elsewhere"), "0.99"),  # a score on another folder does not compare
                ("e", "0.96", "street", "nan"),  # not scored after all
                ("f", "0.94", "./street/", "0.85")]]  # b's score: validation accuracy breaks the tie
    assert ranked(rows) == ["a", "c", "e", "b", "f", "d"]
    assert ranked(rows, tmp_path / "street") == ranked(rows, "street/../street") == ["b", "f", "a", "c", "e", "d"]
    assert runlog.scored_on(rows[0], str(tmp_path / "street")) == 0.70
    assert runlog.scored_on(rows[0], None) is None and runlog.scored_on(rows[2], "street") is None
    assert runlog.folder_key("street") == str((tmp_path / "street").resolve())


def test_the_ranking_folder_is_the_folder_of_the_latest_run_with_a_score_on_one():
    rows = [{"rank_on": "/data/street", "rank_on_accuracy": "0.8"}, {"rank_on": "/data/other", "rank_on_accuracy": ""},
            {"rank_on": "", "rank_on_accuracy": "0.9"}]
    assert runlog.ranking_folder(rows) == "/data/street"
    assert runlog.ranking_folder([*rows, {"rank_on": "/data/new", "rank_on_accuracy": "0.1"}]) == "/data/new"
    assert runlog.ranking_folder(rows[1:]) is None
    assert runlog.ranking_folder([]) is None


def test_a_foreign_csv_in_place_of_the_log_ranks_nothing_and_completes_nothing(tmp_path):
    path = tmp_path / runlog.LOG_NAME
    path.write_text("name,score,status\nx,1,ok\ny,not a number,\n")
    rows = records.read_rows(path)
    assert runlog.leaderboard(rows) == [] and runlog.leaderboard(rows, tmp_path) == []
    assert runlog.ranking_folder(rows) is None
    # a completed row of another format has no settings: its key matches no planned trial
    assert runlog.completed_keys(rows) == {runlog.trial_key({}, "")}
    assert runlog.settings_key(Settings(model="small"), "") not in runlog.completed_keys(rows)


def test_the_reproduce_command_is_one_train_a_model_accepts_and_it_gives_the_logged_settings(tmp_path):
    data = tmp_path / "my data; rm -rf ~"
    row = {**{key: str(value) for key, value in RUN.items()}, "data": str(data), "seed": "7", "weights": "",
           "alpha": "", "warmup_epochs": "", "notes": "not repeated", "val_accuracy": "0.9"}
    command = runlog.reproduce_command(row)
    words = shlex.split(command)
    assert words[0] == "./train_a_model.py"
    assert "--weights" not in words and "--alpha" not in words and "--notes" not in words
    args = build_parser().parse_args(words[1:])
    assert (args.model, args.epochs, args.batch_size, args.image_size, args.kernel_size, args.optimizer,
            args.learning_rate, args.augmentation, args.seed, args.val_split, args.test_split, args.data) == (
        "small", 30, 32, 64, 3, "adam", 0.001, "light", 7, 0.15, 0.15, str(data))

    mobilenet = {**row, "model": "mobilenetv2", "weights": "none", "alpha": "0.5", "warmup_epochs": "0"}
    args = build_parser().parse_args(shlex.split(runlog.reproduce_command(mobilenet))[1:])
    assert (args.model, args.weights, args.alpha, args.warmup_epochs) == ("mobilenetv2", "none", 0.5, 0)


def test_the_code_version_is_the_package_version_and_in_a_checkout_the_commit_it_was_trained_with():
    version = runlog.code_version()
    assert version == __version__ or (version.startswith(f"{__version__}+") and len(version) > len(__version__) + 1)
