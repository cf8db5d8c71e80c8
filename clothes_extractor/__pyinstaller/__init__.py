"""PyInstaller support for apps built on this package (a desktop app shipping the runtime).

``pyinstaller app.py`` finds this folder through the ``pyinstaller40`` entry point
(``pyproject.toml``) and runs its hook, which packs the bundled models and the ``serve``
page with the app: without it the app starts and then says it bundles no model.
"""

from __future__ import annotations

import os


def get_hook_dirs() -> list[str]:
    return [os.path.dirname(__file__)]
