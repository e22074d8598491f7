"""Open a MACE ``.model`` file without running anything the file contains.

A MACE ``.model`` (what ``mace_run_train`` writes and what MACE-MP-0 and
MACE-OFF are distributed as) is a pickled ``torch.nn.Module``. mace's own
loaders unpickle it with weights-only loading switched off, so a crafted file
runs code as the user. Even ``weights_only=True`` with the classes such a file needs
allow-listed is not safe: MACE's symmetric contractions are torch.fx
GraphModules, rebuilt by ``torch.fx.graph_module.reduce_graph_module``, which
``exec``-s Python source stored in the file; and e3nn's code-generated modules
(``o3.Linear``, ``TensorProduct``) ``torch.jit.load`` bytes from the file
when unpickled.

What :func:`load_mace` does instead:

1. scan the pickle's globals without unpickling it
   (``torch.serialization.get_unsafe_globals_in_checkpoint``) and refuse a
   file that needs anything outside a reviewed policy: ``torch.nn`` modules of
   mace and e3nn that bring no unpickling logic of their own, e3nn's irreps
   tuples, and a few activation functions;
2. read it with ``torch.load(weights_only=True)``, the two code-carrying
   globals replaced by inert stand-ins: an object tree of attributes and
   tensors that cannot run;
3. rebuild a fresh model from the installed mace code with the
   hyper-parameters mace's own ``extract_config_mace_model`` reads from that
   tree, and load the file's tensors into it: no unexpected key, and no missing
   one but the Wigner constants e3nn regenerates.

Layers and energies of the rebuilt model are bit-identical to the unpickled
one (measured on seven models, mace-torch 0.3.16). ``import mace`` sets
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the whole process, which would
make every later ``torch.load`` without an explicit ``weights_only`` unpickle
anything; :func:`import_mace` undoes that.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from pathlib import Path
from typing import Any, Dict, Iterator, List

import torch

from ...errors import FileFormatError, ModelError
from ...storage import load_refusal

EXTRA = (
    "pip install 'equilens[mace]' (mace-torch pins e3nn 0.4: use an environment "
    "without the sevenn extra)"
)
GRAPH_MODULE = "torch.fx.graph_module.reduce_graph_module"
TRACER = "torch.fx._symbolic_trace.Tracer"
FUNCTIONS = {
    "e3nn.math._normalize_activation.normalize2mom",
    "mace.modules.irreps_tools.reshape_irreps",
    "torch.nn.functional.silu",
    "torch.nn.functional.tanh",
    "torch.nn.functional.gelu",
    "torch.nn.functional.softplus",
    "torch.nn.functional.sigmoid",
    "torch.tanh",
    "torch.sigmoid",
    "torch.abs",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.container.ParameterList",
    "torch.nn.modules.container.ModuleDict",
}


def import_mace() -> Any:
    """``mace.modules``, imported so that the process stays as it was: e3nn
    0.4 loads its constants while torch refuses ``slice`` by default, and
    ``import mace`` switches weights-only loading off for the whole process."""
    saved = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    try:
        with torch.serialization.safe_globals([slice]):
            import e3nn.o3  # noqa: F401
            import mace.modules
    except ImportError:
        raise ModelError(f"MACE models need mace-torch: {EXTRA}") from None
    finally:
        if saved is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = saved
    return mace.modules


class _InertGraphModule(torch.nn.Module):
    """Stands in for an fx GraphModule: keeps its tensors, never its code."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        raise RuntimeError("inert stand-in of a MACE file: rebuild the model")


def _inert_graph_module(body: Dict[str, Any], *_: Any) -> torch.nn.Module:
    module = _InertGraphModule()
    for key, value in body.items():
        if isinstance(value, torch.Tensor):
            module.register_buffer(key.replace(".", "_"), value, persistent=False)
    return module


class _InertTracer:
    pass


_INERT: Dict[type, type] = {}


def _inert_codegen(cls: type) -> type:
    """A subclass of an e3nn code-generating module that drops the
    TorchScript bytes of the file instead of loading them."""
    if cls not in _INERT:

        def __setstate__(self: torch.nn.Module, state: Dict[str, Any]) -> None:
            state = dict(state)
            state.pop("__codegen__", None)
            torch.nn.Module.__setstate__(self, state)

        _INERT[cls] = type(f"Inert{cls.__name__}", (cls,), {"__setstate__": __setstate__})
    return _INERT[cls]


def _resolve(dotted: str) -> Any:
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:]:
            value = getattr(value, part)
        return value
    raise ImportError(dotted)


def _accepted(name: str, value: Any) -> bool:
    """Whether the policy lets a file name this global."""
    if name in FUNCTIONS:
        return True
    if not name.startswith(("mace.modules.", "e3nn.")) or not isinstance(value, type):
        return False
    if issubclass(value, torch.nn.Module):
        from e3nn.util.codegen import CodeGenMixin

        own = [
            method
            for base in value.__mro__
            if base.__module__.startswith(("mace", "e3nn")) and base is not CodeGenMixin
            for method in ("__setstate__", "__reduce__", "__reduce_ex__")
            if method in vars(base)
        ]
        return not own
    return issubclass(value, tuple)  # e3nn's Irrep, Irreps, _MulIr, Instruction


def allowed_globals(path: Path) -> List[Any]:
    """The ``safe_globals`` entries this file needs, inert where the real
    ones would run code; a file needing anything else is refused."""
    from e3nn.util.codegen import CodeGenMixin

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as error:  # zip, pickle or file errors of any kind
        raise FileFormatError(
            f"{path}: not a readable MACE model file ({type(error).__name__})"
        ) from None
    entries: List[Any] = []
    refused = []
    for name in names:
        if name == GRAPH_MODULE:
            entries.append((_inert_graph_module, name))
            continue
        if name == TRACER:
            entries.append((_InertTracer, name))
            continue
        try:
            value = _resolve(name)
        except (ImportError, AttributeError):
            refused.append(name)
            continue
        if not _accepted(name, value):
            refused.append(name)
        elif isinstance(value, type) and issubclass(value, CodeGenMixin):
            entries.append((_inert_codegen(value), name))
        else:
            entries.append(value)
    if refused:
        raise FileFormatError(
            f"{path}: refused: the file needs {', '.join(sorted(refused)[:3])}, "
            "which a MACE model does not (it could run code)"
        )
    return entries


def read_skeleton(path: Path) -> torch.nn.Module:
    """The file's object tree (attributes and tensors) that cannot run."""
    with torch.serialization.safe_globals(allowed_globals(path)):
        try:
            skeleton = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types
            raise load_refusal(path, error, "MACE model file") from None
    if not isinstance(skeleton, torch.nn.Module) or not hasattr(skeleton, "products"):
        raise FileFormatError(f"{path}: holds a {type(skeleton).__name__}, not a MACE model")
    return skeleton


@contextlib.contextmanager
def _file_u_matrices(skeleton: Any) -> Iterator[None]:
    """Hand mace the file's own coupling (U) matrices while it builds the
    model, instead of recomputing them (90% of the build time; the values are
    overwritten by the state dict anyway)."""
    from mace.modules import symmetric_contraction

    queue = []
    for product in skeleton.products:
        for contraction in product.symmetric_contractions.contractions:
            nu = 1
            while hasattr(contraction, f"U_matrix_{nu}"):
                queue.append(getattr(contraction, f"U_matrix_{nu}"))
                nu += 1
    original = symmetric_contraction.U_matrix_real

    def from_file(*args: Any, **kwargs: Any) -> List[torch.Tensor]:
        if not queue:  # a file without them: computed as usual
            return original(*args, **kwargs)
        dtype = kwargs.get("dtype") or torch.get_default_dtype()
        return [queue.pop(0).to(dtype).clone()]

    symmetric_contraction.U_matrix_real = from_file
    try:
        yield
    finally:
        symmetric_contraction.U_matrix_real = original


def _config(skeleton: Any, path: Path) -> tuple:
    """The constructor and keyword arguments of the model in the file."""
    modules = import_mace()
    from e3nn import o3
    from mace.tools.scripts_utils import extract_config_mace_model

    name = type(skeleton).__name__
    if name not in ("ScaleShiftMACE", "MACE"):
        raise ModelError(f"{path}: {name} models are not read yet (MACE and ScaleShiftMACE are)")
    if name == "MACE":  # mace reads configurations of ScaleShiftMACE only
        original = skeleton.__class__
        skeleton.__class__ = type("ScaleShiftMACE", (original,), {})
        skeleton.scale_shift = modules.ScaleShiftBlock(scale=1.0, shift=0.0)
        try:
            config = extract_config_mace_model(skeleton)
        finally:
            skeleton.__class__ = original
            del skeleton.scale_shift
        config.pop("atomic_inter_scale", None)
        config.pop("atomic_inter_shift", None)
    else:
        config = extract_config_mace_model(skeleton)
    if "error" in config:
        raise ModelError(f"{path}: mace cannot read the model's settings ({config['error']})")
    last = o3.Irreps(str(skeleton.products[-1].linear.irreps_out))
    config["keep_last_layer_irreps"] = any(ir.l > 0 for _, ir in last)  # mace omits it
    return getattr(modules, name), config


def load_mace(path: Path) -> torch.nn.Module:
    """A MACE model rebuilt from installed code and the file's tensors."""
    import_mace()
    skeleton = read_skeleton(path)
    if getattr(getattr(skeleton, "cueq_config", None), "enabled", False):
        raise ModelError(f"{path}: cuEquivariance models: convert with mace's convert_cueq_e3nn")
    cls, config = _config(skeleton, path)
    state = skeleton.state_dict()
    dtype = next(t.dtype for t in state.values() if t.is_floating_point())
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with _file_u_matrices(skeleton):
            model = cls(**config)
    finally:
        torch.set_default_dtype(previous)
    result = model.load_state_dict(state, strict=False)
    missing = [key for key in result.missing_keys if "._compiled_main" not in key]
    if missing or result.unexpected_keys:
        raise ModelError(
            f"{path}: the rebuilt model does not match the file "
            f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})"
        )
    return model.eval()
