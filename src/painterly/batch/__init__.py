"""Batch: many (content, style) pairs, resumable, on local worker processes or a Ray cluster.

stylize.py   stylize_many and the `batch` verb
jobs.py      the job list (inputs, manifests), output names, per-job options, the lock
workers.py   one job's steps in a worker, the executors (local processes, Ray), the log
"""
