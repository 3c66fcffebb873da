"""Lets the CUDA build of torchvision 0.28 import beside the CPU build of torch 2.13.

Installed into kohya's e2e venv only (as a .pth hook), never into the project's venv.
sd-scripts imports torchvision for image transforms and never calls its detection ops. The
only torchvision wheel for torch 2.13.0 here is a CUDA build whose C extension cannot load
beside CPU torch; its `_meta_registrations` then calls `register_fake("torchvision::nms")`
(and `qnms`) for ops that were never defined and the import dies with
"operator torchvision::nms does not exist". Just before that module runs, this hook defines
the two schemas without kernels: the fake registrations succeed, and calling nms would
still fail loudly ("no kernel"), as it should. Nothing happens when the C extension loads.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from typing import Any

_TARGET = "torchvision._meta_registrations"
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBS: list[Any] = []  # a torch.library.Library unregisters its ops when collected


def _define_missing_ops() -> None:
    import torch
    import torchvision.extension

    if torchvision.extension._has_ops():
        return
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        lib.define(schema)
    _LIBS.append(lib)


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        _define_missing_ops()
        self._inner.exec_module(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


sys.meta_path.insert(0, _Finder())
