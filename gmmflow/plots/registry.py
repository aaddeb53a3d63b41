"""The plots a result can show: one registry that the report and the README gallery read.

Each plot function registers itself where it is defined (``@register``),
with the groups a result must hold for it, the caption the report puts
under it, and its place in the report. Importing ``gmmflow.plots`` imports
every plot module, so the registry is complete whenever it is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gmmflow import schema as S


@dataclass(frozen=True)
class PlotSpec:
    """One registered plot: ``draw(idata, table)`` returns its axes."""

    name: str
    function: Callable[..., Any]
    needs: tuple[str, ...]  # groups the result must hold
    caption: str  # what to look for, shown under the plot in the report
    order: int  # place in the report
    kwargs: dict = field(default_factory=dict)
    reads_table: bool = False  # draws the model-selection table instead of the result
    when: Callable[[Any], bool] | None = None  # shown only for results where it is true (None: always)

    def draw(self, idata, table=None):
        return self.function(table if self.reads_table else idata, **self.kwargs)


_REGISTRY: dict[str, PlotSpec] = {}


def register(name: str, *, order: int, caption: str, needs: tuple[str, ...] = (), kwargs: dict | None = None,
             reads_table: bool = False, when: Callable[[Any], bool] | None = None):
    """Decorator adding a plot function to the registry under ``name`` (returns it unchanged);
    ``when(idata)``, if given, says whether a result that has the groups needs the plot."""
    def add(function):
        _REGISTRY[name] = PlotSpec(name, function, tuple(needs), caption, order, dict(kwargs or {}), reads_table,
                                   when)
        return function
    return add


def registered() -> tuple[PlotSpec, ...]:
    """Every registered plot, in report order."""
    return tuple(sorted(_REGISTRY.values(), key=lambda p: p.order))


def plots_for(idata, selection=None) -> list[PlotSpec]:
    """The registered plots a result (and its selection table, if any) supports, in report order."""
    return [p for p in registered()
            if S.has_groups(idata, *p.needs) and (selection is not None or not p.reads_table)
            and (p.when is None or p.when(idata))]
