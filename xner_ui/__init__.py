"""UI helpers of the xner dashboard (Streamlit): URL-bound widgets and the shared sidebar (`state`), cached
core calls (`data`: results and views; `inputs`: the evaluation inputs the pages perturb, from the core's one
builder; `upload`: the upload page's work; `runs`: store, grid status and model cache), names and lookups
(`catalog`), escaped entity rendering (`render`), page scaffolding (`page`) and the model hooks (`hooks`). Pages
import the library only through this package (and the analysis constants and figures). The numbers and figures
themselves come from `xner_core` (analysis, plots), which never imports Streamlit.
"""
