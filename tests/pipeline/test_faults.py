"""The pipeline killed with SIGKILL at ten points spread over a whole run.

A reference run is timed first (the second of two); then ten runs are killed at 1/11 .. 10/11 of (95% of)
that time, whatever stage they are in (read from the progress bar). A kill that lands
after a run's store was swapped in is allowed to leave that run, complete. After every kill the
earlier runs and the stored decisions must be exactly as they were; at the end the
app still serves the store and the next run succeeds.
"""

import os
import re
import signal
import subprocess
import sys
import time

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from pipeline.store import decisions
from pipeline.store.schema import OPTIONAL_TABLES, RUN_TABLES
from tests.conftest import ROOT, make_archive, real_archive

KILLS = 10


def _run_cmd(db, tmp_path):
    return [sys.executable, "-m", "pipeline", "run", "--data", str(tmp_path / "aclImdb_v1_labeled.tar.gz"),
            "--svd-dim", "10", "--clusters", "3", "--db", str(db), "--models-dir", str(tmp_path / "models")]


def _write_archive(tmp_path) -> None:
    """150 seeded reviews of the real archive in an archive of their own: a run reads them in well under a second,
    so the kills spread over the stages that do the work instead of the reading of 50,000 reviews."""
    from pipeline.data.imdb import load_reviews

    frame = load_reviews(real_archive(), sample=150, seed=0, progress=False).frame
    make_archive(tmp_path / "aclImdb_v1_labeled.tar.gz", {r.sample_id: r.text.encode() for r in frame.itertuples()})


def _snapshot(db) -> dict:
    """Per run: the runs row and its row count in every run table."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        runs = {r[0]: r for r in con.execute("SELECT * FROM runs").fetchall()}
        counts = {t: dict(con.execute(f"SELECT run_id, count(*) FROM {t} GROUP BY ALL").fetchall()) for t in RUN_TABLES}
    finally:
        con.close()
    return {run: (row, {t: counts[t].get(run, 0) for t in RUN_TABLES}) for run, row in runs.items()}


def _check_and_extend(before: dict, db, what: str) -> None:
    """Every earlier run is exactly as it was; a new run (killed after its swap) must be complete."""
    now = _snapshot(db)
    assert {run: now.get(run) for run in before} == before, f"{what} changed an earlier run"
    for run in set(now) - set(before):
        assert all(n > 0 for t, n in now[run][1].items() if t not in OPTIONAL_TABLES), f"{what} left a partial run {run}"
        before[run] = now[run]


@pytest.mark.timeout(900)
def test_sigkill_at_ten_points_loses_nothing_and_the_next_run_works(tmp_path, monkeypatch):
    _write_archive(tmp_path)
    db = tmp_path / "lossmap.duckdb"
    for _ in range(2):  # the second is timed: the first may compile what later runs load (UMAP's code, numba)
        start = time.perf_counter()
        subprocess.run(_run_cmd(db, tmp_path) + ["--no-progress"], cwd=ROOT, check=True, capture_output=True)
        full = time.perf_counter() - start
    decisions_db = decisions.decisions_path(db)
    for i, choice in enumerate(("mislabeled", "correct", "ambiguous")):
        decisions.record(decisions_db, sample_id=f"test/neg/{i}_1", decision=choice, old_label="negative",
                         new_label="positive" if choice == "mislabeled" else None, note=f"kept {i}")
    before, history = _snapshot(db), decisions.history(decisions_db)

    stages = []
    for k in range(1, KILLS + 1):
        delay = full * k / (KILLS + 1)
        while True:  # a run can be faster than the timed one (warm caches): then kill it earlier
            proc = subprocess.Popen(_run_cmd(db, tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=60)
            if proc.returncode == -signal.SIGKILL:
                break
            assert proc.returncode == 0, err.decode(errors="replace")
            _check_and_extend(before, db, f"the run that finished before kill {k}")
            delay *= 0.8
        seen = re.findall(r"(?:stage/s|s/stage), (\w+)\]", err.decode(errors="replace"))  # the progress bar
        stages.append(seen[-1] if seen else "start-up")
        _check_and_extend(before, db, f"kill {k}, in stage {stages[-1]},")
        assert decisions.history(decisions_db).equals(history), f"kill {k} changed the decisions"
    print("killed in stages:", stages)
    assert len(set(stages)) >= 4, stages  # the kills are spread over the run, not bunched in one stage

    monkeypatch.setenv("LOSSMAP_DB", str(db))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not app.exception
    assert {m.label: m.value for m in app.metric}["Decisions made"] == "3"
    after = subprocess.run(_run_cmd(db, tmp_path) + ["--no-progress"], cwd=ROOT, capture_output=True, text=True)
    assert after.returncode == 0, after.stderr
    assert len(_snapshot(db)) == len(before) + 1 and not list(tmp_path.glob("*.incomplete*"))
    kept = {p.name for p in (tmp_path / "models").iterdir()}
    assert kept == set(_snapshot(db)), "ONNX folders of killed runs were left behind"  # swept by the last run
