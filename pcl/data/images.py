"""Reading, listing and writing images with errors that name the file.

Why this module: every metric in the harness is computed on uint8 arrays read from PNG files,
so the rules for turning a file into an array (which modes are accepted, what happens to alpha,
palettes and 16-bit data) must be one documented function, and a corrupt file must stop the run
with its name instead of a PIL traceback deep inside an evaluation loop.

Mode rules of :func:`read_image` (what the benchmark sets actually contain is ``RGB`` and ``L``):

* ``L`` -> ``(H, W)`` uint8; ``RGB`` -> ``(H, W, 3)`` uint8 (returned as stored).
* ``1`` (bilevel) -> ``L`` (0/255).  ``P`` (palette) -> ``RGB``, or ``RGBA`` when the palette has
  transparency, then the alpha rule.  ``YCbCr`` (some JPEGs) -> ``RGB``.
* ``LA`` / ``RGBA`` / ``PA``: the alpha channel is dropped only when it is fully opaque (255
  everywhere); otherwise the file is refused, because compositing onto some background would
  invent pixel values that no SR paper used.
* 16-bit and float (``I;16*``, ``I``, ``F``), ``CMYK`` and anything else: refused; convert the
  file to 8-bit RGB or grey first.  Silent rescaling would change PSNR.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pcl.atomic import atomic_write
from pcl.errors import PCLError
from pcl.resources import REPO_ROOT

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".ppm", ".pgm", ".webp"}
)

# PIL raises a zoo of exception types for bad files; all of them mean "this file is not a usable
# image".  DecompressionBombError is a plain Exception subclass, so it is listed explicitly.
_PIL_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class ImageReadError(PCLError):
    """A file that cannot be decoded as an image; ``path`` and a short ``reason`` for reports."""

    def __init__(self, path: Path, reason: str, hint: str = "") -> None:
        self.path = Path(path)
        self.reason = reason
        message = f"cannot read image {path} ({reason})"
        super().__init__(message + (f"; {hint}" if hint else ""))


def shipped_resource(path: Path) -> str | None:
    """Repository-relative path of a file shipped in ``resources/`` (restorable with git), else None."""
    try:
        rel = Path(path).resolve().relative_to(REPO_ROOT)
    except ValueError:
        return None
    return rel.as_posix() if rel.parts[:1] == ("resources",) else None


def _read_hint(path: Path) -> str:
    """What to do about an unreadable file: git for files shipped in resources/, else re-download."""
    shipped = shipped_resource(path)
    if shipped is not None:
        return f"the file is corrupt or not an image: restore it with `git checkout -- {shipped}`"
    return "the file is corrupt or not an image: re-download the dataset or replace the file"


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def is_image_file(path: Path) -> bool:
    """True for a regular, non-hidden file with an image suffix.

    Hidden files (``._baby.png`` AppleDouble metadata from macOS archives, ``.DS_Store``) are not
    images even when their suffix says so; other suffixes (``.txt``, ``Thumbs.db``) are ignored.
    """
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by file name.

    A file with an image suffix that is not a valid image is *listed* (and fails at
    :func:`read_image`), so a damaged benchmark cannot silently shrink.
    """
    folder = Path(folder)
    if not folder.exists():
        raise PCLError(f"image folder {folder} does not exist; fetch the dataset or fix the path")
    if not folder.is_dir():
        raise PCLError(f"{folder} is not a folder; pass the folder that holds the images")
    images = sorted((p for p in folder.iterdir() if is_image_file(p)), key=lambda p: p.name)
    if not images:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise PCLError(f"no images ({suffixes}) in folder {folder}; fetch the dataset or fix the path")
    return images


def _drop_opaque_alpha(im: Image.Image, path: Path) -> Image.Image:
    """Drop an alpha channel that is 255 everywhere; refuse real transparency."""
    alpha = np.asarray(im.getchannel("A"))
    if alpha.min() != 255:
        raise PCLError(
            f"image {path} has a transparent alpha channel (mode {im.mode}); "
            "save it as RGB or greyscale without transparency"
        )
    return im.convert("L" if im.mode == "LA" else "RGB")


def _to_supported_mode(im: Image.Image, path: Path) -> Image.Image:
    """Apply the mode rules of the module docstring."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode == "YCbCr":
        return im.convert("RGB")
    if mode == "P":
        has_alpha = "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        return _drop_opaque_alpha(im.convert("RGBA"), path) if has_alpha else im.convert("RGB")
    if mode in ("LA", "RGBA", "PA"):
        return _drop_opaque_alpha(im if mode != "PA" else im.convert("RGBA"), path)
    if mode.startswith("I") or mode == "F":
        raise PCLError(
            f"image {path} has 16-bit or float pixels (mode {mode}); only 8-bit images are supported, "
            "convert it to 8-bit RGB or greyscale"
        )
    raise PCLError(f"image {path} has unsupported mode {mode}; convert it to 8-bit RGB or greyscale")


def read_image(path: Path) -> np.ndarray:
    """Read an image as uint8: ``(H, W)`` for grey, ``(H, W, 3)`` for colour.

    Raises :class:`PCLError` naming the file for a missing, corrupt, truncated or unsupported
    image.  ``load()`` forces the full decode, which is where truncation shows up.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            # np.array (not asarray): PIL's buffer is read-only, callers may modify the result.
            array = np.array(_to_supported_mode(im, path), dtype=np.uint8)
    except FileNotFoundError:
        raise PCLError(f"image {path} does not exist; fetch the dataset or fix the path") from None
    except IsADirectoryError:
        raise PCLError(f"{path} is a folder, not an image") from None
    except _PIL_ERRORS as exc:
        raise ImageReadError(path, _reason(exc), _read_hint(path)) from None
    return np.ascontiguousarray(array)


def write_png(path: Path, array: np.ndarray) -> None:
    """Write a uint8 ``(H, W)`` or ``(H, W, 3)`` array as PNG, atomically.

    Why atomic: an interrupted run must never leave a half-written PNG that a later run would
    read as a valid (but truncated) image; the file is written beside the target and renamed.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise PCLError(f"cannot write {path}: array dtype is {array.dtype}, expected uint8 (round and clip first)")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise PCLError(f"cannot write {path}: array shape {array.shape} is neither (H, W) nor (H, W, 3)")
    image = Image.fromarray(np.ascontiguousarray(array))
    atomic_write(path, lambda handle: image.save(handle, format="PNG"))


def pixel_sha256(path_or_array: Path | str | np.ndarray) -> str:
    """SHA-256 of the decoded pixel bytes, exactly as in ``benchmark_manifest.csv``.

    Definition: ``hashlib.sha256(np.asarray(Image.open(f)).tobytes()).hexdigest()``, i.e. the
    mode as stored in the file (no conversion), row-major, channels last.  For an array the same
    bytes are hashed; it must be uint8 so that a float copy cannot match by accident.
    """
    if isinstance(path_or_array, np.ndarray):
        if path_or_array.dtype != np.uint8:
            raise PCLError(f"pixel_sha256 needs a uint8 array, got {path_or_array.dtype}")
        return hashlib.sha256(np.ascontiguousarray(path_or_array).tobytes()).hexdigest()
    path = Path(path_or_array)
    try:
        with Image.open(path) as im:
            data = np.asarray(im).tobytes()
    except FileNotFoundError:
        raise PCLError(f"image {path} does not exist") from None
    except _PIL_ERRORS as exc:
        raise ImageReadError(path, _reason(exc), _read_hint(path)) from None
    return hashlib.sha256(data).hexdigest()


def image_info(path: Path) -> tuple[str, int, int]:
    """``(mode, height, width)`` of an image file without decoding its pixels."""
    try:
        with Image.open(path) as im:
            return im.mode, im.height, im.width
    except _PIL_ERRORS as exc:
        raise ImageReadError(path, _reason(exc), _read_hint(path)) from None
