"""Runs: what the results store and the committed result tables hold, the cached models, and exports.

The store is the local DuckDB file (`xner_core.results.ResultsStore`, default `<cache>/results.duckdb`, env
XNER_RESULTS); committed tables are `data/results/*.parquet`. Both feed every other page.
"""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from xner_core import analysis
from xner_core.results import default_store_path
from xner_ui import data, page, state

state.require_app()

st.title("Runs")
committed, store, warning = data.our_results()
if warning:
    st.warning(warning)

m = st.columns(3)
m[0].metric("Rows in the local store", f"{len(store):,}")
m[1].metric("Committed rows (data/results)", f"{len(committed):,}")
m[2].metric("Published rows (the study)", f"{(data.tidy_frame()['origin'] == 'published').sum():,}")
st.caption(f"Store: `{default_store_path()}` (set `XNER_RESULTS` to use another file).")

for title, frame, key in (("Local store", store, "store"), ("Committed results", committed, "committed")):
    st.subheader(title)
    if frame.empty:
        st.info(f"No rows yet. {data.STORE_HINT} writes them"
                + (" to the store." if key == "store" else "; `xner results export` makes a table to commit."))
        continue
    counts = analysis.run_counts(frame)
    st.dataframe(counts, hide_index=True, width="stretch")
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

st.subheader("Cached models")
with page.guarded("the model list"):
    from xner_core.runner import cached_configs

    models = cached_configs()
    if not models:
        st.info("No trained models in the cache yet (`xner train ...` or a grid run puts them there).")
    else:
        from xner_core.config import config_label

        listing = pd.DataFrame([{"model": cfg.model, "setting": cfg.setting, "config": config_label(cfg),
                                 "hash": info["hash"], "MB": round(info["size_bytes"] / 2**20, 1),
                                 "created": str(info["created"])} for cfg, info in models])
        st.dataframe(listing, hide_index=True, width="stretch")
        page.download_csv(listing, "xner_cached_models.csv", key="dl_models", label="Models (CSV)")

with st.expander("Store schema"):
    from xner_core.results import SCHEMA

    schema = pd.DataFrame([{"column": c.name, "type": c.sql_type, "description": c.description} for c in SCHEMA])
    st.dataframe(schema, hide_index=True, width="stretch")
