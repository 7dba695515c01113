"""xner dashboard entry point in a checkout: `streamlit run app.py` (or `make app`; installed: `xner app`).

The dashboard itself is `xner_ui.app` (page registry, shared sidebar, error guard).
"""

from xner_ui.app import main

main()
