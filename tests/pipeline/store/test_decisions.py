import csv
import io
import threading

import pytest

from pipeline.store import decisions


@pytest.fixture
def path(tmp_path):
    return tmp_path / "lossmap.decisions.duckdb"


def _rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def test_relabel_csv_has_one_row_per_decided_review(path):
    decisions.record(path, sample_id="test/neg/1_3", decision="mislabeled", old_label="negative",
                     new_label="positive", rating=3, score=0.02, sample_path="aclImdb/test/neg/1_3.txt",
                     note="clearly positive", run_id="r1")
    decisions.record(path, sample_id="train/pos/2_8", decision="correct", old_label="positive", rating=8, score=0.4)
    decisions.record(path, sample_id="test/neg/1_3", decision="ambiguous", old_label="negative", rating=3, score=0.02,
                     sample_path="aclImdb/test/neg/1_3.txt", note="on reflection, mixed")
    rows = _rows(decisions.relabel_csv(path))
    assert [r["sample_id"] for r in rows] == ["train/pos/2_8", "test/neg/1_3"]
    assert list(rows[0]) == decisions.CSV_COLUMNS
    latest = rows[1]
    assert (latest["decision"], latest["old_label"], latest["new_label"], latest["note"]) == \
        ("ambiguous", "negative", "", "on reflection, mixed")
    assert latest["path"] == "aclImdb/test/neg/1_3.txt" and latest["rating"] == "3" and latest["score"] == "0.02"
    assert rows[0]["new_label"] == "positive" and latest["decided_at"].endswith("Z")
    assert len(decisions.history(path)) == 3


def test_relabel_to_any_class_by_name(path):
    decisions.record(path, sample_id="t1", decision="mislabeled", old_label="billing", new_label="returns")
    (row,) = _rows(decisions.relabel_csv(path))
    assert (row["old_label"], row["new_label"]) == ("billing", "returns")
    with pytest.raises(ValueError, match="needs a new label other than 'billing'"):
        decisions.record(path, sample_id="t2", decision="mislabeled", old_label="billing", new_label="billing")
    with pytest.raises(ValueError, match="needs a new label"):
        decisions.record(path, sample_id="t2", decision="mislabeled", old_label="billing")


def test_class_names_that_look_like_formulas_are_neutralised_in_the_csv(path):
    decisions.record(path, sample_id="=HYPERLINK(\"http://x\")", decision="mislabeled", old_label="@SUM(1)",
                     new_label="-2+3")
    (row,) = _rows(decisions.relabel_csv(path))
    assert row["sample_id"].startswith("'=") and row["old_label"] == "'@SUM(1)" and row["new_label"] == "'-2+3"


def test_a_decisions_file_of_an_older_version_is_converted_to_class_names(path):
    import duckdb

    con = duckdb.connect(str(path))  # the schema-4 layout: labels 0/1, IMDB's negative/positive
    con.execute("CREATE SEQUENCE decision_seq")
    con.execute("""CREATE TABLE decisions (decision_id BIGINT PRIMARY KEY DEFAULT nextval('decision_seq'),
        sample_id VARCHAR NOT NULL, decision VARCHAR NOT NULL CHECK (decision IN ('mislabeled', 'correct', 'ambiguous')),
        old_label TINYINT NOT NULL, new_label TINYINT, rating TINYINT, score DOUBLE, path VARCHAR, note VARCHAR,
        run_id VARCHAR, reviewer VARCHAR, decided_at TIMESTAMP NOT NULL)""")
    con.execute("INSERT INTO decisions (sample_id, decision, old_label, new_label, rating, decided_at) VALUES "
                "('test/neg/1_3', 'mislabeled', 0, 1, 3, now()::TIMESTAMP), "
                "('train/pos/2_8', 'ambiguous', 1, NULL, 8, now()::TIMESTAMP)")
    con.close()
    rows = {r["sample_id"]: r for r in _rows(decisions.relabel_csv(path))}
    assert (rows["test/neg/1_3"]["old_label"], rows["test/neg/1_3"]["new_label"]) == ("negative", "positive")
    assert (rows["train/pos/2_8"]["old_label"], rows["train/pos/2_8"]["new_label"]) == ("positive", "")
    decisions.record(path, sample_id="x", decision="correct", old_label="positive", rating=7.5)
    assert len(decisions.history(path)) == 3


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r", " =", "\u00a0=", "\n=", "\u3000=", "\uff1d",
                                   "\u200b@", " \ufeff+", "\uff20", "  -", "\u2003=", "\u202f=", "\u00ad=", "\u200e="])
def test_formula_cells_are_neutralised(path, start):
    note = f"{start}SUM(A1:A9)"
    decisions.record(path, sample_id="test/pos/3_9", decision="mislabeled", old_label="positive",
                     new_label="negative", note=note)
    (row,) = _rows(decisions.relabel_csv(path))
    assert row["note"] == "'" + note


@pytest.mark.parametrize("value", ["=1+1", " @SUM(A1)", "\u200b-cmd", "+", "＝x", "'quoted", "-1", "plain"])
def test_a_neutralised_cell_is_restored_as_it_was(value):
    assert decisions.restore(decisions.neutralise(value)) == value


def test_other_cells_round_trip_unchanged(path):
    note = 'quotes " and, commas\nand a newline, unicode é, 1+1'
    decisions.record(path, sample_id="test/pos/4_9", decision="correct", old_label="positive", note=note)
    (row,) = _rows(decisions.relabel_csv(path))
    assert row["note"] == note


def test_unknown_decision_is_refused(path):
    with pytest.raises(ValueError, match="mislabeled, correct, ambiguous"):
        decisions.record(path, sample_id="x", decision="maybe", old_label="negative")


def test_concurrent_reviewers_lose_nothing(path):
    samples = [f"test/neg/{i}_2" for i in range(5)]

    def reviewer(n):
        for i in range(10):
            decisions.record(path, sample_id=samples[(n + i) % 5], decision=("mislabeled", "correct")[i % 2],
                             old_label="negative", new_label="positive", reviewer=f"r{n}", note=f"{n}-{i}")

    threads = [threading.Thread(target=reviewer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = decisions.history(path)
    assert len(everything) == 60 and everything["note"].is_unique
    current = decisions.current(path).set_index("sample_id")
    assert sorted(current.index) == sorted(samples)
    last = everything.sort_values("decision_id").groupby("sample_id").tail(1).set_index("sample_id")
    assert (current.loc[last.index, "note"] == last["note"]).all()


def test_no_decisions_yet(path):
    assert decisions.current(path).empty
    assert _rows(decisions.relabel_csv(path)) == []
    assert not path.exists()


_SESSIONS = """
import json, sys, threading, time
from pipeline.store import decisions
path, proc, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
samples = [f"test/neg/{i}_2" for i in range(8)]  # every session works on the same 8 reviews
done = {}
def session(n):
    mine, i, end = [], 0, time.monotonic() + seconds
    while time.monotonic() < end:
        note = f"{proc}-{n}-{i}"
        decisions.record(path, sample_id=samples[(n + i) % 8], decision=("mislabeled", "correct", "ambiguous")[i % 3],
                         old_label="negative", new_label="positive", reviewer=f"{proc}-{n}", note=note)
        mine.append(note)
        i += 1
    done[n] = mine
threads = [threading.Thread(target=session, args=(n,)) for n in range(10)]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps([note for notes in done.values() for note in notes]))
"""


def test_twenty_concurrent_sessions_in_two_app_processes_lose_nothing(path):
    """20 reviewer sessions (10 threads in each of two processes, as two app servers on one store would run them)
    record decisions on overlapping reviews for 3 seconds."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    procs = [subprocess.Popen([sys.executable, "-c", _SESSIONS, str(path), name, "3"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    recorded = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        recorded += json.loads(out)
    everything = decisions.history(path)
    assert len(recorded) > 20  # every session got decisions in
    assert sorted(everything["note"]) == sorted(recorded)  # each stored exactly once, none lost
    assert everything["decided_at"].is_monotonic_increasing  # write order is time order, across processes
    current = decisions.current(path).set_index("sample_id")
    last = everything.groupby("sample_id").tail(1).set_index("sample_id")
    assert sorted(current.index) == sorted(last.index) == [f"test/neg/{i}_2" for i in range(8)]
    assert (current.loc[last.index, "note"] == last["note"]).all()  # the last write per review wins
    assert {n.split("-")[0] + "-" + n.split("-")[1] for n in everything["note"]} == {
        f"{p}-{n}" for p in "ab" for n in range(10)}  # all 20 sessions are in the history


def test_decisions_are_kept_per_data_source(path):
    """One store may hold runs of two datasets whose ids collide; a decision on one must not show on the other."""
    decisions.record(path, sample_id="1", decision="mislabeled", old_label="bug", new_label="question",
                     source="tickets.csv")
    decisions.record(path, sample_id="1", decision="correct", old_label="pos", source="reviews.csv")
    decisions.record(path, sample_id="7", decision="ambiguous", old_label="negative")  # from before sources were kept
    tickets = decisions.current(path, "tickets.csv").set_index("sample_id")
    assert tickets.loc["1", "new_label"] == "question" and set(tickets.index) == {"1", "7"}
    assert decisions.current(path, "reviews.csv").set_index("sample_id").loc["1", "decision"] == "correct"
    assert decisions.current(path, "other.csv")["sample_id"].tolist() == ["7"]
    rows = _rows(decisions.relabel_csv(path, "tickets.csv"))
    assert [(r["sample_id"], r["new_label"], r["source"]) for r in rows] == [("1", "question", "tickets.csv"),
                                                                             ("7", "", "")]


def test_numbers_are_not_mistaken_for_formulas(path):
    decisions.record(path, sample_id="-200", decision="mislabeled", old_label="-1", new_label="+1")
    decisions.record(path, sample_id="-1+cmd", decision="correct", old_label="-1.5e3")
    rows = {r["path"] or r["sample_id"]: r for r in _rows(decisions.relabel_csv(path))}
    assert (rows["-200"]["old_label"], rows["-200"]["new_label"]) == ("-1", "+1")  # numbers stay numbers
    assert rows["'-1+cmd"]["old_label"] == "-1.5e3"  # a formula-looking id is neutralised, a number is not


def test_undo_restores_the_earlier_decision_and_keeps_the_history(path):
    decisions.record(path, sample_id="a", decision="correct", old_label="negative", reviewer="me")
    decisions.record(path, sample_id="b", decision="correct", old_label="positive", reviewer="other")
    decisions.record(path, sample_id="a", decision="mislabeled", old_label="negative", new_label="positive",
                     reviewer="me")
    undone = decisions.undo_last(path, reviewer="me")
    assert (undone["sample_id"], undone["decision"]) == ("a", "mislabeled")
    now = decisions.current(path).set_index("sample_id")["decision"].to_dict()
    assert now == {"a": "correct", "b": "correct"}  # a's earlier decision is current again; b is another reviewer's
    assert decisions.undo_last(path, reviewer="me")["decision"] == "correct"
    assert set(decisions.current(path)["sample_id"]) == {"b"}
    assert decisions.undo_last(path, reviewer="me") is None  # nothing left to undo; the other reviewer's stays
    log = decisions.history(path)
    assert len(log) == 3 and log["undone_at"].notna().tolist() == [True, False, True]


def test_undo_only_touches_decisions_on_this_data(path):
    decisions.record(path, sample_id="1", decision="correct", old_label="a", reviewer="me", source="one.csv")
    decisions.record(path, sample_id="1", decision="ambiguous", old_label="a", reviewer="me", source="two.csv")
    assert decisions.undo_last(path, reviewer="me", source="one.csv")["decision"] == "correct"
    assert decisions.current(path, "two.csv")["decision"].tolist() == ["ambiguous"]
    assert decisions.undo_last(tmp := path.with_name("none.duckdb"), reviewer="me") is None and not tmp.exists()


def test_a_batch_is_recorded_whole_or_not_at_all(path):
    batch = [{"sample_id": s, "old_label": "negative", "new_label": "positive", "note": "batch"} for s in "xyz"]
    assert decisions.record_many(path, batch, decision="mislabeled", reviewer="me") == 3
    assert sorted(decisions.current(path)["sample_id"]) == ["x", "y", "z"]
    bad = batch[:2] + [{"sample_id": "w", "old_label": "positive", "new_label": "positive"}]
    with pytest.raises(ValueError, match="'w2'"):
        decisions.record_many(path, [{**r, "sample_id": r["sample_id"] + "2"} for r in bad], decision="mislabeled")
    assert len(decisions.history(path)) == 3  # nothing of the refused batch was written
    decisions.undo_last(path, reviewer="me")
    assert sorted(decisions.current(path)["sample_id"]) == ["x", "y"]  # undo takes back one decision of the batch


def test_a_note_keeps_its_text_in_the_store_and_is_guarded_only_in_the_csv(path):
    note = "-1 star would be fair; =not a formula"
    decisions.record(path, sample_id="s", decision="correct", old_label="negative", note=note)
    assert decisions.history(path)["note"].tolist() == [note]
    (row,) = _rows(decisions.relabel_csv(path))
    assert row["note"] == "'" + note


def _hold_open(path, read_only: bool):
    """Another program (a notebook) holding the decisions file open."""
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}, "
                             f"read_only={read_only}); print('open', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "open"
    time.sleep(0.2)
    return proc


def test_a_damaged_decisions_file_is_said_at_once_and_not_retried(path, monkeypatch):
    path.write_bytes(b"not a database" * 100)
    waits = []
    monkeypatch.setattr(decisions.time, "sleep", waits.append)
    with pytest.raises(decisions.DecisionsError, match="damaged or is not a DuckDB file. Move it aside"):
        decisions.current(path)
    with pytest.raises(decisions.DecisionsError, match="damaged"):
        decisions.record(path, sample_id="a", decision="correct", old_label="x")
    assert waits == []  # nothing that cannot clear is waited for
    assert path.read_bytes() == b"not a database" * 100  # and nothing was written over it


def test_a_file_a_notebook_reads_can_still_be_read(path):
    decisions.record(path, sample_id="a", decision="correct", old_label="x")
    holder = _hold_open(path, read_only=True)
    try:
        assert decisions.current(path)["sample_id"].tolist() == ["a"]  # reads take no write lock
    finally:
        holder.kill()
        holder.wait()


def test_a_file_another_program_writes_is_said_with_what_to_do(path, monkeypatch):
    decisions.record(path, sample_id="a", decision="correct", old_label="x")
    holder = _hold_open(path, read_only=False)
    try:
        with pytest.raises(decisions.DecisionsError, match="held open by another program.*Close it there"):
            decisions.current(path)
        monkeypatch.setattr(decisions, "_RETRY_SECONDS", 0.2)
        with pytest.raises(decisions.DecisionsError, match="held open by another program"):
            decisions.record(path, sample_id="b", decision="correct", old_label="x")
    finally:
        holder.kill()
        holder.wait()
    assert decisions.current(path)["sample_id"].tolist() == ["a"]


def test_a_decisions_file_with_a_macro_is_refused_and_left_as_it_is(path):
    import duckdb

    decisions.record(path, sample_id="a", decision="correct", old_label="x")
    con = duckdb.connect(str(path))
    con.execute("CREATE MACRO lower(x) AS 'pwned'")
    con.close()
    before = path.read_bytes()
    for act in (lambda: decisions.current(path),
                lambda: decisions.record(path, sample_id="b", decision="correct", old_label="x")):
        with pytest.raises(decisions.DecisionsError, match="holds 'macro lower', which Lossmap never writes.*Move it"):
            act()
    assert path.read_bytes() == before


def test_a_decisions_file_that_is_a_fifo_or_has_a_changed_sequence_is_refused(path, tmp_path):
    import os

    import duckdb

    os.mkfifo(path)
    with pytest.raises(decisions.DecisionsError, match="is not a regular file. Move it aside"):
        decisions.current(path)
    path.unlink()
    decisions.record(path, sample_id="a", decision="correct", old_label="x")
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE decisions")
    con.execute("DROP SEQUENCE decision_seq")
    con.execute("CREATE SEQUENCE decision_seq START 1000 INCREMENT BY -1 MAXVALUE 1000")
    con.close()
    with pytest.raises(decisions.DecisionsError, match="'sequence decision_seq \\(changed\\)'"):
        decisions.current(path)


def test_decisions_follow_the_data_however_its_path_is_spelled(path, tmp_path, monkeypatch):
    data = tmp_path / "reviews.csv"
    data.write_text("x")
    monkeypatch.chdir(tmp_path)
    decisions.record(path, sample_id="a", decision="correct", old_label="neg", source="reviews.csv")
    decisions.record(path, sample_id="b", decision="correct", old_label="neg", source="elsewhere.csv")
    for spelling in ("reviews.csv", "./reviews.csv", str(data), str(tmp_path / "sub" / ".." / "reviews.csv")):
        assert decisions.current(path, spelling)["sample_id"].tolist() == ["a"], spelling
    assert decisions.same_data("<DataFrame 1a2b>", "<DataFrame 1a2b>")
    assert not decisions.same_data("<DataFrame 1a2b>", "<DataFrame 3c4d>")
    assert decisions.undo_last(path, reviewer=None, source="./reviews.csv") is None  # no reviewer recorded
