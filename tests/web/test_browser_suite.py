"""Run the browser tests (tests/web/browser) inside a loopback-only network namespace.

Chromium's ICE candidates and every request must stay on 127.0.0.1, so the browser tests run
in ``unshare -n`` with only ``lo`` up (testing-webrtc.md). This test is how the default
``pytest`` run includes them: it starts a child pytest there and fails with its output if any
browser test fails. It needs Debian's Chromium (`.ci/run` installs it) and root (or user
namespaces) for ``unshare``; without them it fails rather than skips, so CI cannot go green
without the browser tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_browser_suite_in_a_loopback_only_namespace() -> None:
    if os.environ.get("TELEMED_TEST_POSTGRES_URL"):
        # The namespace reaches no outside PostgreSQL/Redis, so the browser tests always run the
        # embedded demo; CI's embedded run has just run them, repeating them here proves nothing new.
        pytest.skip("browser tests ran in the embedded run (they always use the embedded backends)")
    assert Path("/usr/bin/chromium").exists(), "install Debian's chromium (see .ci/run)"
    assert shutil.which("unshare") and shutil.which("ip"), "util-linux unshare and iproute2 ip are needed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEMED_")}
    env["TELEMED_BROWSER_NETNS"] = "1"
    inner = f"ip link set lo up && exec {sys.executable} -m pytest -q -p no:cacheprovider tests/web/browser -x -s"
    result = subprocess.run(
        ["unshare", "-n", "sh", "-c", inner],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=870,  # about 5.5 min on the shared machine; headroom for a loaded CI
    )
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-4000:]
