"""Put on PYTHONPATH by the tests: makes torch and onnx unimportable, as on a runtime-only install.

Any attempt to import them raises ModuleNotFoundError, so a test that passes through
this shows that the code path needs neither.
"""

import importlib.abc
import sys

BLOCKED = ("torch", "onnx", "torchvision")


class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {fullname!r} (blocked: runtime-only test)", name=fullname)
        return None


sys.meta_path.insert(0, _Block())
