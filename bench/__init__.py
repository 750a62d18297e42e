"""Benchmarks (``make bench`` = ``python -m bench``); each module also runs alone.

Results go to ``bench/out/`` (git-ignored). See docs/benchmarks.md.
"""
