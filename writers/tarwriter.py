"""webdataset's `TarWriter`, imported without the rest of webdataset.

`import webdataset` runs the package's `__init__`, which imports its PyTorch integration: wherever
torch is installed (most of our users' machines) that costs every writing process ~200 MiB and
seconds of start-up for a class that only needs `tarfile`. The writer module itself imports only
`webdataset.gopen` and `webdataset.utils`, so they are loaded as modules of a package whose
`__init__` is not run. A process that imports webdataset for real afterwards gets these same
module objects (Python reuses `webdataset.writer` from `sys.modules`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types


def _writer_module() -> types.ModuleType:
    if "webdataset" in sys.modules:  # already imported for real (a reader in the same process)
        return importlib.import_module("webdataset.writer")
    spec = importlib.util.find_spec("webdataset")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("webdataset is not installed")
    package = types.ModuleType("webdataset")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["webdataset"] = package
    try:
        return importlib.import_module("webdataset.writer")
    finally:
        del sys.modules["webdataset"]  # a later `import webdataset` runs the real package


TarWriter = _writer_module().TarWriter
