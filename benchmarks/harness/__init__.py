"""The benchmark harness, one module per concept.

- :mod:`harness.layout`: where things are (the benchmarks directory, workers, results, the
  python-etcd3 environment) and which scenarios exist;
- :mod:`harness.stats`: quantiles, summaries, ratios;
- :mod:`harness.machine`: facts about the machine and the versions measured;
- :mod:`harness.etcd_metrics`: etcd's Prometheus counters, read before and after a window;
- :mod:`harness.children`: child processes whose output lines are time-stamped;
- :mod:`harness.peers`: the leader-election implementations compared, as candidate processes;
- :mod:`harness.pool`: the candidates of one peer in one election;
- :mod:`harness.runner`: a scenario's entry point, its context, interleaved trials, logging.

Every scenario runs as ``python benchmarks/scenario_x.py``, which puts ``benchmarks/`` first on
``sys.path``. Times are Unix seconds from ``time.time()`` in every process on this one machine,
so events printed by different processes can be compared. The harness imports etcd_elector only
inside the functions that need it: ``run.py --render-only`` needs nothing else.
"""
