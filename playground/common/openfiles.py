"""The process's open files limit (``ulimit -n``) raised to cover what a command will hold open."""

from __future__ import annotations

import resource

SPARE = 64  # the process's own: stdio, the reactor's epoll and wakers, listeners, logs, sinks


def raise_open_files(need: int) -> int | None:
    """Raise the soft open files limit to ``need`` where the hard limit allows (never lowers it);
    the soft limit after, None when it is unlimited."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    if soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (OSError, ValueError):
            pass
    return soft
