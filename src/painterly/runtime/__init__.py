"""What a run needs of the machine: the memory estimate and plan (memory.py), the allocator
setting that keeps freed memory (allocator.py), and the clock behind the time left (clock.py)."""
