"""Headless Chromium over the DevTools protocol, for tests that look at HTML.

The driver lives in ``tests/tracking/test_ui_browser.py``; it is loaded here by
path (works with any pytest import mode) and extended with what a static page
check needs: console errors and uncaught exceptions are collected while waiting.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parent / "tracking" / "test_ui_browser.py"


def _load():
    name = "_orch_test_ui_browser"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_ui = _load()
CHROMIUM = _ui.CHROMIUM
start_chromium = _ui._start_chromium
stop_chromium = _ui._stop


class Page(_ui.DevTools):
    """DevTools that keeps the console errors and exceptions it sees in passing."""

    def __init__(self, ws):
        super().__init__(ws)
        self.errors: list[str] = []

    def _event(self, msg: dict) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append(f"console: {params.get('args')}")
        elif method == "Runtime.exceptionThrown":
            self.errors.append(f"exception: {params.get('exceptionDetails')}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            self.errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")

    async def call(self, method: str, **params):
        msg_id = next(self.ids)
        await self.ws.send_json({"id": msg_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method} failed: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)
