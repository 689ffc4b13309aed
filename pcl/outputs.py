"""Guards for the paths that per-image commands write to, checked before any work starts.

Why: ``pcl score`` and ``pcl evaluate`` write a CSV of rows plus a ``<stem>.json`` sidecar beside
it, and ``--save-sr`` writes PNGs named after the benchmark images.  A mistyped ``--out`` used to
destroy data: ``--out scores.json`` made the sidecar overwrite the rows, ``--out sr/baby.png``
replaced an input image with CSV text, and ``--save-sr`` pointing at the HR folder would replace
the ground truth with SR output.  Every such path is refused here with one line naming the value,
and nothing is written.  Paths are compared after ``resolve()``, so ``..`` and symbolic links
cannot slip past.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from pcl.data.images import IMAGE_SUFFIXES
from pcl.errors import PCLError

#: Suffixes refused for a CSV of rows: every image format the harness reads, plus other common
#: image formats, so that an image can never be overwritten with text.
IMAGE_LIKE_SUFFIXES: frozenset[str] = IMAGE_SUFFIXES | {".gif", ".exr", ".hdr", ".pbm", ".pnm", ".dib", ".jp2", ".heic"}

SIDECAR_SUFFIX = ".json"
"""Suffix of the settings sidecar written beside every CSV of rows (``<stem>.json``)."""


def sidecar_of(csv_path: Path) -> Path:
    """The JSON sidecar path that belongs to a CSV of rows (same folder and stem)."""
    return Path(csv_path).with_suffix(SIDECAR_SUFFIX)


def _inside(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies anywhere below it (both already resolved)."""
    return path == folder or folder in path.parents


def _check_parent(path: Path, flag: str, shown: Path) -> None:
    """Refuse a path whose nearest existing ancestor is a file (the folder cannot be made)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PCLError(f"{flag} {shown}: {parent} is a file, not a folder; choose a path in a folder")
            return


def _check_against_inputs(path: Path, flag: str, shown: Path, inputs: Mapping[str, Path | None]) -> None:
    resolved = path.resolve()
    for name, folder in inputs.items():
        if folder is None:
            continue
        root = Path(folder).resolve()
        if _inside(resolved, root):
            raise PCLError(
                f"{flag} {shown} lies inside the input folder {name} {folder}; "
                "write outputs outside every input folder so that no input can be overwritten"
            )


def check_rows_out(
    out: Path,
    *,
    inputs: Mapping[str, Path | None],
    protect: Iterable[Path] = (),
    flag: str = "--out",
) -> Path:
    """Refuse an unsafe path for a CSV of rows (and its ``.json`` sidecar); return it unchanged.

    Refused: a ``.json`` suffix (the CSV and its sidecar would be one file), an image suffix, an
    existing folder, a path inside any of ``inputs`` (flag name -> folder, e.g. ``--hr-dir``) and a
    path equal to any file in ``protect`` (a checkpoint and its own sidecar).
    """
    out = Path(out)
    if not str(out) or out.name in ("", ".", ".."):
        raise PCLError(f"{flag} {str(out)!r}: name a CSV file, e.g. {flag} results/Set5.csv")
    suffix = out.suffix.lower()
    if suffix == SIDECAR_SUFFIX:
        raise PCLError(
            f"{flag} {out}: a .json name is where the settings sidecar of the rows goes, so the CSV and its "
            f"sidecar would be one file; name a .csv file, e.g. {flag} {out.with_suffix('.csv')}"
        )
    if suffix in IMAGE_LIKE_SUFFIXES:
        raise PCLError(
            f"{flag} {out}: an image file name ({suffix}), but the rows are CSV text; name a .csv file "
            f"outside the image folders, e.g. {flag} {out.with_suffix('.csv').name}"
        )
    protected = {Path(p).resolve() for p in protect}
    for path, what in ((out, "the CSV"), (sidecar_of(out), "its sidecar")):
        _check_against_inputs(path, flag, out, inputs)
        if path.is_dir():
            todo = f"name a file, e.g. {flag} {out / 'rows.csv'}" if path == out else f"remove it or choose another {flag} name"
            raise PCLError(f"{flag} {out}: {what} path {path} is an existing folder; {todo}")
        _check_parent(path, flag, out)
        if path.resolve() in protected:
            raise PCLError(f"{flag} {out}: {what} would overwrite the input file {path}; choose another {flag} name")
    return out


def check_image_out_dir(folder: Path, *, inputs: Mapping[str, Path | None], flag: str = "--save-sr") -> Path:
    """Refuse an output folder of images that is a file, or is or lies inside an input folder.

    Why: the SR images are named after the HR stems, so writing them into the HR (or LR) folder
    would replace the ground truth with the output being scored.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise PCLError(f"{flag} {folder} is a file, not a folder; name a folder for the SR images")
    _check_parent(folder, flag, folder)
    _check_against_inputs(folder, flag, folder, inputs)
    return folder
