"""--engine ray on a two-node Ray cluster on 127.0.0.1 (started and stopped here): the same results as the local
engine on a 2,000-review sample, a worker killed mid-run retried by Ray (on 500 reviews, against their local run),
and an unreachable cluster said before any work. The local engine's jobs are covered by every other pipeline test."""

from __future__ import annotations

import dataclasses
import signal
import socket
import threading
import time

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline import engine
from pipeline.config import Config
from pipeline.run import run_pipeline
from tests.conftest import balanced_reviews, make_archive, real_archive

SAMPLE = 2000


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes of one CPU each, listening on 127.0.0.1 only."""
    engine.stay_on_loopback()
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        nodes.add_node(num_cpus=1)
        nodes.wait_for_nodes()
        yield nodes
    finally:
        nodes.shutdown()


@pytest.fixture(scope="module")
def local_cfg(tmp_path_factory) -> Config:
    folder = tmp_path_factory.mktemp("engine_local")
    cfg = Config(data=real_archive(), sample=SAMPLE, seed=0, db=folder / "lossmap.duckdb",
                 models_dir=folder / "models", progress=False, map_fit_rows=1000, chunk_rows=500)  # chunks: Ray tasks
    run_pipeline(cfg)
    return cfg


def _on_ray(local_cfg: Config, cluster, folder) -> Config:
    return dataclasses.replace(local_cfg, engine="ray", ray_address=cluster.address, db=folder / "lossmap.duckdb",
                               models_dir=folder / "models")


def _assert_same_results(a: Config, b: Config, families=("nblr", "dense", "cnn")) -> None:
    """Ids, folds, every model's predictions within 1e-6, the same label-issue ranking, SHAP values and clusters."""
    n = a.sample
    with duckdb.connect(str(a.db), read_only=True) as x, duckdb.connect(str(b.db), read_only=True) as y:
        def both(sql):
            return x.execute(sql).df(), y.execute(sql).df()

        s1, s2 = both("SELECT sample_id, fold, label FROM samples ORDER BY sample_id")
        assert len(s1) == n and s1.equals(s2)
        p1, p2 = both("SELECT model_id, sample_id, probs FROM predictions ORDER BY model_id, sample_id")
        assert len(p1) > 2 * n and p1[["model_id", "sample_id"]].equals(p2[["model_id", "sample_id"]])
        assert set(p1["model_id"].str.split("-").str[0]) == set(families)
        gap = np.abs(np.stack(p1["probs"].to_numpy()) - np.stack(p2["probs"].to_numpy())).max()
        assert gap <= 1e-6, f"predictions differ by {gap:.2e}"
        r1, r2 = both("SELECT sample_id, issue_rank, is_label_issue, suggestion FROM label_issues ORDER BY issue_rank")
        assert r1.equals(r2)
        t1, t2 = both('SELECT model_id, sample_id, "class", kind, token, shap_value FROM shap_tokens '
                      'ORDER BY model_id, sample_id, "class", kind, token')
        keys = ["model_id", "sample_id", "class", "kind", "token"]
        assert len(t1) and t1[keys].equals(t2[keys])
        assert np.abs(t1["shap_value"].to_numpy() - t2["shap_value"].to_numpy()).max() <= 1e-6
        h1, h2 = both("SELECT sample_id, model_id, harm_rank FROM truncation ORDER BY sample_id, model_id")
        assert len(h1) == n and h1.equals(h2)
        # every space's vectors (the TF-IDF space's placed a batch at a time past the 1,000 rows it was fit on; the
        # networks' their reference models' embeddings) and clusters
        c1, c2 = both("SELECT space, sample_id, vector, cluster FROM embeddings ORDER BY space, sample_id")
        assert set(c1["space"]) == {"tfidf-svd", *(f"{f}-hidden" for f in families if f != "nblr")}
        assert len(c1) == len(families) * n and c1[["space", "sample_id", "cluster"]].equals(c2[["space", "sample_id",
                                                                                                 "cluster"]])
        for space in set(c1["space"]):
            v1, v2 = (np.stack(c.loc[c["space"] == space, "vector"].to_numpy()) for c in (c1, c2))
            gap = np.abs(v1 - v2).max()
            assert gap <= 1e-6, f"the {space} vectors differ by {gap:.2e}"


@pytest.fixture
def shards(monkeypatch) -> list[str]:
    """The folders Ray Data's actors are asked to write Parquet shards to, in this test."""
    import ray.data

    written, write = [], ray.data.Dataset.write_parquet

    def counted(self, path, *args, **kwargs):
        written.append(str(path))
        return write(self, path, *args, **kwargs)

    monkeypatch.setattr(ray.data.Dataset, "write_parquet", counted)
    return written


def test_a_ray_run_gives_the_local_run_s_results(cluster, local_cfg, tmp_path, shards):
    cfg = _on_ray(local_cfg, cluster, tmp_path)
    summary = run_pipeline(cfg)
    assert summary.n_samples == SAMPLE
    assert len(cluster.list_all_nodes()) == 2
    _assert_same_results(local_cfg, cfg)
    assert not (cfg.models_dir / summary.run_id / "shards").exists()  # the Parquet shards were scratch
    # six passes went through Ray Data, its actors writing shards beside the models: the linear models' scoring, SHAP,
    # the dense network's and the CNN's scores and embeddings, the CNN's truncation windows, the map vectors
    assert len(shards) == 6 and all(p.startswith(str(cfg.models_dir / summary.run_id / "shards")) for p in shards)
    assert any("4 chunks of up to 500 texts" in n for n in summary.notes)  # said with the run
    assert any("seeded sample of 1,000 of the 2,000 texts" in n for n in summary.notes)
    assert any(n.startswith("the networks trained with PyTorch on the CPU (") for n in summary.notes)  # the workers'
    assert f"ran on Ray (the cluster at {cluster.address}: 2 node(s), 2 CPUs) (--engine ray)" in summary.notes


KILLED_SAMPLE = 500  # the linear model and the CNN: the CNN's fold tasks are the ones killed


def test_a_worker_killed_mid_run_is_retried_and_the_results_stand(cluster, tmp_path, monkeypatch, shards):
    """A CNN fold task's worker process is killed (SIGKILL) while it trains; Ray runs the task again, and the run
    gives the local engine's results. The cluster is taken for one whose nodes are other machines, so Ray Data's
    results come back through the driver, not shards."""
    for folder in ("local", "ray"):
        (tmp_path / folder).mkdir()
    local = Config(data=real_archive(), sample=KILLED_SAMPLE, seed=0, db=tmp_path / "local" / "lossmap.duckdb",
                   models_dir=tmp_path / "local" / "models", progress=False, dense=False)
    run_pipeline(local)
    monkeypatch.setattr(engine, "_on_this_machine", lambda ray, nodes: False)
    import psutil

    task = "lossmap:_fit_export_score"
    killed, stop = [], threading.Event()

    def training(proc) -> bool:
        return task in " ".join(proc.cmdline())

    def kill_one_fold_task():
        while not stop.is_set() and not killed:
            for proc in psutil.process_iter(["pid", "cmdline"]):
                if task in " ".join(proc.info["cmdline"] or []):
                    time.sleep(0.5)  # into its training
                    try:
                        if not training(proc):  # done already: its worker now idles, and killing it tests nothing
                            continue
                        proc.send_signal(signal.SIGKILL)
                        killed.append(proc.info["pid"])
                    except psutil.NoSuchProcess:
                        continue
                    break
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_fold_task, daemon=True)
    killer.start()
    cfg = _on_ray(local, cluster, tmp_path / "ray")
    try:
        run_pipeline(cfg)
    finally:
        stop.set()
        killer.join(timeout=5)
    assert killed, "no network fold task was seen training, so none was killed"
    assert not shards  # streamed back through the driver
    _assert_same_results(local, cfg, families=("nblr", "cnn"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_cluster_is_said_before_any_work(tmp_path, capsys):
    from pipeline.cli import main

    archive = make_archive(tmp_path / "aclImdb_v1_labeled.tar.gz", balanced_reviews())
    db = tmp_path / "lossmap.duckdb"
    address = f"127.0.0.1:{_free_port()}"
    started = time.perf_counter()
    code = main(["run", "--data", str(archive), "--db", str(db), "--engine", "ray", "--ray-address", address,
                 "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"no Ray cluster answers at {address}" in err and "ray start --head" in err and "--engine local" in err
    assert time.perf_counter() - started < 15
    assert not db.exists()  # nothing was written


def test_an_address_where_something_else_listens_is_said_within_a_minute(tmp_path):
    """A port that accepts connections but is not Ray's (the dashboard's 8265 given by mistake, say)."""
    archive = make_archive(tmp_path / "aclImdb_v1_labeled.tar.gz", balanced_reviews())
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        cfg = Config(data=archive, db=tmp_path / "lossmap.duckdb", models_dir=tmp_path / "models", progress=False,
                     engine="ray", ray_address=address)
        started = time.perf_counter()
        with pytest.raises(engine.ClusterUnreachable, match="did not answer as a Ray cluster"):
            run_pipeline(cfg)
    assert time.perf_counter() - started < 90
    assert not cfg.db.exists()


@pytest.mark.parametrize("address", ["no-port-here", "127.0.0.1:notaport", "127.0.0.1:70000", ":6379", "[::1",
                                     "127.0.0.1:\uff16\uff13\uff17\uff19"])
def test_a_malformed_address_is_said_plainly(address):
    with pytest.raises(engine.ClusterUnreachable, match="is not HOST:PORT"):
        engine.reachable(address)


@pytest.mark.parametrize("address", ["http://127.0.0.1:8265", "ray://127.0.0.1:10001"])
def test_an_address_with_a_scheme_is_refused(address):
    with pytest.raises(engine.ClusterUnreachable, match="without a scheme"):
        engine.reachable(address)


def test_a_host_name_too_long_to_look_up_is_said_with_the_address():
    with pytest.raises(engine.ClusterUnreachable, match="no Ray cluster answers at " + "a" * 50):
        engine.reachable("a" * 300 + ":6379")


def test_a_ray_address_without_the_ray_engine_is_refused():
    with pytest.raises(ValueError, match="goes with --engine ray"):
        Config(ray_address="127.0.0.1:6379")


class _TwoRowsEach:
    """A batch worker that answers each job with two rows, in reverse order of the batch: the engine must give them
    back in job order, each job's rows as the worker gave them."""

    def __init__(self, shared):
        self.built = shared["built"]
        self.built.append(1)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        jobs = np.repeat(batch["job"].to_numpy(), 2)[::-1]
        return pd.DataFrame({"job": jobs, "x": np.repeat(batch["x"].to_numpy(), 2)[::-1],
                             "part": np.tile([1, 0], len(batch))})


def test_local_batches_come_back_in_job_order_from_one_worker(monkeypatch):
    monkeypatch.setattr(engine, "BLOCK_ROWS", 7)
    built = []
    found = engine.LocalEngine().map_batches(_TwoRowsEach, {"built": built}, pd.DataFrame({"x": np.arange(30) * 10}),
                                             desc="test", batch_rows=4)
    assert built == [1]  # built once, then called a block at a time
    assert found["job"].tolist() == np.repeat(np.arange(30), 2).tolist()
    assert found["x"].tolist() == np.repeat(np.arange(30) * 10, 2).tolist()
    assert found["part"].tolist() == [1, 0] * 30  # a job's own rows keep the order its worker gave them
    assert engine.LocalEngine().map_batches(_TwoRowsEach, {"built": []}, pd.DataFrame({"x": []}), desc="test",
                                            batch_rows=4).empty


def test_a_job_column_in_the_jobs_or_missing_from_a_worker_s_rows_is_refused():
    with pytest.raises(ValueError, match="'job' column is the engine's"):
        engine.LocalEngine().map_batches(_TwoRowsEach, {"built": []}, pd.DataFrame({"job": [1]}), desc="t",
                                         batch_rows=4)
    with pytest.raises(RuntimeError, match="without their 'job'"):
        engine.LocalEngine().map_batches(lambda shared: (lambda batch: batch[["x"]]), None,
                                         pd.DataFrame({"x": [1, 2]}), desc="t", batch_rows=4)


def test_a_grouped_worker_s_rows_are_tagged_with_their_jobs():
    """``by_group``: one output row per row, in order, or any number per review by a ``row`` column."""
    batch = pd.DataFrame({"model": [1, 0, 1, 0], "row": [5, 6, 7, 8], "job": [10, 11, 12, 13]})
    one_each = engine.by_group(batch, "model", lambda j, rows: pd.DataFrame({"value": rows * 10 + j}))
    assert one_each["job"].tolist() == [10, 12, 11, 13] and one_each["value"].tolist() == [51, 71, 60, 80]
    two_each = engine.by_group(batch, "model", lambda j, rows: pd.DataFrame({"row": np.repeat(rows, 2)[::-1]}))
    assert two_each["job"].tolist() == [12, 12, 10, 10, 13, 13, 11, 11]
    with pytest.raises(RuntimeError, match="returned 1 rows for 2 reviews"):
        engine.by_group(batch, "model", lambda j, rows: pd.DataFrame({"value": [0]}))
    with pytest.raises(TypeError):  # a job without a model is given to the worker as such, not dropped
        engine.by_group(batch.assign(model=[1, np.nan, 1, 0]), "model", lambda j, rows: [][j])
    with pytest.raises(RuntimeError, match="each review once per group"):
        engine.by_group(batch.assign(row=[5, 6, 5, 8]), "model", lambda j, rows: pd.DataFrame({"row": rows}))
    with pytest.raises(RuntimeError, match="returned no rows for 1 of its 2 jobs"):
        engine.LocalEngine().map_batches(lambda shared: (lambda b: b.iloc[:1][["job"]]), None,
                                         pd.DataFrame({"x": [1, 2]}), desc="t", batch_rows=4)
    wide = engine.spread("e", np.arange(6.0).reshape(3, 2))
    assert np.array_equal(engine.stacked(pd.DataFrame({"job": 0, "e1": wide["e1"], "e0": wide["e0"], "ex": 1,
                                                       "e\u0661": 5.0}), "e"),  # an Arabic-Indic 1 is not a 1
                          np.arange(6.0).reshape(3, 2))
    with pytest.raises(RuntimeError, match="have gaps"):
        engine.stacked(pd.DataFrame({"p0": [1.0], "p1": [1.0], "p10": [1.0]}), "p")
    with pytest.raises(ValueError, match=r"an \(n, k\) array"):
        engine.spread("e", np.arange(3.0))


@pytest.mark.parametrize("shards", [True, False], ids=["shards", "streamed"])
def test_what_a_ray_data_worker_raises_is_raised_as_it_is(cluster, shards, tmp_path):
    """A worker that fails to build (a device no machine has) or on one batch of many (a row the counts lack): the
    run gets the worker's own error, as on the local engine, not Ray Data's wrapper of its text."""
    from pipeline.models import export, linear
    from pipeline.models.text import tokenize

    corpus = tokenize(pd.Series(["good film", "bad film"] * 50), ngram_max=1, min_df=1)
    model = linear.fit(corpus, np.tile([1, 0], 50), np.arange(100), model_id="m", min_df=1)
    onnx = export.export_onnx(model, tmp_path / "m.onnx", classes=("negative", "positive"),
                              tokenizer_spec=corpus.tokenizer_spec()).read_bytes()
    rows = np.arange(100)
    with engine.connect("ray", cluster.address) as on:
        on.shared_disk = shards
        fine = on.map_batches(linear._Scorer, ([onnx], corpus, "cpu"), pd.DataFrame({"model": 0, "row": rows}),
                              desc="t", batch_rows=8)
        assert fine["job"].tolist() == rows.tolist() and "_lossmap_failed" not in fine.columns
        with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda; got 'tpu'"):
            on.map_batches(linear._Scorer, ([onnx], corpus, "tpu"), pd.DataFrame({"model": 0, "row": rows}),
                           desc="t", batch_rows=8)
        with pytest.raises(IndexError):
            on.map_batches(linear._Scorer, ([onnx], corpus, "cpu"),
                           pd.DataFrame({"model": 0, "row": np.r_[rows, 500]}), desc="t", batch_rows=8)
