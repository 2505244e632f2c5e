"""Batch: many (content, style) pairs, resumable, on local worker processes or a Ray cluster.

stylize.py    stylize_many and the `batch` verb
jobs.py       the job list (inputs, manifests), output names, per-job options, the lock, the log
workers.py    one job's steps in a worker (up-to-date check, run, atomic save), the style queue
executors.py  where the jobs run: local worker processes or Ray actors
"""
