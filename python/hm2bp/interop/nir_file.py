""".nir files (HDF5) read and written without trusting them.

Reading: the file must be a regular file (hm2bp.safe_io: a FIFO or device is refused, never
opened for reading) of at most MAX_NIR_BYTES, and it is opened through that descriptor. Before
any data is read, every object of the HDF5 tree is checked: only hard links (a soft or external
link would read another object or another file), no external storage and no virtual datasets
(HDF5 would read the bytes of whatever file they name, e.g. /etc/passwd as weights), only the
filters NIR writers use, numeric or string datatypes only, at most MAX_DEPTH levels and
MAX_OBJECTS objects, and element counts within the engine's limit and a byte total within the
memory this process may use. Then the nir package builds the graph from the checked tree.

Writing: the graph is serialised in memory and written by safe_io.atomic_write (temporary file,
fsync, rename), so a full disk leaves the previous file as it was and says so.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from .. import safe_io
from ..model import limits

__all__ = ["MAX_DEPTH", "MAX_NIR_BYTES", "MAX_OBJECTS", "read_graph", "write_graph"]

MAX_NIR_BYTES = 4 * safe_io.GiB
MAX_DEPTH = 16  # a graph, its nodes, a subgraph's nodes, their metadata: about 6 deep
MAX_OBJECTS = 100_000
# HDF5 filters a NIR writer uses: deflate (gzip), shuffle, fletcher32, LZF. Any other would
# make HDF5 look for a plugin library.
_FILTERS = {1, 2, 3, 32000}


class _Refused(ValueError):
    """A check of this module failed (its message is final)."""


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ImportError("hm2bp.nir needs the nir package: pip install 'hm2bp[nir]'") from None
    return h5py


def _check_dataset(h5py: Any, path: Path, where: str, ds: Any) -> int:
    """The bytes a dataset's data takes when read; ValueError when it is not plain data in
    this file."""
    if ds.external or ds.id.get_create_plist().get_external_count():
        raise _Refused(f"{path}: {where} keeps its data in external files; hm2bp reads only "
                         f"what the .nir file itself holds")
    if ds.is_virtual:
        raise _Refused(f"{path}: {where} is a virtual dataset (data from other files); hm2bp "
                         f"reads only what the .nir file itself holds")
    plist = ds.id.get_create_plist()
    for k in range(plist.get_nfilters()):
        code = plist.get_filter(k)[0]
        if code not in _FILTERS:
            raise _Refused(f"{path}: {where} uses HDF5 filter {code}, not one NIR files use")
    dtype = ds.dtype
    text = h5py.check_string_dtype(dtype) is not None
    if not text and (dtype.kind not in "biuf" or dtype.names is not None or dtype.subdtype is not None
                     or h5py.check_enum_dtype(dtype) is not None):
        raise _Refused(f"{path}: {where} has datatype {dtype}, not numbers or text")
    if ds.size is None or ds.size > limits.MAX_ELEMENTS:
        raise _Refused(f"{path}: {where} has shape {ds.shape}, more elements than the engine "
                         f"takes ({limits.MAX_ELEMENTS})")
    return int(ds.size) * dtype.itemsize


def _check_tree(h5py: Any, path: Path, root: Any) -> None:
    free = limits.available_bytes()
    budget = min(MAX_NIR_BYTES * 4, free // 2 if free else MAX_NIR_BYTES * 4)
    count = total = 0
    stack = [(root, "/", 0)]
    while stack:
        group, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _Refused(f"{path}: {where} is nested {depth} groups deep; a NIR graph is not")
        for name in group:
            here = f"{where.rstrip('/')}/{name}"
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                kind = "an external" if isinstance(link, h5py.ExternalLink) else "a soft"
                raise _Refused(f"{path}: {here} is {kind} link; hm2bp reads only objects the "
                                 f"file itself holds")
            count += 1
            if count > MAX_OBJECTS:
                raise _Refused(f"{path}: more than {MAX_OBJECTS} HDF5 objects; not a NIR graph")
            obj = group[name]
            if isinstance(obj, h5py.Group):
                stack.append((obj, here, depth + 1))
            elif isinstance(obj, h5py.Dataset):
                total += _check_dataset(h5py, path, here, obj)
                if total > budget:
                    raise _Refused(f"{path}: its datasets take more than "
                                     f"{safe_io.short(total)} bytes, more than this process may use")
            else:
                raise _Refused(f"{path}: {here} is a {type(obj).__name__}, not a group or dataset")


def read_graph(path: str | os.PathLike[str]) -> Any:
    """The nir.NIRGraph of a .nir file, after the checks of the module doc; every problem is a
    one-line ValueError naming the file."""
    import nir
    from nir.serialization import hdf2dict

    h5py = _h5py()
    path = Path(path)
    with safe_io.open_regular(path, MAX_NIR_BYTES, what="NIR file", error=ValueError) as fh:
        try:
            with h5py.File(fh, "r") as f:
                _check_tree(h5py, path, f)
                if "node" not in f or not isinstance(f["node"], h5py.Group):
                    raise KeyError("no 'node' group")
                tree = hdf2dict(f["node"])
            tree["type_check"] = True
            return nir.dict2NIRNode(tree)
        except _Refused:
            raise
        except (KeyError, ValueError, TypeError, AttributeError, IndexError, OSError, RuntimeError,
                UnicodeDecodeError, RecursionError, OverflowError) as exc:
            # h5py and nir raise all of these for damaged bytes; all mean the same to the user
            raise ValueError(f"{path}: not a NIR graph or damaged ({type(exc).__name__}: "
                             f"{safe_io.short(str(exc), 160)})") from None


def write_graph(path: str | os.PathLike[str], graph: Any) -> None:
    """Write a nir.NIRGraph to `path` atomically (the previous file stays until the new one is
    complete); a failed write is a safe_io.WriteError naming the file."""
    import nir

    buffer = io.BytesIO()
    nir.write(buffer, graph)  # HDF5 in memory: the disk sees one plain write
    data = buffer.getvalue()
    safe_io.atomic_write(path, lambda fh: fh.write(data), what="NIR file")
