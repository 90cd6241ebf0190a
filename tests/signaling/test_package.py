"""``signaling`` stands on its own: importable without the server, the API or the database layer."""

from __future__ import annotations

import subprocess
import sys


def test_signaling_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, signaling.protocol, signaling.calls, signaling.relay, signaling.ice, "
        "signaling.peers.client, signaling.peers.echo, signaling.peers.net; "
        "print(sorted(m for m in sys.modules if m == 'server' or m.startswith(('server.', 'sqlalchemy'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
