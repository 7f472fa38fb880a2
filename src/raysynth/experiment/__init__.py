"""`raysynth experiment GRID.yaml`: a grid of pipeline runs (corpus size x recipe x annotator x
backbone x seed) that share every stage they have in common, plus the papers' baselines,
scored the same way on the same real test sets, in one table and two plots.

config.py reads and checks the grid, plan.py turns it into stages to run (the only place
that decides what is shared), runner.py runs them with the existing stage functions, and
report.py writes results.md, results.json and the plots.
"""
