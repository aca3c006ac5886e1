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
