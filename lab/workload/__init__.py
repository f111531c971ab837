"""The request stream: which keys, reads or writes, and when (YCSB-style generators)."""
