"""An X/Y/Z plot request → every cell's request, checked before anything is queued.

What A1111's ``Script.run`` decides before its first cell: the axes and their values, fixed seeds (unless
``no_fixed_seeds``), the grid size guard, and the order cells run in (the costliest axis, e.g. Checkpoint name,
outermost). Errors A1111 reports only at its first cell (Prompt S/R without its search string, an unknown sampler
or checkpoint, an unknown hires upscaler) are raised here with A1111's class and message.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from sdapi.bounds import check_generation
from sdapi.checkpoints import CheckpointCatalog
from sdapi.seeds import resolve_seed
from sdapi.errors import InvalidRequest
from sdapi.options import Options
from sdapi.settings import Limits
from sdapi.scripts.xyz.args import AxisArgs, PlotArgs
from sdapi.scripts.xyz.axes import TXT2IMG, AxisType, axis_types, format_label
from sdapi.scripts.xyz.cell_draft import CellDraft
from sdapi.scripts.xyz.values import axis_values, count_values, join_values, split_values
from sdapi.engine.upscalers import UpscalerSpec, find_latent_mode, find_upscaler

SCRIPT_TITLE = "X/Y/Z plot"
RANDOM_SEED_AXES = ("Seed", "Var. seed")
# Far above any grid a person reads (A1111's megapixel guard allows ~760 cells at 512x512), and small enough that
# the cells' requests fit in memory; checked on the range syntax before any range is expanded.
MAX_PLOT_CELLS = 16384


@dataclass(frozen=True)
class PlotContext:
    """What checking a plot needs from the server.

    Args:
        mode: ``txt2img`` or ``img2img``.
        catalog: checkpoints (Checkpoint name axis).
        upscalers: the upscalers a hires fix may name (Hires upscaler axis).
        options: ``return_grid``, ``img_max_size_mp``.
        limits: the server's bounds (each cell is checked like a request).
    """

    mode: str
    catalog: CheckpointCatalog
    upscalers: list[UpscalerSpec]
    options: Options
    limits: Limits


@dataclass(frozen=True)
class Axis:
    """One resolved axis.

    Args:
        letter: ``X``, ``Y`` or ``Z``.
        type: its row of the axis table.
        values: what its cells get.
        text: its values as the grid infotext shows them (``X Values``).
    """

    letter: str
    type: AxisType
    values: list
    text: str

    @property
    def labels(self) -> list[str]:
        """The legend of each value."""
        return [format_label(self.type, value) for value in self.values]

    def infotext_fields(self, no_fixed_seeds: bool) -> dict[str, Any]:
        """``X Type``, ``X Values`` (and ``Fixed X Values`` for seeds) for the grid infotext; none for Nothing."""
        if self.type.label == "Nothing":
            return {}
        fields = {f"{self.letter} Type": self.type.label, f"{self.letter} Values": self.text}
        if self.type.label in RANDOM_SEED_AXES and not no_fixed_seeds:
            fields[f"Fixed {self.letter} Values"] = ", ".join(str(value) for value in self.values)
        return fields


@dataclass(frozen=True)
class Cell:
    """One cell: its place and the request it runs.

    Args:
        ix, iy, iz: its value on each axis.
        request: the plot's request with this cell's values applied.
        overrides: options set for this cell only.
    """

    ix: int
    iy: int
    iz: int
    request: Any
    overrides: dict[str, Any]


@dataclass(frozen=True)
class PlotPlan:
    """Everything a plot runs, in A1111's terms.

    Args:
        args: the script's arguments.
        x, y, z: the axes.
        cells: in grid order (x fastest, then y, then z).
        run_order: indexes into ``cells``, in the order they are generated.
    """

    args: PlotArgs
    x: Axis
    y: Axis
    z: Axis
    cells: list[Cell]
    run_order: list[int]

    @property
    def cells_per_grid(self) -> int:
        return len(self.x.values) * len(self.y.values)

    def axis_needing_inpainting(self) -> Axis | None:
        """The axis that only acts on inpainting checkpoints, if the plot has one."""
        return next((axis for axis in (self.x, self.y, self.z) if axis.type.needs_inpainting), None)

    def sub_grid_fields(self) -> dict[str, Any]:
        """The infotext fields a sub-grid's infotext adds after its first cell's own."""
        return {"Script": SCRIPT_TITLE, **self.x.infotext_fields(self.args.no_fixed_seeds),
                **self.y.infotext_fields(self.args.no_fixed_seeds)}

    def main_grid_fields(self) -> dict[str, Any]:
        """The infotext fields the main grid's infotext adds (the sub-grid's and the Z axis's)."""
        return {**self.sub_grid_fields(), **self.z.infotext_fields(self.args.no_fixed_seeds)}


def plan_plot(req, args: PlotArgs, ctx: PlotContext) -> PlotPlan:
    """Resolve the axes, fix the seeds and build every cell's request.

    Raises:
        InvalidRequest: an axis that does not exist, cannot be plotted, has no or unreadable values; more than
            :data:`MAX_PLOT_CELLS` cells; a cell whose values make an impossible request (e.g. 0 steps).
        RuntimeError: A1111's Prompt S/R, unknown sampler and unknown checkpoint errors.
        AssertionError: A1111's grid size guard and unknown hires upscaler.
    """
    check_cell_count(args, ctx.mode)
    base = fixed_seeds(req, args.no_fixed_seeds)
    if not ctx.options.get("return_grid"):
        base = base.model_copy(update={"batch_size": 1})
    axes = [resolve_axis(letter, axis_args, base, ctx, args.no_fixed_seeds)
            for letter, axis_args in (("X", args.x), ("Y", args.y), ("Z", args.z))]
    check_grid_size(axes, base, ctx.options)
    x, y, z = axes
    cells = [build_cell(base, axes, (ix, iy, iz), ctx)
             for iz in range(len(z.values)) for iy in range(len(y.values)) for ix in range(len(x.values))]
    return PlotPlan(args, x, y, z, cells, run_order(axes))


def check_cell_count(args: PlotArgs, mode: str) -> None:
    """Refuse an axis or a grid with more than :data:`MAX_PLOT_CELLS` cells, counted from the values text alone
    (``1-1000000000`` is never expanded).

    Raises:
        InvalidRequest: naming the axis, or every axis of the grid with its count.
    """
    counted = []
    for letter, requested in (("X", args.x), ("Y", args.y), ("Z", args.z)):
        axis = find_axis_type(letter, requested.type, mode)
        if axis.label == "Nothing" or axis.unsupported:
            continue  # one cell; an axis that cannot be plotted is refused by name when it is resolved
        items, _ = axis_items(axis, requested)
        count = count_values(axis.kind, items, MAX_PLOT_CELLS)
        if count > MAX_PLOT_CELLS:
            raise InvalidRequest(f"X/Y/Z plot {letter} axis '{axis.label}' has more than {MAX_PLOT_CELLS} values; "
                                 f"a plot has at most {MAX_PLOT_CELLS} cells")
        counted.append((letter, axis.label, count))
    cells = math.prod(count for _, _, count in counted)
    if cells > MAX_PLOT_CELLS:
        axes = ", ".join(f"{letter} axis '{label}': {count} values" for letter, label, count in counted)
        raise InvalidRequest(f"X/Y/Z plot would have {cells} cells ({axes}); at most {MAX_PLOT_CELLS}")


def fixed_seeds(req, no_fixed_seeds: bool):
    """A1111's ``fix_seed``: one random seed and subseed for the whole plot, unless ``no_fixed_seeds``."""
    if no_fixed_seeds:
        return req
    return req.model_copy(update={"seed": resolve_seed(req.seed), "subseed": resolve_seed(req.subseed)})


def find_axis_type(letter: str, requested: int | str, mode: str) -> AxisType:
    """The axis a client named by index or (sdapi extension) by label.

    Raises:
        InvalidRequest: naming the argument and the valid range or labels.
    """
    types = axis_types(mode)
    name = f"{letter.lower()}_type"
    if isinstance(requested, int):
        if not 0 <= requested < len(types):
            raise InvalidRequest(f"script_args {name}: {requested} is not an axis of the {mode} x/y/z plot "
                                 f"(0-{len(types) - 1}, see /sdapi/v1/script-info)")
        return types[requested]
    for axis in types:
        if axis.label.lower() == requested.strip().lower():
            return axis
    raise InvalidRequest(f"script_args {name}: no {mode} axis is called {requested!r}; axes: "
                         + ", ".join(axis.label for axis in types))


def resolve_axis(letter: str, requested: AxisArgs, req, ctx: PlotContext, no_fixed_seeds: bool) -> Axis:
    """One axis with its values read, converted and checked.

    Raises:
        InvalidRequest, RuntimeError, AssertionError: see :func:`plan_plot`.
    """
    axis = find_axis_type(letter, requested.type, ctx.mode)
    where = f"X/Y/Z plot {letter} axis '{axis.label}'"
    if axis.unsupported:
        raise InvalidRequest(f"{where} cannot be plotted: {axis.unsupported}")
    if axis.needs_hires and ctx.mode == TXT2IMG and not req.enable_hr:
        raise InvalidRequest(f"{where} only changes the hires fix second pass: send enable_hr: true")
    if axis.label == "Nothing":
        return Axis(letter, axis, [0], "")
    items, text = axis_items(axis, requested)
    try:
        values = axis_values(axis.kind, items)
    except ValueError as exc:
        raise InvalidRequest(f"{where}: {exc}") from None
    if not values:
        raise InvalidRequest(f"{where} has no values")
    if axis.confirm is not None:
        axis.confirm(values, ctx.catalog)
    if axis.label == "Hires upscaler":
        confirm_hires_upscalers(values, ctx.upscalers)
    if axis.label in RANDOM_SEED_AXES and not no_fixed_seeds:
        values = [resolve_seed(value) for value in values]
    return Axis(letter, axis, values, text)


def axis_items(axis: AxisType, requested: AxisArgs) -> tuple[list, str]:
    """The raw items of an axis and its ``X Values`` text.

    Axes with choices read the dropdown list, as A1111; when it is empty they read the text instead (A1111
    v1.2.1 would plot nothing, later versions read the text in "CSV mode"), so clients that send values as text
    (webuiapi) get their grid.
    """
    if axis.has_choices and requested.dropdown:
        return list(requested.dropdown), ",".join(str(item) for item in requested.dropdown)
    if isinstance(requested.values, list):
        joined = ",".join(str(v) for v in requested.values) if axis.has_choices else join_values(requested.values)
        return list(requested.values), joined
    return split_values(requested.values), requested.values


def confirm_hires_upscalers(values: list, upscalers: list[UpscalerSpec]) -> None:
    """Raises: AssertionError: A1111's ``could not find upscaler named X`` (a 500, as A1111)."""
    for value in values:
        if find_latent_mode(value) is None and find_upscaler(value, upscalers) is None:
            raise AssertionError(f"could not find upscaler named {value}")


def check_grid_size(axes: list[Axis], req, options: Options) -> None:
    """A1111's guard: all cells together must stay under ``img_max_size_mp`` megapixels.

    Raises:
        AssertionError: A1111's message.
    """
    cells = len(axes[0].values) * len(axes[1].values) * len(axes[2].values)
    grid_mp = round(cells * req.width * req.height / 1_000_000)
    limit = options.get("img_max_size_mp")
    assert grid_mp < limit, (f"Error: Resulting grid would be too large ({grid_mp} MPixels) "
                             f"(max configured size is {limit} MPixels)")


def build_cell(base, axes: list[Axis], place: tuple[int, int, int], ctx: PlotContext) -> Cell:
    """Apply X, then Y, then Z to a copy of the plot's request, and check the result like a request."""
    draft = CellDraft.from_request(base)
    for axis, i in zip(axes, place):
        axis.type.apply(draft, axis.values[i], axis.values, ctx.catalog)
    request = draft.request(base)
    check_generation(request, ctx.limits)
    return Cell(*place, request=request, overrides=draft.overrides)


def run_order(axes: list[Axis]) -> list[int]:
    """Cell indexes in A1111's generation order: the axis with the highest cost outermost, then the next.

    Without a strictly costliest axis, Z is outermost and Y next (A1111's default).
    """
    x, y, z = axes
    costs = {"x": x.type.cost, "y": y.type.cost, "z": z.type.cost}
    first, second = "z", "y"
    for name in "xyz":
        others = [costs[o] for o in "xyz" if o != name]
        if all(costs[name] > c for c in others):
            first = name
            a, b = [o for o in "xyz" if o != name]
            second = a if costs[a] > costs[b] else b
    third = next(name for name in "xyz" if name not in (first, second))
    sizes = {"x": len(x.values), "y": len(y.values), "z": len(z.values)}
    order = []
    for outer, middle, inner in itertools.product(*(range(sizes[n]) for n in (first, second, third))):
        place = dict(zip((first, second, third), (outer, middle, inner)))
        order.append(place["x"] + place["y"] * sizes["x"] + place["z"] * sizes["x"] * sizes["y"])
    return order
