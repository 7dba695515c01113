"""xner_core: the pure, typed library behind the xner CLI and dashboard.

Pipeline: corpus -> perturb -> model -> predict -> metrics -> results -> plots,
with overlap & language features computed beside it. No Streamlit here.
"""

__version__ = "0.1.0"
