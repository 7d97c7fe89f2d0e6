"""LMS downloads: each layout is recognised, every student gets one row, the newest attempt is the
one graded, and the others are named in the notes (``course_lib.grading.lms``, fast: no kernels).

The file and folder names follow what each system writes: Canvas's
``name_[LATE_]userid_submissionid_file`` with ``-N`` resubmission suffixes, Moodle's
``Full Name_participantid_assignsubmission_file_`` folders, Blackboard's
``Assignment_user_attempt_YYYY-MM-DD-HH-MM-SS_file``, Brightspace's ``n-m - Name - Mon D, YYYY HMM
AM - file``, Gradescope's ``submission_<id>/`` with ``submission_metadata.yml``, nbgrader's exchange
(``student+assignment+timestamp+random`` folders, or ``submitted/<student>/<assignment>/`` with
``timestamp.txt``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from course_lib.grading import lms
from course_lib.grading.submissions import SubmissionError, collect

NB = "01-activations"
NOTEBOOK = f"{NB}.ipynb"
BODY = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def touch(path, content=BODY):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_canvas_resubmissions_late_marks_and_twin_names(tmp_path):
    touch(tmp_path / f"smithalice_11111_9000100_{NOTEBOOK}")
    touch(tmp_path / f"smithalice_LATE_11111_9000101_{NB}-1.ipynb")
    touch(tmp_path / f"jonesbob_22222_9000200_{NOTEBOOK}")
    touch(tmp_path / f"leeann_33333_9000300_{NOTEBOOK}")
    touch(tmp_path / f"leeann_44444_9000400_{NOTEBOOK}")  # another person with the same name
    assert lms.detect(tmp_path) == "canvas"
    subs, warnings = collect(tmp_path, [NB])
    assert warnings[0] == "read as a canvas download (detected)"
    by = {s.student: s for s in subs}
    assert sorted(by) == ["jonesbob", "leeann-33333", "leeann-44444", "smithalice"]
    alice = by["smithalice"]
    assert alice.files[NB].name == f"smithalice_LATE_11111_9000101_{NB}-1.ipynb", "the resubmission is graded"
    assert alice.late and alice.lms_id == "11111" and alice.gradable
    assert any("older submission" in n and "9000100" in n for n in alice.notes), alice.notes
    assert not by["jonesbob"].late and by["jonesbob"].lms_id == "22222"


def test_moodle_folders_keep_the_participant_id(tmp_path):
    touch(tmp_path / "Alice Smith_100001_assignsubmission_file_" / NOTEBOOK)
    touch(tmp_path / "Bob Jones_100002_assignsubmission_file_" / "answers.ipynb")
    assert lms.detect(tmp_path) == "moodle"
    subs, _ = collect(tmp_path, [NB])
    by = {s.student: s for s in subs}
    assert sorted(by) == ["Alice Smith", "Bob Jones"]
    assert by["Alice Smith"].lms_id == "100001" and by["Alice Smith"].gradable
    assert not by["Bob Jones"].gradable and "wrong file name" in by["Bob Jones"].problems[0]


def test_blackboard_attempts_are_ordered_by_their_time(tmp_path):
    touch(tmp_path / f"A1_alice_attempt_2026-10-01-12-00-00_{NOTEBOOK}")
    touch(tmp_path / "A1_alice_attempt_2026-10-01-12-00-00.txt", b"receipt")
    touch(tmp_path / f"A1_alice_attempt_2026-10-02-09-30-00_{NOTEBOOK}")
    assert lms.detect(tmp_path) == "blackboard"
    (alice,), _ = collect(tmp_path, [NB], tz=UTC)
    assert alice.submitted_at == datetime(2026, 10, 2, 9, 30, tzinfo=UTC)
    assert "2026-10-02" in alice.files[NB].name


def test_brightspace_folders_and_times(tmp_path):
    touch(tmp_path / "index.html", b"<html></html>")
    touch(tmp_path / "123-456 - Alice Smith - Oct 1, 2026 1200 PM" / NOTEBOOK)
    touch(tmp_path / "123-457 - Alice Smith - Oct 2, 2026 930 AM" / NOTEBOOK)
    assert lms.detect(tmp_path) == "brightspace"
    (alice,), _ = collect(tmp_path, [NB], tz=UTC)
    assert alice.student == "Alice Smith" and alice.submitted_at == datetime(
        2026, 10, 2, 9, 30, tzinfo=UTC
    )
    assert "older submission" in " ".join(alice.notes)


def test_gradescope_metadata_names_the_submitters(tmp_path):
    touch(tmp_path / "submission_111" / NOTEBOOK)
    (tmp_path / "submission_metadata.yml").write_text(
        "submission_111:\n  :submitters:\n  - :name: Alice Smith\n    :sid: '42'\n"
        "  :created_at: 2026-10-01 12:00:00.000000000 +00:00\n"
    )
    assert lms.detect(tmp_path) == "gradescope"
    (alice,), _ = collect(tmp_path, [NB])
    assert alice.student == "Alice Smith" and alice.lms_id == "42" and alice.submitted_at is not None


def test_the_exchange_keeps_timestamps_and_the_newest_submission(tmp_path):
    inbound = tmp_path / "inbound"
    touch(inbound / f"alice+{NB}+2026-10-01 12:00:00.000000 UTC+abc" / NOTEBOOK)
    (inbound / f"alice+{NB}+2026-10-01 12:00:00.000000 UTC+abc" / "timestamp.txt").write_text(
        "2026-10-01 12:00:00.000000 UTC"
    )
    touch(inbound / f"alice+{NB}+2026-10-03 08:00:00.000000 UTC+def" / NOTEBOOK)
    assert lms.detect(tmp_path) == "exchange"
    (alice,), _ = collect(tmp_path, [NB])
    assert alice.submitted_at == datetime(2026, 10, 3, 8, 0, tzinfo=UTC)
    assert "2026-10-03" in str(alice.files[NB])


def test_the_parent_of_submitted_is_an_exchange_not_a_student_folder(tmp_path):
    folder = tmp_path / "submitted" / "alice" / NB
    touch(folder / NOTEBOOK)
    (folder / "timestamp.txt").write_text("2026-10-01 12:00:00.000000 UTC")
    subs, warnings = collect(tmp_path, [NB], assignment=NB)
    assert [s.student for s in subs] == ["alice"] and subs[0].gradable
    assert subs[0].submitted_at == datetime(2026, 10, 1, 12, tzinfo=UTC)
    assert "exchange" in warnings[0]


def test_a_layout_can_be_forced_and_folders_stay_the_default(tmp_path):
    touch(tmp_path / "alice" / NOTEBOOK)
    assert lms.detect(tmp_path) == "folders"
    subs, warnings = collect(tmp_path, [NB])
    assert [s.student for s in subs] == ["alice"] and "one folder per student" in warnings[0]
    with pytest.raises(SubmissionError, match="--lms must be auto or one of"):
        collect(tmp_path, [NB], lms="webct")


@pytest.mark.parametrize("pattern, message", [("(?P<student>[a-z", "not a regular expression"),
                                               ("(.+)_x", "needs a (?P<student>...) group")])  # fmt: skip
def test_a_bad_id_pattern_is_a_clear_error(tmp_path, pattern, message):
    touch(tmp_path / f"alice_{NOTEBOOK}")
    with pytest.raises(
        SubmissionError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")
    ):
        collect(tmp_path, [NB], id_pattern=pattern)


def test_due_dates_need_a_time_zone():
    assert lms.parse_time("2026-12-01T23:59+01:00").utcoffset() == timedelta(hours=1)
    assert lms.parse_time("2026-12-01T23:59Z").tzinfo is not None
    with pytest.raises(lms.LayoutError, match="no time zone"):
        lms.parse_time("2026-12-01T23:59")
    with pytest.raises(lms.LayoutError, match="ISO 8601"):
        lms.parse_time("tomorrow")
