"""Small computations the lesson notebooks show (counts, fits, checks), kept out of the notebooks so they are tested.

One module per lesson topic, e.g. :mod:`gru4rec.lessons.data` (notebook 01), :mod:`gru4rec.lessons.batching` (02),
:mod:`gru4rec.lessons.evaluation` (04),
:mod:`gru4rec.lessons.comparison` (05),
:mod:`gru4rec.lessons.seed_to_official` (06), :mod:`gru4rec.lessons.losses` (07).
Like the core, nothing here plots: the figures are in :mod:`gru4rec.plots`.
"""
