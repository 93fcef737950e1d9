"""A target's Python modules for nodes that do not share the controller's file system.

A target declares the modules it runs on its nodes (NodeNeeds.python_modules); a remote
backend (ssh, docker) unpacks `bundle(needs)` into one directory per node, puts that
directory in `node.pythonpath`, and runs `import_check(...)` there, so a host whose
interpreter cannot run them is reported in one line before the target starts.
"""
from __future__ import annotations

import io
import os
import tarfile

from harness.protocols import NodeNeeds


def bundle(needs: NodeNeeds, *, gzip: bool = True) -> bytes:
    """A tar of the top-level packages (or single-file modules) holding the needed
    modules, as they are on the controller, without caches; each at the archive's top."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gzip else "w") as tar:
        for source in needs.sources():
            tar.add(source, arcname=os.path.basename(source), filter=_no_caches)
    return buffer.getvalue()


def import_check(python: str, directory: str, needs: NodeNeeds) -> list[str]:
    """The argv proving `python` imports every needed module from `directory`."""
    imports = "; ".join(f"import {m}" for m in needs.python_modules)
    return ["env", f"PYTHONPATH={directory}", python, "-c", imports]


def _no_caches(info: tarfile.TarInfo):
    parts = info.name.split("/")
    return None if "__pycache__" in parts or info.name.endswith(".pyc") else info
