"""Stage 7, analysis: the tidy results frame, view frames, statistics and Plotly figure builders."""
