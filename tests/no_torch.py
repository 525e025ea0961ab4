"""Run a module with `import torch` made fatal: `python tests/no_torch.py -m hfx.serve ...`.

The serving path must never import torch (a deployment installs requirements-serve.txt, which has none):
any import of it, however indirect, ends the process with exit code 97 and a line on stderr.
"""

import os
import runpy
import sys
from importlib.abc import MetaPathFinder


class RefuseTorch(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            sys.stderr.write(f"no_torch: something imported {name}\n")
            sys.stderr.flush()
            os._exit(97)
        return None


if __name__ == "__main__":
    assert sys.argv[1] == "-m", "usage: python tests/no_torch.py -m MODULE [ARGS...]"
    sys.path[0] = os.getcwd()  # as `python -m` would have it
    sys.meta_path.insert(0, RefuseTorch())
    sys.argv = [sys.argv[2], *sys.argv[3:]]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
