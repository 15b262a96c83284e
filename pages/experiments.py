"""Experiments: the dense-network hyperparameter sweep (`python -m pipeline sweep`)."""

import altair as alt
import pandas as pd
import streamlit as st

from pages.common import queries, state

ref = state.store()
st.title("Experiments")
sweeps = queries.sweeps(ref)
if sweeps.empty:
    st.info("No sweep in this store yet. The sweep trains Chollet's dense network over a 36-run grid on the IMDB "
            "archive's train split (it does not read your own data). Run one with:\n\n```\npython -m pipeline "
            f"sweep --data aclImdb_v1_labeled.tar.gz --db {st.session_state.db_path}\n```\n\n"
            "(`--quick` for a 4-run smoke test).")
    st.stop()

labels = {r.sweep_id: f"{r.started_at:%Y-%m-%d %H:%M} · {'quick' if r.quick else 'full'} · {r.seconds:.0f} s"
          for r in sweeps.itertuples()}
sweep_id = st.selectbox("Sweep", sweeps["sweep_id"], format_func=labels.get, key="sweep_pick")
meta = sweeps.set_index("sweep_id").loc[sweep_id]
runs = queries.sweep_runs(ref, sweep_id)
curves = queries.sweep_curves(ref, sweep_id)
best = runs.iloc[0]
c = st.columns(4)
c[0].metric("Runs", len(runs))
c[1].metric("Best validation accuracy", f"{best['best_val_accuracy']:.2%}",
            help=f"run {best['run_no']}: {best['activation']}, {best['loss']}, "
                 f"{best['hidden_layers']} x {best['hidden_units']} units, epoch {best['best_epoch']}")
c[2].metric("Training / validation reviews", f"{meta['n_train']:,} / {meta['n_val']:,}")
c[3].metric("Wall time", f"{meta['seconds']:.0f} s")

st.subheader("Runs, best validation accuracy first")
runs = runs.assign(name=runs.apply(lambda r: f"#{r.run_no} {r.activation}/{r.loss}/{r.hidden_layers}x{r.hidden_units}",
                                   axis=1))
st.dataframe(runs.drop(columns="name"), hide_index=True, column_config={
    "run_no": "run", "hidden_units": "units", "hidden_layers": "layers",
    "best_val_accuracy": st.column_config.ProgressColumn("best val. accuracy", min_value=0.5, max_value=1.0,
                                                         format="%.4f"),
    "final_val_accuracy": st.column_config.NumberColumn("last-epoch val. accuracy", format="%.4f"),
    "final_val_loss": st.column_config.NumberColumn("last-epoch val. loss (nats)", format="%.3f"),
    "seconds": st.column_config.NumberColumn("time (s)", format="%.1f"),
})

st.subheader("Parallel coordinates")
axes = ["activation", "loss", "hidden_layers", "hidden_units", "best_val_accuracy"]
ranks = runs[["run_no", "name", *axes]].copy()
for col in axes:  # each axis scaled to 0..1; categories spread evenly
    values = ranks[col]
    if not pd.api.types.is_numeric_dtype(values):
        levels = sorted(values.unique())
        ranks[f"{col}_pos"] = values.map({v: i / max(1, len(levels) - 1) for i, v in enumerate(levels)})
    else:
        lo, hi = values.min(), values.max()
        ranks[f"{col}_pos"] = (values - lo) / (hi - lo) if hi > lo else 0.5
long = ranks.melt(id_vars=["run_no", "name", *axes], value_vars=[f"{a}_pos" for a in axes], var_name="axis",
                  value_name="position")
long["axis"] = long["axis"].str.removesuffix("_pos")
st.altair_chart(alt.Chart(long).mark_line(opacity=0.6).encode(
    x=alt.X("axis:N", sort=axes, title=None), y=alt.Y("position:Q", axis=None),
    detail="run_no:N", color=alt.Color("best_val_accuracy:Q", scale=alt.Scale(scheme="viridis"),
                                       title="best val. accuracy"),
    tooltip=["name", alt.Tooltip("best_val_accuracy:Q", format=".4f")],
).properties(height=320), width="stretch")
st.caption("One line per run across its settings; the last axis is the best validation accuracy (scaled from the "
           f"worst run, {runs['best_val_accuracy'].min():.2%}, to the best, {best['best_val_accuracy']:.2%}). "
           "Categorical axes: activation relu (bottom) / tanh (top), loss bce (bottom) / mse (top).")

st.subheader("Learning curves")
chosen = st.multiselect("Runs to overlay", runs["name"].tolist(), default=runs["name"].head(3).tolist(),
                        key="sweep_overlay")
sel = curves.merge(runs[["run_no", "name"]], on="run_no")
sel = sel[sel["name"].isin(chosen)]
long = sel.melt(id_vars=["name", "epoch"], value_vars=["train_loss", "val_loss", "train_accuracy", "val_accuracy"])
long["split"] = long["variable"].str.split("_").str[0].map({"train": "train", "val": "validation"})
long["metric"] = long["variable"].str.split("_").str[1]
st.altair_chart(alt.Chart(long).mark_line(point=True).encode(
    x="epoch:O", y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)), color=alt.Color("name:N", title="run"),
    strokeDash=alt.StrokeDash("split:N"), column=alt.Column("metric:N", title=None),
    tooltip=["name", "split", "epoch", alt.Tooltip("value:Q", format=".4f")],
).properties(height=260, width=380).resolve_scale(y="independent"), width="content")
st.caption("Loss is cross-entropy (nats) for every run, whatever loss it was trained with, so runs compare. "
           "Solid: train; dashed: validation.")
