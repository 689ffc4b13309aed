"""The sha256 of a file, the one checksum the harness pins files by.

Why one helper: checkpoints, backbone weights and downloaded archives are all identified by the
sha256 of their bytes (lock file, registry, sidecars), and every one of them may be hundreds of MB,
so the digest is always computed by streaming, never by reading the whole file.  Standard library
only: the workflow imports it while it parses.
"""

from __future__ import annotations

import hashlib
import os

#: Bytes read per block while hashing.
BLOCK_SIZE = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK_SIZE):
            digest.update(block)
    return digest.hexdigest()
