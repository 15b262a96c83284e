"""Where a run's independent work executes: in this process (``local``, the default) or on a Ray cluster (``ray``).

``connect(cfg)`` opens the engine a run asked for, before any data is read: with ``--engine ray`` it joins the
cluster at ``--ray-address`` (or starts a Ray instance on this machine when none is given), and a cluster that
cannot be reached is a ``ClusterUnreachable`` naming the address and what to do. Both engines offer the same two
calls, and every stage uses only these:

- ``map(fn, shared, jobs, desc=..., gpus=0)``: ``[fn(shared, job) for job in jobs]``, in order. On Ray each job is a
  task (fold models: the linear model's, each network's; the SHAP background per fold; the n-gram counting's
  chunks); ``shared`` goes to the object store once; a task whose worker dies is run again (``RETRIES``), an error
  raised by the job itself is not.
  A task asks for ``gpus`` GPUs (the networks' training: one each, unless --device cpu) when the cluster has them,
  so Ray gives each its own GPU.
- ``map_batches(Worker, shared, jobs, desc=..., batch_rows=...)``: row-wise work over a frame of ``jobs`` (one row
  each: a review, or a review and the model that reads it). ``Worker(shared)`` is built once per process and called
  with batches of jobs; it returns a frame whose ``job`` column says which job each output row came from, at least
  one row per job (the engine numbers the jobs 0..n-1 in that column). The result is every output row in job
  order. Local: one worker here, batches of ``BLOCK_ROWS``. Ray: one Ray Data ``map_batches`` pass with a pool of
  actors that each build the worker once (the linear models' scoring, each network's scores and embedding of
  every review, SHAP, the truncation windows, the map vectors of large data); the actors write Parquet shards that
  the driver reads back and deletes (``_gather``). A worker's usual body is ``by_group`` (its jobs by model);
  ``spread`` and ``stacked`` carry arrays through the frames.

Where the shards go: when every node of the cluster runs on the driver's machine (a local cluster) the actors write
them to a scratch folder beside the run's models; when some node is another machine, which may share no disk with
the driver, the driver streams the batches back itself (``iter_batches``) and nothing is written by the workers.
Either way the finalising step writes the store, as on the local engine, in one publish.

What stays on the driver with either engine: reading the data, the 2-D map's fits (UMAP, k-means, the neighbour
search) and the store. Results do not depend on the engine (``tests/pipeline/test_engine.py`` runs both on the same
data on a two-node cluster).

Ray turns a loopback address into this machine's network address, which a cluster started on 127.0.0.1 does not
answer; for a loopback or omitted address Lossmap keeps Ray on loopback (Ray's ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER``
switch, read when Ray is imported), so nothing listens beyond this machine.
"""

from __future__ import annotations

import os
import pickle
import re
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


def _numbered(jobs: pd.DataFrame) -> pd.DataFrame:
    if "job" in jobs.columns:
        raise ValueError("a job frame's 'job' column is the engine's: name it otherwise")
    return jobs.reset_index(drop=True).assign(job=np.arange(len(jobs), dtype=np.int64))


def _batch(work, batch: pd.DataFrame) -> pd.DataFrame:
    """One batch through a worker, its output checked: every row says its job, one of the batch's, and every job of
    the batch has at least one row."""
    if not len(batch):  # Ray Data may hand an actor an empty block
        return pd.DataFrame({"job": np.zeros(0, np.int64)})
    out = work(batch)
    if not isinstance(out, pd.DataFrame) or "job" not in out.columns:
        raise RuntimeError(f"a batch worker ({type(work).__name__}) returned rows without their 'job'")
    if not out["job"].isin(batch["job"]).all():
        raise RuntimeError(f"a batch worker ({type(work).__name__}) returned rows of jobs it was not given")
    lost = ~batch["job"].isin(out["job"])
    if lost.any():
        raise RuntimeError(f"a batch worker ({type(work).__name__}) returned no rows for {int(lost.sum()):,} of "
                           f"its {len(batch):,} jobs")
    return out


def by_group(batch: pd.DataFrame, by, work) -> pd.DataFrame:
    """A batch worker's usual body: ``work(key, rows)`` for the jobs of ``batch`` grouped by the column(s) ``by``
    (typically the model that reads them), ``rows`` their ``row`` column in batch order. Its frame is tagged with
    those jobs: by its own ``row`` column when it has one (any number of output rows per review), else one output
    row per row, in order."""
    parts = []
    for key, group in batch.groupby(by, sort=False, dropna=False):
        rows, jobs = group["row"].to_numpy(), group["job"].to_numpy()
        found = work(key, rows)
        if "row" in found.columns:
            if not pd.Index(rows).is_unique:
                raise RuntimeError("a batch worker that says each output row's review needs each review once per "
                                   "group; this batch repeats one")
            job = pd.Series(jobs, index=rows).loc[found["row"].to_numpy()].to_numpy()
        elif len(found) == len(rows):
            job = jobs
        else:
            raise RuntimeError(f"a batch worker returned {len(found):,} rows for {len(rows):,} reviews")
        parts.append(found.assign(job=job))
    return pd.concat(parts, ignore_index=True)


def spread(prefix: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """An (n, k) array as the columns ``<prefix>0`` .. ``<prefix>k-1`` of a worker's output frame."""
    if np.ndim(values) != 2:
        raise ValueError(f"spread takes an (n, k) array; got {np.ndim(values)} dimension(s)")
    return {f"{prefix}{k}": values[:, k] for k in range(values.shape[1])}


def stacked(frame: pd.DataFrame, prefix: str, dtype=np.float64) -> np.ndarray:
    """The columns ``spread`` made, back as one (n, k) array; a gap in their numbers is an error."""
    number = re.compile(re.escape(prefix) + r"(0|[1-9][0-9]*)")
    found = sorted(int(m.group(1)) for m in map(number.fullmatch, map(str, frame.columns)) if m)
    if found != list(range(len(found))):
        raise RuntimeError(f"the columns {prefix}0, {prefix}1, ... of a batch worker's rows have gaps: {found[:10]}")
    return frame[[f"{prefix}{k}" for k in found]].to_numpy(dtype)


def _in_job_order(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The workers' outputs, ordered by job (stable: a job's own rows keep the order its worker gave them). Empties
    ``parts`` as it joins them, so that at most two copies of the rows are held at once (SHAP's are the run's
    largest frame: about 32 rows per review)."""
    kept = [p for p in parts if len(p)] or [pd.DataFrame({"job": np.zeros(0, np.int64)})]
    parts.clear()
    found = pd.concat(kept, ignore_index=True) if len(kept) > 1 else kept[0].reset_index(drop=True)
    kept.clear()
    jobs = found["job"].to_numpy()
    if len(jobs) > 1 and not (jobs[1:] >= jobs[:-1]).all():  # the local engine's come in order: no copy
        found = found.iloc[np.argsort(jobs, kind="stable")].reset_index(drop=True)
    return found


class LocalEngine:
    def map(self, fn, shared, jobs, *, desc: str, progress: bool = False, gpus: float = 0) -> list:
        return [fn(shared, job) for job in tqdm(jobs, desc=desc, leave=False, disable=not progress)]

    def map_batches(self, worker, shared, jobs: pd.DataFrame, *, desc: str, batch_rows: int,
                    progress: bool = False) -> pd.DataFrame:
        jobs = _numbered(jobs)
        if not len(jobs):
            return _in_job_order([])
        work = worker(shared)
        blocks = spans(len(jobs), BLOCK_ROWS)  # batch_rows is Ray's: here, a few copies of a block fit
        return _in_job_order([_batch(work, jobs.iloc[a:b]) for a, b in tqdm(blocks, desc=desc, leave=False,
                                                                            disable=not progress)])


class RayEngine:
    def __init__(self, ray_module, scratch: Path | None = None):
        self.ray = ray_module
        resources, nodes = ray_module.cluster_resources(), [n for n in ray_module.nodes() if n.get("Alive")]
        self.workers = max(1, int(resources.get("CPU", 1)))
        self.gpus = float(resources.get("GPU", 0))
        self.nodes = len(nodes)
        self.shared_disk = _on_this_machine(ray_module, nodes)
        self.scratch = Path(scratch) if scratch is not None else None  # where a local cluster's shards are written

    def map(self, fn, shared, jobs, *, desc: str, progress: bool = False, gpus: float = 0) -> list:
        ray = self.ray
        task = ray.remote(fn).options(max_retries=RETRIES, retry_exceptions=False, name=f"lossmap:{fn.__name__}",
                                      num_gpus=gpus if self.gpus >= gpus else 0)  # none asked of a cluster without
        ref = ray.put(shared)
        futures = [task.remote(ref, job) for job in jobs]
        pending = list(futures)
        with tqdm(total=len(futures), desc=f"{desc} (Ray)", leave=False, disable=not progress) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                bar.update(len(done))
        return ray.get(futures)

    def map_batches(self, worker, shared, jobs: pd.DataFrame, *, desc: str, batch_rows: int,
                    progress: bool = False) -> pd.DataFrame:
        ray = self.ray
        jobs = _numbered(jobs)
        if not len(jobs):
            return _in_job_order([])
        blocks = max(1, min(self.workers * 4, -(-len(jobs) // batch_rows)))
        done = ray.data.from_pandas(jobs).repartition(blocks).map_batches(
            _Actor, fn_constructor_kwargs={"worker": worker, "shared": [ray.put(shared)]},
            batch_size=batch_rows, batch_format="pandas", num_cpus=1,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=self.workers))  # a fixed pool of every CPU
        # left none for the tasks that feed and write it, and hung
        found = _in_job_order(self._gather(done, desc=desc, progress=progress))
        failed = _failure(found)
        if failed is not None:
            raise failed  # as the local engine would
        return found.drop(columns=_FAILED, errors="ignore")

    def _gather(self, done, *, desc: str, progress: bool) -> list[pd.DataFrame]:
        """The pass's output frames: through Parquet shards the actors write, when every node shares this
        machine's disk; else streamed back through the driver."""
        if not self.shared_disk:
            with tqdm(desc=f"{desc} (Ray)", unit=" rows", leave=False, disable=not progress) as bar:
                parts = []
                for batch in done.iter_batches(batch_format="pandas", batch_size=None):
                    parts.append(batch)
                    bar.update(len(batch))
                return parts
        if self.scratch is not None:
            self.scratch.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="shards-", dir=self.scratch))
        try:
            done.write_parquet(str(staging))
            return [pd.read_parquet(p) for p in sorted(staging.glob("*.parquet"))]
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # scratch: what they hold goes to the store with the run
            if self.scratch is not None and self.scratch.is_dir() and not any(self.scratch.iterdir()):
                self.scratch.rmdir()


def _on_this_machine(ray, nodes: list[dict]) -> bool:
    """Whether every live node of the cluster (``nodes``) runs on this machine, so that the nodes and the driver share
    its disk: the driver's node's host name and address (two containers may share a host name, not an address)."""
    mine = [node for node in nodes if node.get("NodeID") == ray.get_runtime_context().get_node_id()]
    if len(mine) != 1:
        return False
    here = (socket.gethostname(), mine[0].get("NodeManagerAddress"))
    return all((node.get("NodeManagerHostname"), node.get("NodeManagerAddress")) == here for node in nodes)


class _Actor:
    """A Ray Data actor: builds ``worker(shared)`` once (``shared`` by reference: large arguments of an actor are a
    restart hazard) and hands it each batch. What the worker raises, building or working, comes back as a row
    (``_FAILED``, the error pickled) for the driver to raise as it is: Ray Data would wrap it in an error of its own,
    which keeps only its text."""

    def __init__(self, worker, shared: list):
        import ray

        try:
            self.work, self.failed = worker(ray.get(shared[0])), None
        except Exception as exc:
            self.work, self.failed = None, exc

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        try:
            if self.failed is not None:
                raise self.failed
            return _batch(self.work, batch)
        except Exception as exc:
            return pd.DataFrame({"job": [-1], _FAILED: [_pickled(exc)]})


_FAILED = "_lossmap_failed"  # the column of a batch whose worker raised


def _pickled(exc: Exception) -> bytes:
    try:
        return pickle.dumps(exc)
    except Exception:  # an error that does not pickle: its type and text
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))


def _failure(found: pd.DataFrame) -> Exception | None:
    """What a worker raised, from the rows of a Ray Data pass, or None."""
    if _FAILED not in found.columns:
        return None
    failed = found[_FAILED].dropna()
    return pickle.loads(failed.iloc[0]) if len(failed) else None  # written by this run's own workers


@contextmanager
def connect(engine: str = "local", address: str | None = None, *, scratch: Path | None = None):
    """The engine a run uses, open for the length of the ``with`` block (see the module doc); ``scratch``: the folder
    where a local cluster's Parquet shards are written, and removed once read."""
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
        yield RayEngine(ray, scratch)
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
