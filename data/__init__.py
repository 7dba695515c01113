"""The repository's data tables (languages, pairs, URIEL distances, the study's numbers, our committed results).

Not code: this marker lets the folder ship inside the wheel as the package `xner_core.data`, read with
`importlib.resources` (`xner_core.paths.repo_data_dir`).
"""
