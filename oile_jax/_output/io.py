"""HDF5 output: atomic writes, provenance attributes, clear errors for foreign files.

Layout: nested mappings become groups, arrays become datasets, and the root carries
`format = "oile_jax-result"`, `format_version`, the package, JAX and device versions, the
creation time and any attributes given (the run's resolved configuration as JSON).
"""

import datetime
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._app.datasets import describe

FORMAT = "oile_jax-result"
FORMAT_VERSION = 1


def provenance() -> dict[str, str]:
    """Versions of the package, JAX, jaxlib, Equinox and Python, and the device the computation
    ran on (JAX's default device)."""
    import platform

    import equinox
    import jax
    import jaxlib

    from .._version import __version__

    device = jax.config.jax_default_device or jax.devices()[0]
    return {
        "oile_jax_version": __version__,
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "equinox_version": equinox.__version__,
        "python_version": platform.python_version(),
        "device": f"{device.platform}:{device.device_kind}",
        "n_devices": len(jax.devices()),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _write_group(group, data: Mapping, kind: str, extra: Mapping, prefix: str = ""):
    for name, value in data.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"HDF5 names must be non-empty strings without '/', got {name!r}")
        path = f"{prefix}{name}"
        if isinstance(value, Mapping):
            _write_group(group.create_group(name), value, kind, extra, f"{path}/")
            continue
        array = np.asarray(value)
        if array.dtype.kind not in "biufcS":
            raise ValueError(
                f"data[{name!r}] has dtype {array.dtype}, which HDF5 output does not take"
            )
        if array.dtype.kind in "iu":  # one integer width for every count and index
            array = array.astype(np.int64)
        dataset = group.create_dataset(name, data=array)
        meta = _meta(path, array.ndim, kind, extra)
        if meta is not None:
            dataset.attrs.update(meta)


def _meta(path: str, ndim: int, kind: str, extra: Mapping) -> dict | None:
    """A dataset's `units`, `description` and `axes`: from `extra` (the caller's, by path or
    name: `(units, description, axes)`), else from the package's table (`_datasets`)."""
    name = path.rsplit("/", 1)[-1]
    given = extra.get(path, extra.get(name))
    if given is not None:
        units, description, axes = given
        return {"units": units, "description": description, "axes": ", ".join(axes)}
    return describe(path, ndim, kind)


def _attr(value):
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value)
    return value


def write_h5(
    path: str | os.PathLike,
    data: Mapping,
    *,
    attrs: Mapping | None = None,
    force: bool = False,
    describe: Mapping | None = None,
) -> Path:
    """Write nested `data` (mappings of arrays) to the HDF5 file `path`, atomically.

    The file is written beside its destination under a temporary name and renamed into place
    only when complete, so an error or interruption never leaves a partial file and never
    touches an existing one. An existing `path` is replaced only with `force=True`.
    Mapping, list and tuple attributes are stored as JSON strings. Every dataset gets the
    attributes `units`, `description` and `axes`: from `describe` (dataset path or name ->
    `(units, description, axes)`) or from the package's table of the datasets it writes
    (`_datasets`). Integers are stored as int64.
    """
    import h5py

    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass force=True (--force) to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            for name, value in {**provenance(), **(attrs or {})}.items():
                f.attrs[name] = _attr(value)
            _write_group(f, data, str((attrs or {}).get("kind", "")), describe or {})
        # mkstemp makes the file private; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read_group(group) -> dict:
    import h5py

    return {
        name: _read_group(item) if isinstance(item, h5py.Group) else item[()]
        for name, item in group.items()
    }


def read_h5(path: str | os.PathLike) -> tuple[dict, dict]:
    """Read a file written by `write_h5`: `(data, attrs)`, the nested arrays and root attributes.

    Raises `ValueError` for a file that is not HDF5, is corrupt, or was not written by oile_jax.
    """
    import h5py

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ValueError(
                    f"{path} is not an oile_jax result file (no format={FORMAT!r} attribute)"
                )
            version = int(f.attrs["format_version"])
            if version > FORMAT_VERSION:
                raise ValueError(
                    f"{path} has format_version {version}; "
                    f"this oile_jax reads up to {FORMAT_VERSION}"
                )
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            return _read_group(f), attrs
    except OSError as error:
        raise ValueError(f"{path} is corrupt or not an HDF5 file ({error})") from None
