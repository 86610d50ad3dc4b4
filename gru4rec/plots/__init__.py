"""Plotly figure builders for the notebooks, one module per lesson topic.

Only the notebooks and the widget playground import this package; the core (data, model, training, evaluation)
never does. Every function takes plain data (DataFrames, arrays, dicts) and returns a ``plotly.graph_objects.Figure``.
"""
