"""Queries of the Training and Experiments pages: curves, layer telemetry, the sweep."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from pages.common.queries.base import StoreRef, _query
from pipeline.names import FAMILIES


_REFERENCE = "model_id IN (SELECT model_id FROM models WHERE run_id = $run AND reference)"


@st.cache_data(show_spinner=False, max_entries=8)
def training_batches(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """Per-batch loss and accuracy of the reference networks (empty when the run has no telemetry)."""
    return _query(ref, f"SELECT model_id, step, epoch, loss, accuracy FROM training_batches "
                       f"WHERE run_id = $run AND {_REFERENCE} ORDER BY model_id, step", {"run": run_id})


@st.cache_data(show_spinner=False, max_entries=8)
def training_epochs(ref: StoreRef, run_id: str) -> pd.DataFrame:
    return _query(ref, f"SELECT model_id, epoch, train_loss, train_accuracy, val_loss, val_accuracy "
                       f"FROM training_epochs WHERE run_id = $run AND {_REFERENCE} ORDER BY model_id, epoch",
                  {"run": run_id})


# --- Training page ---

@st.cache_data(show_spinner=False, max_entries=8)
def telemetry_models(ref: StoreRef, run_id: str) -> pd.DataFrame:
    """The reference networks (per-layer telemetry), in training order: model_id, family, role."""
    return _query(ref, "SELECT model_id, family, role FROM models WHERE run_id = ? AND reference "
                       "ORDER BY list_position(?, family)", [run_id, list(FAMILIES)])


@st.cache_data(show_spinner=False, max_entries=16)
def model_curves(ref: StoreRef, run_id: str, family: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-batch, per-epoch) curves of every model of a family (fold models and the conventional one)."""
    models = "model_id IN (SELECT model_id FROM models WHERE run_id = $run AND family = $family)"
    params = {"run": run_id, "family": family}
    batches = _query(ref, f"SELECT model_id, step, epoch, loss, accuracy, lr FROM training_batches "
                          f"WHERE run_id = $run AND {models} ORDER BY model_id, step", params)
    epochs = _query(ref, f"SELECT model_id, epoch, train_loss, train_accuracy, val_loss, val_accuracy "
                         f"FROM training_epochs WHERE run_id = $run AND {models} ORDER BY model_id, epoch", params)
    return batches, epochs


@st.cache_data(show_spinner=False, max_entries=16)
def layer_stats(ref: StoreRef, run_id: str, model_id: str) -> pd.DataFrame:
    return _query(ref, "SELECT epoch, layer, quantity, n, mean, std, max_abs, norm, dead_fraction FROM layer_stats "
                       "WHERE run_id = ? AND model_id = ? ORDER BY epoch, layer, quantity", [run_id, model_id])


@st.cache_data(show_spinner=False, max_entries=32)
def layer_histograms(ref: StoreRef, run_id: str, model_id: str, layer: str, quantity: str) -> pd.DataFrame:
    return _query(ref, "SELECT epoch, bin, lo, hi, count FROM layer_histograms WHERE run_id = ? AND model_id = ? "
                       "AND layer = ? AND quantity = ? ORDER BY epoch, bin", [run_id, model_id, layer, quantity])


@st.cache_data(show_spinner=False, max_entries=16)
def information_plane(ref: StoreRef, run_id: str, model_id: str) -> pd.DataFrame:
    return _query(ref, "SELECT epoch, layer, i_xt, i_ty, bins, n_probe FROM information_plane "
                       "WHERE run_id = ? AND model_id = ? ORDER BY layer, epoch", [run_id, model_id])


# --- Experiments page ---

@st.cache_data(show_spinner=False)
def sweeps(ref: StoreRef) -> pd.DataFrame:
    return _query(ref, "SELECT sweep_id, started_at, seconds, quick, n_train, n_val FROM sweeps "
                       "ORDER BY started_at DESC")


@st.cache_data(show_spinner=False, max_entries=8)
def sweep_runs(ref: StoreRef, sweep_id: str) -> pd.DataFrame:
    return _query(ref, "SELECT run_no, activation, loss, hidden_units, hidden_layers, best_val_accuracy, best_epoch, "
                       "final_val_accuracy, final_val_loss, epochs, seconds FROM sweep_runs WHERE sweep_id = ? "
                       "ORDER BY best_val_accuracy DESC, run_no", [sweep_id])


@st.cache_data(show_spinner=False, max_entries=8)
def sweep_curves(ref: StoreRef, sweep_id: str) -> pd.DataFrame:
    return _query(ref, "SELECT run_no, epoch, train_loss, train_accuracy, val_loss, val_accuracy FROM sweep_curves "
                       "WHERE sweep_id = ? ORDER BY run_no, epoch", [sweep_id])
