"""Every thread's stack as text: what a test that waited in vain reports (where each thread was)."""

from __future__ import annotations

import sys
import threading
import traceback


def thread_stacks() -> str:
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        out.append(f"--- thread {names.get(ident, '?')} ({ident})\n" + "".join(traceback.format_stack(frame)))
    return "\n".join(out)


def studio_failures() -> str:
    """The last failed questions of every studio worker of this process, with their tracebacks (Worker.failures)."""
    import gc

    from sync_runner.serve.studio.queries import Worker

    out = []
    for worker in [o for o in gc.get_objects() if isinstance(o, Worker)]:
        out += [f"--- {worker.where.project_dir.name}: {failure}" for failure in worker.failures]
    return "\n".join(out)
