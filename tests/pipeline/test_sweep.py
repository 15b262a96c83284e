"""`python -m pipeline sweep --quick` end to end, read back from the store."""

import duckdb

from pipeline import cli
from pipeline import sweep
from tests.conftest import real_archive


def test_the_full_grid_has_36_distinct_runs():
    points = sweep.grid()
    assert len(points) == 36 and len({tuple(p.values()) for p in points}) == 36
    assert {p["activation"] for p in points} == {"relu", "tanh"} and {p["loss"] for p in points} == {"bce", "mse"}
    assert {p["hidden_units"] for p in points} == {16, 32, 64} and {p["hidden_layers"] for p in points} == {1, 2, 3}


def test_quick_sweep_stores_every_run_and_its_curves(tmp_path, capsys):
    db = tmp_path / "lossmap.duckdb"
    assert cli.main(["sweep", "--quick", "--data", str(real_archive()), "--db", str(db), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "4 runs" in out and "best validation accuracy" in out
    con = duckdb.connect(str(db), read_only=True)
    (sweep_id, n_train, n_val, quick), = con.execute("SELECT sweep_id, n_train, n_val, quick FROM sweeps").fetchall()
    assert quick and n_train > n_val > 0
    runs = con.execute("SELECT activation, loss, best_val_accuracy, final_val_loss, epochs FROM sweep_runs "
                       "WHERE sweep_id = ? ORDER BY run_no", [sweep_id]).fetchall()
    assert {(r[0], r[1]) for r in runs} == {("relu", "bce"), ("relu", "mse"), ("tanh", "bce"), ("tanh", "mse")}
    assert all(0 <= r[2] <= 1 and r[3] > 0 and r[4] == 2 for r in runs)
    curves = con.execute("SELECT run_no, count(*), min(val_accuracy), max(val_accuracy) FROM sweep_curves "
                         "WHERE sweep_id = ? GROUP BY run_no", [sweep_id]).fetchall()
    assert len(curves) == 4 and all(c[1] == 2 and 0 <= c[2] <= c[3] <= 1 for c in curves)


def test_validation_split_keeps_movies_whole():
    import pandas as pd

    frame = pd.DataFrame({"movie_id": [f"tt{i // 3}" for i in range(30)], "sample_id": [str(i) for i in range(30)]})
    train_rows, val_rows = sweep._split(frame, 10, seed=0)
    assert 0 < len(val_rows) <= 10 and len(train_rows) + len(val_rows) == 30
    assert not set(frame["movie_id"][train_rows]) & set(frame["movie_id"][val_rows])


def test_the_sweep_says_it_needs_the_imdb_archive(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("text,label\n" + "".join(f"t {i},{'ab'[i % 2]}\n" for i in range(20)))
    assert cli.main(["sweep", "--quick", "--data", str(tmp_path / "t.csv"), "--db", str(tmp_path / "s.duckdb"),
                     "--no-progress"]) == 2
    assert "the sweep trains Chollet's dense network on the IMDB archive's train split only" in capsys.readouterr().err
