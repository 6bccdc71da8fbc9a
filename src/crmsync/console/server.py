"""Run the console app with uvicorn in a background thread (CLI, worker, demo and tests)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn

from crmsync.console.app import Console, build_console
from crmsync.settings import Settings
from crmsync.store import Store


class ConsoleServer:
    def __init__(self, settings: Settings, store: Store, *, host: str = "127.0.0.1", port: int = 0,
                 state_dir: Path = Path(".crmsync/console")) -> None:
        self.app, self.console = build_console(settings, store, state_dir=state_dir)
        self.host = host
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # headers and body leave in two writes: without NODELAY (inherited by accepted sockets) the body
        # waits for the client's delayed ACK, ~40 ms on every keep-alive request
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind((host, port))
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="crmsync-console", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def state(self) -> Console:
        return self.console

    def start(self, timeout: float = 10.0) -> ConsoleServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"console server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def wait(self) -> None:
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        self.console.backfills.stop.set()
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
