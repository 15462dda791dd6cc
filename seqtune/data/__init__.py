"""Datasets: GLUE from its TSVs, anything else through `datasets.load_dataset`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import SeqtuneError
from .glue import hub_reachable, load_glue

if TYPE_CHECKING:
    import datasets

PACKAGED_BUILDERS = {"csv", "json", "parquet", "text", "arrow", "pandas", "webdataset"}


def load_dataset(path: str, name: str | None = None, *, data_dir: str | os.PathLike | None = None,
                 **kwargs: Any) -> datasets.DatasetDict | datasets.Dataset:
    """`load_dataset("glue", "mrpc")` reads local GLUE TSVs; other names go to `datasets.load_dataset`."""
    if path.lower() in ("glue", "nyu-mll/glue"):
        if name is None:
            raise SeqtuneError('load_dataset("glue", TASK) needs a task name, e.g. "mrpc"')
        return load_glue(name, data_dir=data_dir)
    import datasets

    is_local = path.lower() in PACKAGED_BUILDERS or Path(path).exists()
    if not is_local and not hub_reachable():
        raise SeqtuneError(
            f"dataset {path!r} is neither a local path nor a file format "
            f"({', '.join(sorted(PACKAGED_BUILDERS))}) and the Hugging Face hub is unreachable; "
            'load your files with load_dataset("csv", data_files=...)'
        )
    if data_dir is not None:
        kwargs["data_dir"] = str(data_dir)
    try:
        return datasets.load_dataset(path, name, **kwargs)
    except FileNotFoundError as err:
        raise SeqtuneError(f"load_dataset({path!r}): {err}") from None
