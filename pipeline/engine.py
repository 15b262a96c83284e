"""Where a run's independent work executes: in this process (``local``, the default) or on a Ray cluster (``ray``).

``connect(cfg)`` opens the engine a run asked for, before any data is read: with ``--engine ray`` it joins the
cluster at ``--ray-address`` (or starts a Ray instance on this machine when none is given), and a cluster that
cannot be reached is a ``ClusterUnreachable`` naming the address and what to do. Both engines offer the same two
calls, and every stage uses only these:

- ``map(fn, shared, jobs, desc=...)``: ``[fn(shared, job) for job in jobs]``, in order. On Ray each job is a task
  (fold models: the linear model's, each network's, SHAP per fold); ``shared`` goes to the object store once; a task
  whose worker dies is run again (``RETRIES``), an error raised by the job itself is not.
- ``score_texts([(path, rows), ...], texts, device=..., staging=...)``: for each linear ONNX model, (the (n, K)
  probabilities of its rows, the ONNX Runtime provider that ran it). Local: a session here per model, reading the
  run's counts. Ray: one Ray Data ``map_batches`` pass over the texts, with actors that each hold a session per model
  on the models' bytes; the actors write Parquet shards under ``staging``, which the driver reads back in row order
  and then deletes (the finalising step writes the store, as on the local engine, in one transaction).

What stays on the driver with either engine: reading the data, tokenising, the 2-D map (UMAP, k-means, the
neighbour search) and the store. Results do not depend on the engine (``tests/pipeline/test_engine.py`` runs both on
the same data on a two-node cluster).

Ray turns a loopback address into this machine's network address, which a cluster started on 127.0.0.1 does not
answer; for a loopback or omitted address Lossmap keeps Ray on loopback (Ray's ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``
switch, read when Ray is imported), so nothing listens beyond this machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

ENGINES = ("local", "ray")
RETRIES = 3  # a task whose worker process dies is run again this many times
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_CONNECT_TIMEOUT_S = 5.0
_SCORE_BATCH = 2048  # texts per Ray Data batch
# Rows whose features are built at once where a stage predicts, scores or averages over many rows: each block holds a
# few copies of its rows' counts (about 1 GB at 50,000 IMDB reviews' n-grams), not a few copies of every row's.
BLOCK_ROWS = 50_000


def spans(n: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) of each chunk of ``size`` rows out of ``n``: the jobs of a stage that works in chunks."""
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def in_blocks(fn, rows: np.ndarray, size: int | None = None) -> np.ndarray:
    """``fn(rows)``, computed ``size`` (default ``BLOCK_ROWS``) rows at a time and stacked (row-wise work only: the
    result does not depend on ``size``); up to ``size`` rows, one call."""
    size = BLOCK_ROWS if size is None else size
    rows = np.asarray(rows)
    if len(rows) <= size:
        return fn(rows)
    return np.concatenate([fn(rows[start:stop]) for start, stop in spans(len(rows), size)])


class ClusterUnreachable(RuntimeError):
    """--engine ray could not join the cluster it was given."""


class LocalEngine:
    def map(self, fn, shared, jobs, *, desc: str, progress: bool = False) -> list:
        return [fn(shared, job) for job in tqdm(jobs, desc=desc, leave=False, disable=not progress)]

    def score_texts(self, models: list[tuple[Path, np.ndarray]], texts, *, device: str,
                    staging: Path | None = None, corpus=None, progress: bool = False) -> list[tuple[np.ndarray, str]]:
        from pipeline.models.score import OnnxTextModel

        found = []
        for path, rows in tqdm(models, desc="score (ONNX Runtime)", leave=False, disable=not progress):
            session = OnnxTextModel.load(path, device=device)
            if corpus is not None:  # counted already: the model's columns of the counts, a block of rows at a time
                columns = session.columns_in(corpus.vocab_index)
                probs = in_blocks(lambda block: session.score_counts(corpus.counts[block][:, columns]), rows)
            else:
                probs = session.score_texts(np.asarray(texts, dtype=object)[rows])
            found.append((probs, session.provider))
        return found


class RayEngine:
    def __init__(self, ray_module):
        self.ray = ray_module
        self.workers = max(1, int(ray_module.cluster_resources().get("CPU", 1)))

    def map(self, fn, shared, jobs, *, desc: str, progress: bool = False) -> list:
        ray = self.ray
        task = ray.remote(fn).options(max_retries=RETRIES, retry_exceptions=False, name=f"lossmap:{fn.__name__}")
        ref = ray.put(shared)
        futures = [task.remote(ref, job) for job in jobs]
        pending = list(futures)
        with tqdm(total=len(futures), desc=f"{desc} (Ray)", leave=False, disable=not progress) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                bar.update(len(done))
        return ray.get(futures)

    def score_texts(self, models: list[tuple[Path, np.ndarray]], texts, *, device: str,
                    staging: Path | None = None, corpus=None, progress: bool = False) -> list[tuple[np.ndarray, str]]:
        ray = self.ray
        staging = Path(staging or tempfile.mkdtemp(prefix="lossmap-shards-"))
        texts = np.asarray(texts, dtype=object)
        members = np.zeros((len(models), len(texts)), bool)  # model j scores row i
        for j, (_, rows) in enumerate(models):
            members[j, rows] = True
        wanted = np.flatnonzero(members.any(axis=0))
        frame = pd.DataFrame({"row": wanted.astype(np.int64), "text": texts[wanted]})
        blocks = max(1, min(self.workers * 4, -(-len(frame) // _SCORE_BATCH)))
        scored = ray.data.from_pandas(frame).repartition(blocks).map_batches(
            _TextScorer, fn_constructor_kwargs={"shared": [ray.put(([Path(p).read_bytes() for p, _ in models],
                                                                    members))], "device": device},
            batch_size=_SCORE_BATCH, batch_format="pandas", num_cpus=1,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=self.workers))  # a fixed pool of every CPU
        # left none for the tasks that feed and write it, and hung
        scored.write_parquet("local://" + str(staging))  # on the driver's node: the nodes may share no disk
        try:
            shards = sorted(staging.glob("*.parquet"))
            found = pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # scratch: what they hold goes to the store with the run
        if len(found) != len(wanted) or found["row"].duplicated().any():
            raise RuntimeError(f"Ray Data returned {len(found):,} scored texts for {len(wanted):,}")
        found = found.set_index("row")
        out = []
        for j, (_, rows) in enumerate(models):
            columns = sorted((c for c in found.columns if c.startswith(f"m{j}_p")), key=lambda c: int(c.split("p")[-1]))
            out.append((found.loc[np.asarray(rows, dtype=np.int64), columns].to_numpy(np.float64),
                        str(found["provider"].iloc[0])))
        return out


class _TextScorer:
    """A Ray Data actor: an ONNX Runtime session per model, on the models' bytes; each batch of texts is scored by
    the models whose rows it holds (``members``: (models, N) bools)."""

    def __init__(self, shared: list, device: str):
        import ray

        from pipeline.models.score import OnnxTextModel

        models, members = ray.get(shared[0])  # by reference: large arguments of an actor are a restart hazard
        self.sessions = []
        for model in models:
            handle, name = tempfile.mkstemp(suffix=".onnx")
            with os.fdopen(handle, "wb") as out:
                out.write(model)
            self.sessions.append(OnnxTextModel.load(Path(name), device=device))
            os.unlink(name)
        self.members = members

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = batch["row"].to_numpy()
        texts = batch["text"].tolist()
        out = {"row": rows, "provider": self.sessions[0].provider if self.sessions else ""}
        for j, session in enumerate(self.sessions):
            mine = self.members[j, rows]
            probs = np.full((len(rows), len(session.classes)), np.nan)
            if mine.any():
                probs[mine] = session.score_texts([t for t, m in zip(texts, mine) if m])
            out |= {f"m{j}_p{k}": probs[:, k] for k in range(probs.shape[1])}
        return pd.DataFrame(out)


@contextmanager
def connect(engine: str = "local", address: str | None = None):
    """The engine a run uses, open for the length of the ``with`` block (see the module doc)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    if engine == "local":
        yield LocalEngine()
        return
    if address is not None:
        reachable(address)
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")  # not a warning a second while it tries to connect
    if address is None or address == "auto" or _host(address) in _LOOPBACK:
        stay_on_loopback()
    import logging

    import ray

    import pipeline

    package = str(Path(pipeline.__file__).parent)
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")  # read when ray.data is imported: not a line per operator
    # joining a cluster: one connection attempt (Ray's default is 20, of about 35 s each, when what answers is not
    # Ray); Ray reads this when ray.init connects, and a local start (no address) keeps Ray's own wait for its GCS
    wait = "RAY_gcs_server_port_wait_time_s"
    before = os.environ.get(wait)
    if address is not None and before is None:
        os.environ[wait] = "1"
    try:
        ray.init(address=address or "local",  # "local": a new instance, not one RAY_ADDRESS or another run left
                 include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                 runtime_env={"py_modules": [package], "excludes": ["__pycache__"]},
                 **({"num_cpus": os.cpu_count()} if address is None else {}))
    except (ConnectionError, RuntimeError, TimeoutError) as exc:
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if address is None:
            raise ClusterUnreachable(f"Ray could not start on this machine ({why}); use --engine local") from None
        raise ClusterUnreachable(_unreachable(address, f"something listens there but did not answer as a Ray "
                                                       f"cluster: {why}")) from None
    finally:
        if before is None:
            os.environ.pop(wait, None)
    ray.data.DataContext.get_current().enable_progress_bars = False  # the run's own bars say where it is
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # not a warning that they are off
    try:
        yield RayEngine(ray)
    finally:
        ray.shutdown()


def reachable(address: str) -> None:
    """Raise ``ClusterUnreachable`` unless ``address`` is HOST:PORT (or ``auto``, left to Ray, which finds a cluster
    started on this machine) and something answers there within 5 s."""
    if address == "auto":
        return
    if "://" in address:
        raise ClusterUnreachable(f"--ray-address {address[:100]!r}: give the cluster's HOST:PORT as `ray start "
                                 "--head` sets it (for example 10.0.0.5:6379), without a scheme; Ray Client "
                                 "(ray://) is not supported")
    host, port = _host(address), _port(address)
    try:
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S):
            pass
    except (OSError, UnicodeError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise ClusterUnreachable(_unreachable(address[:200], why)) from None


def _unreachable(address: str | None, why: str) -> str:
    return (f"no Ray cluster answers at {address or 'auto'} ({why}). Start one with `ray start --head` and pass "
            "its address (--ray-address HEAD_IP:6379), leave out --ray-address to start Ray on this machine, "
            "or use --engine local. A cluster started by `ray start` asks for a token (Ray's default since 2.59): run "
            "with RAY_AUTH_MODE=token, and ~/.ray/auth_token copied from its head node (or RAY_AUTH_TOKEN set).")


def _host(address: str) -> str:
    if address.startswith("[") and "]" in address:  # [::1]:6379
        return address[1:address.index("]")].lower()
    return (address.rsplit(":", 1)[0] if ":" in address else address).lower()


def _port(address: str) -> int:
    tail = address.rsplit(":", 1)[-1] if ":" in address else ""
    bracketed = not address.startswith("[") or "]:" in address  # [::1]:6379
    if not (tail.isascii() and tail.isdigit()) or not 0 < int(tail) < 65536 or not _host(address) or not bracketed:
        raise ClusterUnreachable(f"--ray-address {address[:100]!r} is not HOST:PORT (for example 127.0.0.1:6379) "
                                 "or auto")
    return int(tail)


def stay_on_loopback() -> None:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    constants = __import__("sys").modules.get("ray._private.ray_constants")
    if constants is not None:  # Ray was imported before (a test's cluster): the switch was read then
        constants.ENABLE_RAY_CLUSTER = False
