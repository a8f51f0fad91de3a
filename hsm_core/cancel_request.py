"""``hsm cancel`` next to a live controller: a request file the controller reads before launching.

``hsm cancel`` stops the tasks that run, but a controller (``hsm run``/``hsm complete``) still
running the sweep in another terminal used to go on launching every pending task, under a sweep
that ``hsm status`` called cancelled. So ``hsm cancel`` first writes ``.controller/cancel_requested``
in the sweep dir; the controller asks :func:`cancel_requested` before each launch batch (one stat)
and launches nothing more once it is there, leaving the rest pending; at its end it keeps the
sweep's status ``cancelled``. A controller that starts later (``hsm complete``) removes the file:
running the sweep again is what the user asked for then.
"""

from __future__ import annotations

import os
from pathlib import Path

from hsm_core.atomic import atomic_write_text

#: The request's file, in the sweep dir (beside the controller's lease).
CANCEL_FILE = Path(".controller") / "cancel_requested"


def request_cancel(sweep_path: Path) -> None:
    """Ask the sweep's controller, if one runs, to launch nothing more."""
    path = Path(sweep_path) / CANCEL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, f"pid {os.getpid()}\n")


def cancel_requested(sweep_path: Path) -> bool:
    """True once ``hsm cancel`` asked the sweep's controller to launch nothing more."""
    return (Path(sweep_path) / CANCEL_FILE).exists()


def clear_cancel_request(sweep_path: Path) -> None:
    """Forget an earlier request: a controller starting now is asked to run the sweep again."""
    try:
        (Path(sweep_path) / CANCEL_FILE).unlink()
    except FileNotFoundError:
        pass
