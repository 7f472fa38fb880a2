"""Synthetic note generation (DESIGN.md, "Data flow": recipe -> prompts -> notes).

recipe.py (typed recipe, load-time checks), lexicon.py (dictionary filters and sampling),
prompts.py (deterministic prompt shards), postprocess.py (clean-up, seed spans, duplicate
keys), stage.py (the Ray Data stage, `generate`), stats.py (corpus statistics).
"""
