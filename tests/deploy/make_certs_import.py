"""``deploy/make_certs.py`` is a script (copied into the image), not a package module: load it by path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "deploy" / "make_certs.py"
_spec = importlib.util.spec_from_file_location("telemed_deploy_make_certs", _PATH)
assert _spec is not None and _spec.loader is not None
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
make_certs = _module.make_certs
