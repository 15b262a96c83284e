"""The app's shared state: which store and run are open, initialised in one place.

``app.py`` calls ``sidebar()`` on every rerun; pages call ``context()`` to get the
``Context`` it chose, or stop with a helpful message when there is no store or run.
The store path comes from ``streamlit run app.py -- --db PATH``, else
``$LOSSMAP_DB``, else the pipeline's default ``data/lossmap.duckdb``; the run from
the URL (``?run=...``), else the latest complete run. The Store box opens only regular
files in that store's folder or a ``--store-folder DIR`` (``--any-store`` lifts this).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import uuid
from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from pages.common import queries
from pipeline.store.decisions import decisions_path
from pages.common.widgets import plain
from pipeline.config import DEFAULT_DB
from pipeline.store.files import stored_json
from pipeline.store.schema import StoreError

ROOT = Path(__file__).resolve().parents[2]
DB_ENV = "LOSSMAP_DB"

# The brief fixes the page folder's name, `pages/`, which Streamlit also treats as the
# legacy (v1) multipage folder until app.py has called st.navigation once in this
# server. A first visit straight to a page URL (a shared link to a fresh server) would
# then run that page without app.py. Opting out of the legacy mode here, and rerunning
# once in context(), sends such a visit through the router.
PagesManager.uses_pages_directory = False


@dataclasses.dataclass(frozen=True)
class Context:
    db: Path
    ref: queries.StoreRef
    run_id: str
    run: dict
    decisions: Path
    reviewer: str
    classes: tuple[str, ...] = ()  # class names; label i is classes[i]

    def name(self, label) -> str:
        """The class name of a label index (as stored), or '' for a missing one."""
        try:
            return self.classes[int(label)]
        except (TypeError, ValueError, IndexError):
            return ""

    @property
    def source(self) -> str:
        """The data the run read (runs.source): decisions are kept per source."""
        return str(self.run.get("source"))

    @property
    def rating_name(self) -> str | None:
        """What the data calls its rating (the --score column), or None when the run has none."""
        columns = self.run.get("columns")
        score = (columns if isinstance(columns, dict) else stored_json(columns, dict)).get("score")
        return score if isinstance(score, str) else None  # the store is untrusted


APP_OPTIONS = "--db PATH, --store-folder DIR (repeatable), --any-store"


def _args(*, unknown: bool = False):
    """The app's own options, after ``--`` on the streamlit command line (with ``unknown``: those it does not know)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--db", default=None)
    parser.add_argument("--store-folder", action="append", default=[])
    parser.add_argument("--any-store", action="store_true")
    args, rest = parser.parse_known_args(sys.argv[1:])
    return rest if unknown else args


def default_db() -> Path:
    chosen = _args().db or os.environ.get(DB_ENV)
    return Path(chosen) if chosen else ROOT / DEFAULT_DB


def store_folders() -> list[Path] | None:
    """Where the sidebar's Store box may open files: the default store's folder and each ``--store-folder DIR``
    (resolved); None when the person who started the server allowed any path (``--any-store``)."""
    args = _args()
    if args.any_store:
        return None
    return [Path(p).resolve() for p in (default_db().parent, *args.store_folder)]


def store_problem(db: Path) -> str | None:
    """Why the Store box may not open ``db`` (as plain text), or None. A path outside the served folders gets the
    same answer whether or not it exists, so no session can probe the disk; only regular files are opened (a FIFO
    would hang the session)."""
    if not str(db).strip() or str(db) == ".":
        return "Enter the path of a store (a .duckdb file a pipeline run wrote) in the Store box."
    try:
        return _store_problem(db)
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long for the file system
        return f"{plain(str(db)[:200])} cannot be a store path ({plain(getattr(exc, 'strerror', None) or exc)})."


def _store_problem(db: Path) -> str | None:
    folders = store_folders()
    target = db.resolve()
    if folders is not None and not any(target == f or f in target.parents for f in folders):
        return (f"{plain(db)} is outside the folders this app serves stores from ({', '.join(plain(f) for f in folders)})."
                " Whoever starts the app can add one: `streamlit run app.py -- --store-folder DIR`.")
    if not target.exists():
        return (f"No store at {plain(db)} yet. Make one with `python -m pipeline run --db PATH` "
                "(`--sample 2000` for a quick run), then reload this page.")
    if not target.is_file():
        return f"{plain(db)} is not a regular file, so it cannot be a store. Enter the path of a .duckdb file."
    return None


def init() -> None:
    """Session defaults, set once per session."""
    ss = st.session_state
    if "db_path" not in ss:
        ss.db_path = str(default_db())
    if "reviewer" not in ss:
        ss.reviewer = uuid.uuid4().hex[:8]


def sidebar() -> None:
    """Store and run pickers; records the Context (or the reason there is none)."""
    init()
    ss = st.session_state
    ss.ctx, ss.ctx_error, ss.store_ref = None, None, None
    with st.sidebar:
        st.text_input("Store", key="db_path", help=f"DuckDB file written by the pipeline (or set {DB_ENV})")
        if _args(unknown=True):
            st.warning(f"The app was started with options it does not know: {plain(' '.join(_args(unknown=True)))}. "
                       f"It knows {plain(APP_OPTIONS)}, after `--`.")
        db = Path(ss.db_path)
        ss.ctx_error = store_problem(db)
        if ss.ctx_error:
            return
        try:
            ref = queries.StoreRef.of(db)
            runs = queries.runs(ref)
        except StoreError as exc:
            ss.ctx_error = plain(str(exc))  # names paths and, for a crafted store, what it holds: plain text
            return
        ss.store_ref = ref
        if runs.empty:
            ss.ctx_error = f"The store {plain(db)} has no complete run yet. Run `python -m pipeline run --db PATH`."
            return
        ids = runs["run_id"].tolist()
        wanted = st.query_params.get("run")
        index = ids.index(wanted) if wanted in ids else 0
        if wanted and wanted not in ids:
            st.warning(f"The link's run {plain(wanted)} is not in this store (it may have been replaced); showing "
                       "the latest complete run.")
        labels = {r.run_id: f"{r.completed_at:%Y-%m-%d %H:%M} · {Path(r.source).name} · {r.n_samples:,} texts · "
                            f"{r.n_classes} classes · …{r.run_id[-4:]}" for r in runs.itertuples()}
        run_id = st.selectbox("Run", ids, index=index, format_func=lambda r: labels[r], key=f"run_pick_{ref.mtime_ns}",
                              help="Latest complete run first; a run appears here once the pipeline has finished it")
        if run_id != ids[0]:
            st.query_params["run"] = run_id
        elif "run" in st.query_params:
            del st.query_params["run"]
        run = runs.set_index("run_id").loc[run_id].to_dict()
        st.caption(f"Run `{run_id}`")
        ss.ctx = Context(db, ref, run_id, run, decisions_path(db), ss.reviewer, queries.classes(ref, run_id))


def store() -> queries.StoreRef:
    """The open store, whether or not it holds a run (sweeps live beside runs); or a message and st.stop()."""
    return _required("store_ref")


def context() -> Context:
    """The open store and run, or a message and st.stop()."""
    return _required("ctx")


def _required(key: str):
    """What sidebar() recorded under ``key``, or the reason there is none and st.stop()."""
    if "ctx" not in st.session_state:  # this page ran without app.py (see above): go through the router
        st.rerun()
    value = st.session_state.get(key)
    if value is None:
        st.info(st.session_state.get("ctx_error") or "Open a store in the sidebar.")
        st.stop()
    return value
