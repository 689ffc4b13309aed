"""The one registry of SR backbones: every consumer (model factory, experiment catalog, released
checkpoint registry, inference, report labels) reads the backbones from here.

Why: a backbone used to be listed in six places (factory, catalog, checkpoint registry, inference,
table labels, schemas), so adding one meant editing all of them.  Now each backbone module
registers itself at import (``register(Backbone(...))`` at its bottom) and the registry imports
every module of ``pcl.models`` once; adding a backbone touches its own module and the catalog,
nothing else.  ``Backbone.label`` is the paper's spelling (``EDSR-L``), also used by the tables.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

from pcl.errors import PCLError


@dataclass(frozen=True)
class Backbone:
    """One SR backbone: its name, class, paper configuration (x4) and paper label."""

    name: str
    cls: type
    defaults: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def display(self) -> str:
        return self.label or self.name.upper()


_BACKBONES: dict[str, Backbone] = {}
_DISCOVERED = False


def register(backbone: Backbone) -> Backbone:
    """Add a backbone (a module calls this at import); a second one of the same name is an error."""
    if backbone.name in _BACKBONES and _BACKBONES[backbone.name].cls is not backbone.cls:
        raise PCLError(f"backbone {backbone.name!r} is registered twice ({_BACKBONES[backbone.name].cls.__name__}, "
                       f"{backbone.cls.__name__})")
    _BACKBONES[backbone.name] = backbone
    return backbone


def _discover() -> None:
    """Import, once, every module of ``pcl/models`` that registers a backbone (its source calls
    ``register(Backbone(``), so that adding a backbone needs no list to edit.  Only those modules:
    the others (checkpoint helpers) import the factory and must not be imported half-way."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    folder = Path(__file__).resolve().parent
    for info in pkgutil.iter_modules([str(folder)]):
        source = folder / f"{info.name}.py"
        if source.is_file() and "register(Backbone(" in source.read_text(encoding="utf-8"):
            importlib.import_module(f"pcl.models.{info.name}")


def backbones() -> dict[str, Backbone]:
    """Every registered backbone by name, in registration order (the paper's Table II order)."""
    _discover()
    return dict(_BACKBONES)


def backbone_names() -> tuple[str, ...]:
    return tuple(backbones())


def get_backbone(name: str) -> Backbone:
    found = backbones().get(name)
    if found is None:
        raise PCLError(f"unknown backbone {name!r}; registered: {', '.join(backbone_names())}")
    return found
