"""The threshold tools: `score`, `tune` and `monitor`, each running the daemon's own pipeline.

`jobs` spreads files over worker processes, `report` formats the results, `plots` draws them
(matplotlib, optional), `options` holds the flags `score` and `tune` share.
"""
