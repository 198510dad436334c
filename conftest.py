"""Suite-wide: torch computes with one thread in the tests and in the processes they start.

The tests train and export tiny models on small images. On a shared 2-core machine
torch's second thread mostly spins while it waits: a 64-image epoch cost 2.5 CPU-s with
two threads and 0.08 with one (load average ~7), and the suite's wall time followed.
An OMP_NUM_THREADS set outside wins. Set before torch is imported (tests/conftest.py
imports it), so torch starts with it; child processes inherit it.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
