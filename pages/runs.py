"""Runs: what the results store and the committed result tables hold, a grid's status, the cached models (and
which of them this server process holds in memory), and exports.

The store is the local DuckDB file (`xner_core.experiments.store.ResultsStore`, default `<cache>/results.duckdb`, env
XNER_RESULTS); committed tables are `data/results/*.parquet`. Both feed every other page.
"""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from xner_core.analysis.views import run_counts
from xner_ui import data, hooks, page, render, runs, state

state.require_app()

st.title("Runs")
committed, store, warning = data.our_results()
if warning:
    st.warning(warning)

m = st.columns(3)
m[0].metric("Rows in the local store", f"{len(store):,}")
m[1].metric("Committed rows (data/results)", f"{len(committed):,}")
m[2].metric("Published rows (the study)", f"{(data.tidy_frame()['origin'] == 'published').sum():,}")
st.caption(f"Store: `{runs.store_path()}` (set `XNER_RESULTS` to use another file).")

for title, frame, key in (("Local store", store, "store"), ("Committed results", committed, "committed")):
    st.subheader(title)
    if frame.empty:
        st.info(f"No rows yet. {data.STORE_HINT} writes them"
                + (" to the store." if key == "store" else "; `xner results export` makes a table to commit."))
        continue
    counts = run_counts(frame)
    st.dataframe(counts, hide_index=True, width="stretch")
    for note in runs.frame_tapt_notes(frame):  # the tapt setting: which masked-LM head TAPT started from
        st.info(render.md_escape(note), icon=":material/info:")
    page.download_csv(counts, f"xner_{key}_counts.csv", key=f"dl_{key}_counts", label="Counts (CSV)")
    c1, c2 = st.columns(2)
    with c1:
        page.download_csv(frame, f"xner_{key}_results.csv", key=f"dl_{key}_csv", label="All rows (CSV)")
    with c2:
        def _parquet(frame: pd.DataFrame = frame) -> bytes:
            buf = io.BytesIO()
            frame.to_parquet(buf, index=False)
            return buf.getvalue()

        st.download_button("All rows (Parquet)", _parquet, file_name=f"xner_{key}_results.parquet",
                           mime="application/octet-stream", key=f"dl_{key}_parquet", on_click="ignore",
                           icon=":material/download:")

st.subheader("Grid status")
with page.guarded("the grid status"):
    preset = state.select("Preset", runs.preset_names(), "grid", "paper", radio=True)
    status = runs.grid_status(preset)
    g = st.columns(3)
    g[0].metric("Done", f"{status.done} / {status.total}")
    g[1].metric("Running", status.running)
    g[2].metric("Missing", status.missing)
    st.caption(f"`{preset}`: {render.md_escape(status.description)}. Jobs are evaluation jobs in the local store; "
               f"run the missing ones with `xner grid run {preset}` (it resumes where it stopped).")
    for msg in status.skipped:
        st.caption(render.md_escape(msg))
    for note in status.notes:  # a preset with the tapt setting: which masked-LM head TAPT starts from
        st.info(render.md_escape(note), icon=":material/info:")
    st.dataframe(status.rows, hide_index=True, width="stretch")
    page.download_csv(status.rows, f"xner_grid_{preset}_status.csv", key="dl_grid_status", label="Status (CSV)")

st.subheader("Cached models")
with page.guarded("the model list"):
    listing = runs.cached_models()
    if listing.empty:
        st.info("No trained models in the cache yet (`xner train ...` or a grid run puts them there).")
    else:
        st.dataframe(listing, hide_index=True, width="stretch")
        st.caption(f"`loaded`: copies this server process holds in memory (shared by every session); "
                   f"{len(hooks.loaded_models())} load(s) so far.")
        page.download_csv(listing, "xner_cached_models.csv", key="dl_models", label="Models (CSV)")

with st.expander("Store schema"):
    st.dataframe(runs.store_schema(), hide_index=True, width="stretch")
