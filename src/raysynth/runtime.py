"""The Ray session a command runs in: the cluster the job was submitted to (RAY_ADDRESS, set
by `ray job submit`) or a local one started here and stopped at the end. Stage builders never
start Ray themselves; only commands call this."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def ray_session() -> Iterator[None]:
    import ray

    if ray.is_initialized():
        yield
        return
    ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=True)
    try:
        yield
    finally:
        ray.shutdown()
