"""Find TSB insertion sites by one dry forward pass (eval mode, no grad, state untouched).

A site is "apply the block to the output of module M". Rules (docs/design.md, "Insertion points"):

- ``conv``: for every ``nn.Conv2d`` called once, the ``BatchNorm2d`` that consumes its output directly
  (same tensor), else the conv itself. So the block sits after BN, before the activation. The classifier
  (the last conv/linear layer run, e.g. SqueezeNet's logits conv) never gets a site.
- ``stage``: forward-completion order split into runs of equal spatial size (4-D outputs, H*W > 1, modules
  called once). A stage ends with the last module of a run; if the next run starts with a parameter-free
  module fed by that output (a pooling layer closing the stage), the site is after that module instead.
  The site is the outermost module producing that tensor (ResNet: ``layer1``; VGG-8: ``pool1``). A
  trailing adaptive pool that keeps the shape (torchvision heads at 224 px) does not end a stage.
- ``all``: ``conv`` plus every hidden ``nn.Linear`` (all but the classifier), after the ``BatchNorm1d``
  that consumes it if any.
- ``classifier``: one site on the classifier's input: after the module producing the tensor that the head's
  first layer consumes (the first ``nn.Linear`` run, e.g. VGG-8's ``fc1``; without any Linear, the classifier
  itself), found by tensor identity, else by storage (a functional ``torch.flatten`` view of a pool's output).
- rules joined by ``+`` (``conv+classifier``): the union of their sites.
- a list of module names: after each named module.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from tsb_aihw.errors import ConfigError


@dataclass
class Call:
    """One module call of the dry run, in completion order."""

    name: str
    module: nn.Module
    inputs: tuple[Any, ...]
    output: Any


@dataclass
class Trace:
    calls: list[Call] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def once(self) -> list[Call]:
        return [c for c in self.calls if self.counts[c.name] == 1]


@dataclass(frozen=True)
class Site:
    target: str
    width: int
    kind: str


def default_input_shape(model: nn.Module) -> tuple[int, ...]:
    """(C, H, W) for the dry run: first conv's in-channels and ``model.input_size`` (else 224, ImageNet)."""
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise ConfigError("the model has no Conv2d, so the input shape cannot be guessed; pass input_shape=(...)")
    side = int(getattr(model, "input_size", 224))
    return (first.in_channels, side, side)


@torch.no_grad()
def trace(model: nn.Module, input_shape: Sequence[int]) -> Trace:
    """Run one eval-mode forward on zeros-plus-noise of ``(1, *input_shape)``, recording every module call."""
    result = Trace()
    modes = {m: m.training for m in model.modules()}
    handles = []

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            result.calls.append(Call(name, module, inputs, output))
            result.counts[name] = result.counts.get(name, 0) + 1

        return hook

    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_hook(make_hook(name)))
    try:
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        x = torch.randn((1, *input_shape), generator=torch.Generator().manual_seed(0)).to(device)
        try:
            model(x)
        except Exception as exc:  # noqa: BLE001 - any failure means the shape guess is wrong
            raise ConfigError(
                f"dry-run forward with input shape {tuple(input_shape)} failed ({type(exc).__name__}: {exc}); "
                "pass input_shape=(C, H, W) matching the model"
            ) from exc
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.train(mode)
    return result


def _width(output: Any) -> int | None:
    if isinstance(output, Tensor) and output.dim() in (2, 4):
        return int(output.shape[1])
    return None


def _consumer(trace_: Trace, tensor: Tensor, kind: type) -> Call | None:
    for c in trace_.once():
        if isinstance(c.module, kind) and c.inputs and c.inputs[0] is tensor:
            return c
    return None


def _outermost(trace_: Trace, tensor: Tensor) -> Call:
    return [c for c in trace_.once() if c.output is tensor][-1]


def classifier_name(trace_: Trace) -> str | None:
    """The last conv/linear layer run: the classifier, which never gets a site (its output is the logits)."""
    layers = [c.name for c in trace_.calls if isinstance(c.module, (nn.Conv2d, nn.Linear))]
    return layers[-1] if layers else None


def _layer_sites(trace_: Trace, layer: type, norm: type, kind: str) -> list[Site]:
    """A site after every ``layer`` run except the classifier: after its ``norm`` when one consumes its output."""
    head = classifier_name(trace_)
    sites = []
    for c in trace_.once():
        if not isinstance(c.module, layer) or c.name == head:
            continue
        bn = _consumer(trace_, c.output, norm)
        target = bn if bn is not None else c
        sites.append(Site(target.name, int(target.output.shape[1]), kind))
    return sites


def conv_sites(trace_: Trace) -> list[Site]:
    return _layer_sites(trace_, nn.Conv2d, nn.BatchNorm2d, "conv")


def fc_sites(trace_: Trace) -> list[Site]:
    return _layer_sites(trace_, nn.Linear, nn.BatchNorm1d, "fc")


def _is_noop_pool(call: Call) -> bool:
    pools = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
    return isinstance(call.module, pools) and bool(call.inputs) and call.inputs[0].shape == call.output.shape


def stage_sites(trace_: Trace) -> list[Site]:
    calls = [
        c for c in trace_.once()
        if isinstance(c.output, Tensor) and c.output.dim() == 4 and c.output.shape[-2] * c.output.shape[-1] > 1
    ]
    runs: list[list[Call]] = []
    for c in calls:
        if runs and runs[-1][-1].output.shape[-2:] == c.output.shape[-2:]:
            runs[-1].append(c)
        else:
            runs.append([c])
    if runs:  # ImageNet heads at their native size: a trailing shape-preserving adaptive pool ends nothing
        while len(runs[-1]) > 1 and _is_noop_pool(runs[-1][-1]):
            runs[-1].pop()
    ends: list[Tensor] = []
    for i, run in enumerate(runs):
        end = run[-1].output
        if i + 1 < len(runs):
            nxt = runs[i + 1][0]
            if next(nxt.module.parameters(), None) is None and nxt.inputs and nxt.inputs[0] is end:
                end = nxt.output
        ends.append(end)
    sites, seen = [], set()
    for t in ends:
        c = _outermost(trace_, t)
        if c.name not in seen:
            seen.add(c.name)
            sites.append(Site(c.name, int(t.shape[1]), "stage"))
    return sites


def named_sites(trace_: Trace, model: nn.Module, names: Sequence[str]) -> list[Site]:
    modules = dict(model.named_modules())
    sites = []
    for name in names:
        if name not in modules or not name:
            close = [n for n in modules if n and (name in n or n in name)][:8]
            raise ConfigError(f"insertion site {name!r} is not a module of the model; close names: {close}")
        count = trace_.counts.get(name, 0)
        if count != 1:
            raise ConfigError(
                f"insertion site {name!r} runs {count} times in one forward pass; a site must run exactly once "
                "(pick the module's unique caller, or give a shared module one instance per use)"
            )
        call = next(c for c in trace_.calls if c.name == name)
        width = _width(call.output)
        if width is None:
            raise ConfigError(
                f"insertion site {name!r} outputs {type(call.output).__name__} "
                f"{tuple(getattr(call.output, 'shape', ()))}; a site needs an (N, C, H, W) or (N, F) tensor"
            )
        sites.append(Site(name, width, "explicit"))
    return sites


def classifier_input_sites(trace_: Trace) -> list[Site]:
    """The site on the classifier's input (the head's first layer: the first Linear run, else the classifier)."""
    once = trace_.once()
    head = next((c for c in once if isinstance(c.module, nn.Linear)), None)
    if head is None:
        name = classifier_name(trace_)
        head = next((c for c in once if c.name == name), None)
    if head is None or not head.inputs or not isinstance(head.inputs[0], Tensor):
        raise ConfigError("where='classifier': the model has no classifier layer run once (nn.Linear or a last "
                          "conv) whose input could get a site; pass the module names of the sites instead")
    x = head.inputs[0]
    made = [c for c in once if c.output is x] or [
        c for c in once if c is not head and isinstance(c.output, Tensor) and c.output.numel() == x.numel()
        and c.output.data_ptr() == x.data_ptr()]  # a functional flatten: a view of the module output
    made = [c for c in made if _width(c.output) is not None]
    if not made:
        raise ConfigError(f"where='classifier': no module produces the input of the classifier's first layer "
                          f"{head.name!r} (a functional op in between?); make it a module, e.g. nn.Flatten, or "
                          "name the sites explicitly")
    site = made[-1]  # the outermost module returning it
    return [Site(site.name, int(site.output.shape[1]), "classifier")]


#: what ``where`` may name (joined by "+"); a list of module names is the other form
SITE_RULES = ("conv", "stage", "all", "classifier")


def parse_where(where: str) -> list[str]:
    """The rules of a ``where`` string (``"conv+classifier"`` -> ["conv", "classifier"]); one line if unknown."""
    rules = where.split("+")
    if not all(r in SITE_RULES for r in rules) or len(set(rules)) != len(rules):
        raise ConfigError(f"where={where!r} is unknown; use one of {', '.join(SITE_RULES)}, several joined by '+' "
                          "(e.g. 'conv+classifier'), or a list of module names")
    return rules


def repeated_layers(trace_: Trace) -> list[str]:
    """Conv/linear modules called more than once (weight sharing in the backbone): never sites."""
    seen = []
    for c in trace_.calls:
        if isinstance(c.module, (nn.Conv2d, nn.Linear)) and trace_.counts[c.name] > 1 and c.name not in seen:
            seen.append(c.name)
    return seen


def find_sites(
    model: nn.Module, where: str | Sequence[str], input_shape: Sequence[int] | None = None
) -> tuple[list[Site], Trace]:
    """Sites for ``where`` in forward order, de-duplicated (first kind wins), and the dry-run trace."""
    rules = parse_where(where) if isinstance(where, str) else []
    trace_ = trace(model, input_shape or default_input_shape(model))
    if isinstance(where, str):
        by_rule = {"conv": conv_sites, "stage": stage_sites, "all": lambda t: conv_sites(t) + fc_sites(t),
                   "classifier": classifier_input_sites}
        sites = [s for rule in rules for s in by_rule[rule](trace_)]
    else:
        sites = named_sites(trace_, model, list(where))
    order = {c.name: i for i, c in enumerate(trace_.calls)}
    unique: dict[str, Site] = {}
    for s in sites:
        unique.setdefault(s.target, s)
    return sorted(unique.values(), key=lambda s: order[s.target]), trace_
