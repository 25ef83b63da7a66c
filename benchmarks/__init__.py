"""kbroker's benchmark suite: ``python -m benchmarks --scenario NAME|all``.

Not part of the test run (``tests/benchmarks/test_quick.py`` runs a ``--quick`` pass so the
harness never rots). The method and the latest figures are in ``docs/performance.md``.
"""
