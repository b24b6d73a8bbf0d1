"""The threshold tools: `score`, `tune`, `calibrate`, `enroll` and `monitor`, each running the
daemon's own pipeline (or, for `calibrate`, reading the counters the daemon keeps).

`jobs` spreads files over worker processes, `report` formats the results, `plots` draws them
(matplotlib, optional), `options` holds the flags `score` and `tune` share.
"""
