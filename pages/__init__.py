"""The dashboard's page scripts (one per page; `xner_ui/app.py` registers them with `st.navigation`).

This marker lets the folder ship inside the wheel as the package `xner_pages`, found with `importlib.resources`
by `xner app`; the scripts are run by Streamlit, never imported.
"""
