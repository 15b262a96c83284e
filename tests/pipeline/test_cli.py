import os
import subprocess
import sys

import pytest

from pipeline.cli import build_parser, main
from tests.conftest import ROOT


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_help_explains_every_run_option():
    out = _cli("run", "--help")
    assert out.returncode == 0
    for option in ("--data", "--sample", "--seed", "--folds", "--min-df", "--db", "--device", "--issue-method",
                   "--shap-top-k", "--no-progress", "--no-cnn", "--bilstm", "--max-len", "--truncation",
                   "--issue-source"):
        assert option in out.stdout
    text = " ".join(out.stdout.split())
    assert "IMDB_DATA" in text and "(default: data/lossmap.duckdb)" in text and "(default: None)" not in text
    top = _cli("--help")
    assert "run" in top.stdout and "runs" in top.stdout and "sweep" in top.stdout and "examples:" in top.stdout
    sweep = _cli("sweep", "--help")
    assert sweep.returncode == 0 and "36 runs" in " ".join(sweep.stdout.split()) and "--quick" in sweep.stdout


def test_missing_data_is_one_line_no_traceback(tmp_path):
    out = _cli("run", "--data", str(tmp_path / "nowhere.tar.gz"), "--db", str(tmp_path / "s.duckdb"))
    assert out.returncode == 2
    assert "error:" in out.stderr and "--data" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "s.duckdb").exists()


def test_corrupt_archive_is_one_line_no_traceback(tmp_path):
    bad = tmp_path / "aclImdb_v1.tar.gz"
    bad.write_bytes(b"\x1f\x8b" + b"garbage" * 500)
    out = _cli("run", "--data", str(bad), "--db", str(tmp_path / "s.duckdb"), "--no-progress")
    assert out.returncode == 2
    assert "corrupt or truncated" in out.stderr and "Traceback" not in out.stderr


def test_bad_option_values(tmp_path, capsys):
    assert main(["run", "--sample", "1", "--db", str(tmp_path / "s.duckdb")]) == 2
    assert "--sample must be at least 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--device", "tpu"])
    assert "invalid choice: 'tpu'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--truncation", "tail"])
    assert "invalid choice: 'tail'" in capsys.readouterr().err
    assert main(["sweep", "--epochs", "0", "--db", str(tmp_path / "s.duckdb")]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
    # the run's settings checked by Config are said by the option that gave them, not the field's name
    for option, value, said in (("--min-df", "0", "--min-df must be at least 1; got 0"),
                                ("--map-fit-rows", "5", "--map-fit-rows must be at least 100; got 5"),
                                ("--max-member-mib", "-1", "--max-member-mib must be positive; got -1"),
                                ("--max-tokens", "2000000", "--max-tokens must be at most 1,000,000"),
                                ("--seed", "-1", "--seed must lie in [0, 2**32 - 1]; got -1"),
                                ("-C", "inf", "-C must be a positive number; got inf"),
                                ("--svd-dim", "1", "--svd-dim must be at least 2; got 1")):
        assert main(["run", option, value, "--db", str(tmp_path / "s.duckdb")]) == 2
        assert f"error: {said}" in capsys.readouterr().err


def test_runs_on_an_older_or_foreign_store(tmp_path):
    import duckdb

    from pipeline.store import files as store

    old = tmp_path / "old.duckdb"
    store.publish(old, lambda con: None)
    con = duckdb.connect(str(old))
    con.execute("UPDATE lossmap_meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    out = _cli("runs", "--db", str(old))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "schema version 2" in out.stderr and "python -m pipeline run --db NEW_PATH" in out.stderr
    foreign = tmp_path / "notes.txt"
    foreign.write_text("not a database")
    out = _cli("runs", "--db", str(foreign))
    assert out.returncode == 2 and "cannot be opened as a DuckDB store" in out.stderr


def test_runs_on_a_missing_store(tmp_path):
    out = _cli("runs", "--db", str(tmp_path / "none.duckdb"))
    assert out.returncode == 2
    assert "no store at" in out.stderr and "python -m pipeline run" in out.stderr


def test_run_then_runs_end_to_end(tmp_path):
    from tests.conftest import real_archive

    db = tmp_path / "s.duckdb"
    out = _cli("run", "--data", str(real_archive()), "--sample", "300", "--db", str(db),
               "--models-dir", str(tmp_path / "models"), "--svd-dim", "10", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "300 texts" in out.stdout and "test accuracy" in out.stdout and "flagged as likely mislabeled" in out.stdout
    assert "time per stage: load" in out.stdout and f"store: {db}" in out.stdout
    listed = _cli("runs", "--db", str(db))
    assert listed.returncode == 0 and "1 run(s)" in listed.stdout and "300 texts" in listed.stdout
    assert "note: the networks trained with PyTorch on the CPU" in listed.stdout  # each run's notes under it

    import duckdb  # a store someone else wrote: its notes and source reach a terminal escaped, never as escapes

    con = duckdb.connect(str(db))
    con.execute("""UPDATE runs SET source = 'evil' || chr(27) || '[2J', load_notes = '["x' || '\\u001b' || ']0;t"]'""")
    con.close()
    listed = _cli("runs", "--db", str(db))
    assert listed.returncode == 0 and "\x1b" not in listed.stdout
    assert "evil\\x1b[2J" in listed.stdout and "note: x\\x1b]0;t" in listed.stdout
    con = duckdb.connect(str(db))
    con.execute("""UPDATE runs SET load_notes = '{"not": "a list"}'""")
    con.close()
    listed = _cli("runs", "--db", str(db))
    assert listed.returncode == 0 and "note:" not in listed.stdout


def test_run_on_a_text_folder_end_to_end(tmp_path):
    from pipeline.data.imdb import load_reviews
    from tests.conftest import real_archive

    frame = load_reviews(real_archive(), sample=240, seed=12, progress=False).frame
    root = tmp_path / "reviews"
    for r in frame.itertuples():  # split/label/<id>.txt, with the labels spelled as a user would
        folder = root / r.split / ("good" if r.label else "bad")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{r.sample_id.split('/')[-1]}.txt").write_text(r.text)
    db = tmp_path / "f.duckdb"
    out = _cli("run", "--data", str(root), "--db", str(db), "--models-dir", str(tmp_path / "m"), "--no-dense",
               "--no-cnn", "--svd-dim", "8", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "240 texts, 2 classes" in out.stdout and "test accuracy (trained on train, scored on the rest): " \
        in out.stdout and "n/a" not in out.stdout.split("test accuracy")[1].split("\n")[0]
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT name FROM classes ORDER BY class").fetchall() == [("bad",), ("good",)]
    ids = {r[0] for r in con.execute("SELECT sample_id FROM samples").fetchall()}
    assert len(ids) == 240 and all(i.split("/")[0] in ("train", "test") for i in ids)
    con.close()


def test_bad_table_is_one_line_before_any_training(tmp_path):
    (tmp_path / "one.csv").write_text("text,label\n" + "".join(f"text {i},spam\n" for i in range(20)))
    out = _cli("run", "--data", str(tmp_path / "one.csv"), "--db", str(tmp_path / "s.duckdb"), "--no-progress")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "every row has the label 'spam'" in out.stderr and not (tmp_path / "s.duckdb").exists()
    assert "time per stage" not in out.stdout
