"""Lossmap app: a router over the pages in pages/. Run with `streamlit run app.py [-- --db PATH]`."""

from pathlib import Path

import duckdb
import streamlit as st

from pages.common import state
from pages.common.widgets import plain
from pipeline.store.schema import StoreError

ICON = Path(__file__).resolve().parent / "pages" / "common" / "icon.png"

# A local icon: a ':material/...:' page icon makes the browser fetch it from Google's font servers.
st.set_page_config(page_title="Lossmap", page_icon=str(ICON), layout="wide")
pages = st.navigation([
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/samples.py", title="Samples", icon=":material/table_rows:"),
    st.Page("pages/population_map.py", title="Population map", icon=":material/scatter_plot:"),
    st.Page("pages/mislabel_review.py", title="Mislabel review", icon=":material/fact_check:"),
    st.Page("pages/sample_analysis.py", title="Sample analysis", icon=":material/search_insights:"),
    st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
    st.Page("pages/compare_runs.py", title="Compare runs", icon=":material/compare_arrows:"),
    st.Page("pages/training.py", title="Training", icon=":material/monitoring:"),
    st.Page("pages/truncation.py", title="Truncation", icon=":material/content_cut:"),
    st.Page("pages/experiments.py", title="Experiments", icon=":material/science:"),
])
try:
    state.sidebar()
    pages.run()
except (StoreError, duckdb.Error) as exc:  # a store damaged, truncated or swapped while a page read it
    st.error(f"The store could not be read ({plain(str(exc).strip().splitlines()[0][:300])}). It may be damaged: "
             "reload the page, and if this stays, run the pipeline again to write a new store.")
