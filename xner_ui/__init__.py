"""UI helpers of the xner dashboard (Streamlit): URL-bound widgets and the shared sidebar (`state`), cached
core calls (`data`), escaped entity rendering (`render`), page scaffolding (`page`) and the model hooks
(`hooks`). The numbers and figures themselves come from `xner_core` (analysis, plots), which never imports
Streamlit.
"""
