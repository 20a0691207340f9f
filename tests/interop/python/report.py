"""The end of a flow script (stdio_flow.py, stdio_modern.py): run it with a
timeout, and print one JSON object on stdout with what happened, whatever
happened (the error and traceback in it, the traceback on stderr too)."""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Coroutine
from typing import Any


def report(flow: Coroutine[Any, Any, None], out: dict[str, Any], timeout: float) -> int:
    """Runs `flow` (which fills `out`); 0 when it completed, 1 otherwise."""
    status = 1
    try:
        asyncio.run(asyncio.wait_for(flow, timeout=timeout))
        status = 0
    except BaseException as e:  # noqa: BLE001 - everything ends up in the JSON
        while isinstance(e, BaseExceptionGroup) and e.exceptions:
            e = e.exceptions[0]
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        print(out["traceback"], file=sys.stderr)
    sys.stdout.write(json.dumps(out, indent=2, default=str) + "\n")
    return status
