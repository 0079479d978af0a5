"""What a plugin declares (`ComponentSpec`, `Parameter`) and what a hook receives
(`Stage`, `ChunkContext`, `FilterDecision`).

A *component* is one named implementation of a pipeline stage, e.g. the generator
``fairship-file`` or the augmenter ``phi-rotation``.  Plugins declare their
components through the ``shipfastsim_declare_components`` hook; the config
validator checks YAML parameters against the declared `Parameter` list, so a hook
implementation always receives complete, typed parameters.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

__all__ = [
    "STAGE_KINDS",
    "REQUIRED",
    "Parameter",
    "ComponentSpec",
    "SampleNormalisation",
    "Stage",
    "ChunkContext",
    "FilterDecision",
    "ExportDescription",
]

StageKind = Literal["generator", "propagator", "augmenter", "filter"]
#: The four kinds of pipeline stage, in the order a pipeline usually uses them.
STAGE_KINDS: tuple[StageKind, ...] = ("generator", "propagator", "augmenter", "filter")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Default of a parameter that the YAML must give.
REQUIRED: Any = _Required()

ParameterType = Literal["int", "float", "str", "bool", "path", "paths", "choice", "floats"]


@dataclass(frozen=True)
class Parameter:
    """One parameter of a component.

    Attributes:
        name: key in the stage's ``params`` mapping.
        type: ``int``, ``float``, ``str``, ``bool``, ``choice`` (one of ``choices``),
            ``path`` (an existing file, relative to the config file), ``paths`` (a
            non-empty list of them) or ``floats`` (a list of numbers).
        default: value when the YAML omits it; `REQUIRED` if it must be given.
        doc: one line, with the unit.
        choices: allowed values for ``choice``.
        minimum: smallest allowed value for ``int``/``float``.
        content: for ``path``/``paths``, what the file must be (a key of
            `shipfastsim.file_checks.FILE_CHECKS`: ``fairship-ntuple``, ``geometry``,
            ``safetensors``); ``shipfastsim check`` opens it to make sure.
    """

    name: str
    type: ParameterType
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    content: str | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class SampleNormalisation:
    """How many muons per proton on target (POT) a generator's sample stands for.

    Attributes:
        muons_per_pot: expected number of muons per POT of the population the
            generator samples (its weights averaging 1); None when truly unknown, in
            which case the run warns and writes weights per generated muon.
        source: where the number comes from (paper, production, file), or why it is
            unknown; written to the run summary and the output file.
    """

    muons_per_pot: float | None
    source: str


@dataclass(frozen=True)
class ComponentSpec:
    """A named component of one stage kind, with its parameters.

    Attributes:
        name: the name used in YAML (``generator: fairship-file``).
        kind: one of `STAGE_KINDS`.
        description: one line shown by ``shipfastsim plugins``.
        parameters: declared parameters, with defaults.
        check: optional extra validation, called with the complete parameters and the
            config's ``run`` section (propagators: ``plane`` included); it returns an
            error message, a ``(parameter name, message)`` pair, or None (e.g. more
            events asked for than a file holds).
        normalisation: generators only: called with the complete parameters, it
            returns the `SampleNormalisation` of the sample they draw; None means
            unknown (the run then says so and writes weights per generated muon).
    """

    name: str
    kind: StageKind
    description: str
    parameters: tuple[Parameter, ...] = ()
    check: Callable[[dict[str, Any], dict[str, Any]], str | tuple[str, str] | None] | None = None
    normalisation: Callable[[dict[str, Any]], SampleNormalisation] | None = None

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters if not p.required}


def _cpu() -> torch.device:
    import torch  # imported here so that declaring components does not import torch

    return torch.device("cpu")


@dataclass
class Stage:
    """A configured component: what a stage hook receives.

    Attributes:
        kind: the stage kind.
        component: the component name; a hook implementation returns None for
            components that are not its own.
        params: validated parameters with defaults filled in and paths absolute.
        device: torch device the run uses.
        index: position of the stage in the pipeline.
        cache: per-process scratch space for the implementing plugin (loaded models,
            open files); never pickled, so stages can be shipped to dask workers.
    """

    kind: StageKind
    component: str
    params: dict[str, Any]
    device: torch.device = field(default_factory=_cpu)
    index: int = 0
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """Return ``cache[key]``, building it once per process."""
        if key not in self.cache or self.cache.get("_pid") != os.getpid():
            if self.cache.get("_pid") != os.getpid():
                self.cache.clear()
                self.cache["_pid"] = os.getpid()
            self.cache[key] = build()
        return self.cache[key]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["cache"] = {}
        return state


@dataclass
class ChunkContext:
    """Where a hook call sits in the run, and its random stream.

    Attributes:
        chunk_index: index k of the chunk.
        first_muon: global index of the chunk's first generated muon.
        generator: torch random generator seeded from (run seed, k, stage index);
            the only source of randomness a stage may use, for reproducibility.
        device: device of the run.
        counters: named counts a stage wants in the run summary (e.g. rows skipped).
    """

    chunk_index: int
    first_muon: int
    generator: torch.Generator
    device: torch.device
    counters: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class ExportDescription:
    """How to export a neural component's inference graph (ONNX, then SOFIE C++).

    Attributes:
        module: deterministic torch module mapping the inputs to the outputs, with
            every pre/post-processing step inside it (no sampling in the graph).
        input_names, output_names: graph tensor names.
        example_inputs: one example tensor per input, batch dimension first.
        units: name -> unit or meaning of each input and output column.
        version: model version string (written to the JSON sidecar).
        weights_path: the file the weights came from (hashed into the sidecar).
        floors: output name -> one floor per column, below which engines are compared
            absolutely: two float32 engines agree when ``|a - b| <= 1e-5 * max(|b|,
            floor)`` element by element.  A floor is a number [the column's unit] or a
            tuple of column indices whose Euclidean norm in the same row is the floor
            (the components of a vector, e.g. x and y of the position: a rotated
            component is near 0 only by cancellation of terms of the vector's size).  A
            column that is a product or an exponential needs none (0: pure relative);
            one that can be near 0 only through cancellation of larger terms (an affine
            de-standardisation y = s u + m) needs the size of those terms.  Each floor is
            justified where it is declared.
    """

    module: torch.nn.Module
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    example_inputs: tuple[torch.Tensor, ...]
    units: dict[str, str] = field(default_factory=dict)
    version: str = "0"
    weights_path: str | None = None
    floors: dict[str, tuple[float | tuple[int, ...], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class FilterDecision:
    """What a filter returns.

    Attributes:
        keep: boolean tensor, True for muons to keep.
        weight: new weight of every muon, such that every weighted total stays
            unbiased (e.g. divided by the keep probability, Russian roulette); None for a
            plain selection, which keeps the weights as they are (the contract tests
            both: exact weights, or totals unbiased over seeds).
    """

    keep: torch.Tensor
    weight: torch.Tensor | None = None
