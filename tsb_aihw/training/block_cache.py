"""Per-chip block training from cached activations: the frozen prefix of the backbone runs once, not per step.

Why: block training on a frozen backbone recomputes, at every step, the same activations up to the first
insertion site (and loads/augments the same images). On an un-augmented calibration set these never change,
so ``build_block_cache`` runs the backbone once up to the first site's target module (the output *before*
the block) and stores that tensor per image; ``train_block(..., cache=cache)`` then replays the rest of the
network from it. Calibration images and epochs are parameters because they are the main cost
(docs/performance.md, "Block training").

Replay: every module whose call completes before the first site's target (the target included, its
ancestors excluded) is stubbed for the duration of one training forward: the target returns the cached
batch (so the site's hook applies the block to it), the modules before it return their input and are
skipped. The model input is a free placeholder of the image shape (an expanded zero). A module called both
before and after the target cannot be stubbed (``ConfigError``), and ``build_block_cache`` checks that the
replayed logits equal the full forward on the first calibration batch before it returns.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from tsb_aihw.errors import ConfigError
from tsb_aihw.utils.device import resolve_device


class _Stop(Exception):
    """Raised by the capture hook: nothing after the first site is needed while caching."""


@dataclass
class BlockCache:
    """Activations before the block at the first site, per calibration image, plus what replay needs."""

    site: str  # the module whose output (before the block) is cached
    stubbed: list[str]  # modules skipped on replay (called before ``site``), ``site`` included
    activations: Tensor  # [N, ...] on the training device
    targets: Tensor  # [N] labels
    indices: Tensor  # dataset indices of the calibration images, in cache order
    input_shape: tuple[int, ...]  # one image's shape, for the placeholder input
    build_seconds: float = 0.0
    _current: Tensor | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.targets.numel())

    @property
    def nbytes(self) -> int:
        return self.activations.numel() * self.activations.element_size()

    def loader(self, batch_size: int, shuffle: bool = True) -> DataLoader:
        """Batches of (cached activation, label); ``train_block`` reseeds its shuffle generator."""
        return DataLoader(TensorDataset(self.activations, self.targets), batch_size=batch_size, shuffle=shuffle,
                          generator=torch.Generator() if shuffle else None)

    @contextmanager
    def replaying(self, model: nn.Module, batch: Tensor) -> Iterator[Tensor]:
        """Within the block, ``model(placeholder)`` computes the network from ``batch`` at ``site`` on."""
        modules = dict(model.named_modules())
        missing = [n for n in self.stubbed if n not in modules]
        if missing:
            raise ConfigError(f"the cached model's modules {missing} are not in this model; rebuild the cache")
        self._current = batch
        patched = []
        try:
            for name in self.stubbed:
                m = modules[name]
                patched.append((m, m.__dict__.get("forward")))
                m.forward = self._emit if name == self.site else _identity
            yield batch.new_zeros(()).expand(batch.shape[0], *self.input_shape)
        finally:
            self._current = None
            for m, previous in patched:
                if previous is None:
                    m.__dict__.pop("forward", None)
                else:
                    m.forward = previous

    def _emit(self, *args: Any, **kwargs: Any) -> Tensor:
        assert self._current is not None
        return self._current

    def forward(self, model: nn.Module, batch: Tensor) -> Tensor:
        """One training forward from cached activations (the ``forward`` that ``fit`` calls)."""
        from tsb_aihw.training.noise_injection import cached_forward

        with self.replaying(model, batch) as placeholder:
            return cached_forward(model, placeholder)


def _identity(x: Any, *args: Any, **kwargs: Any) -> Any:
    return x


def first_site(model: nn.Module) -> str:
    """The target module of the model's first TSB site in forward order."""
    from tsb_aihw.models.insertion import SITES_NAME

    sites = getattr(model, SITES_NAME, None)
    if not sites:
        raise ConfigError("the model has no TSB sites; insert the block first (tsb_aihw.models.insert_tsb)")
    return next(iter(sites.values())).target  # insert_tsb stores sites in forward order


def _prefix(model: nn.Module, x: Tensor, site: str) -> list[str]:
    """Modules whose every call completes before ``site``'s first call completes (``site`` included)."""
    order: list[str] = []
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: order.append(n), prepend=True)  # before site hooks
               for n, m in model.named_modules() if n]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    if site not in order:
        raise ConfigError(f"the site module {site!r} is not called by the model's forward")
    cut = order.index(site) + 1
    before, after = order[:cut], set(order[cut:])
    ancestors = {site.rsplit(".", i)[0] for i in range(1, site.count(".") + 1)}
    stubbed = [n for n in dict.fromkeys(before) if n not in ancestors]
    shared = [n for n in stubbed if n in after]
    if shared:
        raise ConfigError(f"modules {shared} run both before and after the first TSB site {site!r}, so the "
                          "prefix cannot be replayed from a cache; train the block uncached (cache=None)")
    return stubbed


@torch.no_grad()
def build_block_cache(model: nn.Module, dataset: Dataset, *, images: int | None = None, seed: int = 0,
                      batch_size: int = 256, device: str | torch.device = "cpu",
                      check_tol: float = 1e-4) -> BlockCache:
    """Cache the activations before the block at the first site for ``images`` calibration images.

    ``dataset``: an un-augmented dataset of (image, label) (augmentation would make a cache wrong);
    ``images``: how many, drawn without replacement with ``seed`` (None: all). The model is run in eval
    mode; the block's state does not matter (the cached tensor is the input of the block)."""
    dev = resolve_device(device)
    start = time.perf_counter()
    n = len(dataset)  # type: ignore[arg-type]
    if images is not None and not 0 < images <= n:
        raise ConfigError(f"images={images} must be in [1, {n}] (the calibration set's size)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    indices = perm if images is None else perm[:images]
    loader = DataLoader(Subset(dataset, indices.tolist()), batch_size=batch_size, shuffle=False)
    site = first_site(model)
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        module = model.get_submodule(site)
        parts: list[Tensor] = []
        labels: list[Tensor] = []
        stubbed: list[str] | None = None
        cache: BlockCache | None = None
        first: Tensor | None = None

        def capture(mod: nn.Module, inputs: Any, output: Tensor) -> None:
            parts.append(output.detach().clone())
            raise _Stop

        for x, y in loader:
            x = x.to(dev)
            if stubbed is None:
                stubbed = _prefix(model, x, site)
                first = x
            handle = module.register_forward_hook(capture, prepend=True)  # before the site's block hook
            try:
                model(x)
            except _Stop:
                pass
            finally:
                handle.remove()
            labels.append(torch.as_tensor(y))
        if stubbed is None or first is None:
            raise ConfigError("the calibration set yielded no images")
        cache = BlockCache(site=site, stubbed=stubbed, activations=torch.cat(parts), targets=torch.cat(labels).to(dev),
                           indices=indices, input_shape=tuple(first.shape[1:]))
        ref = model(first)
        with cache.replaying(model, cache.activations[: first.shape[0]].clone()) as placeholder:
            replay = model(placeholder)
        if not torch.allclose(replay, ref, rtol=check_tol, atol=check_tol):
            raise ConfigError(f"replaying the model from the cached activations at {site!r} does not reproduce its "
                              f"forward (max diff {(replay - ref).abs().max().item():.3g}); the forward does work "
                              "outside modules before the first site: train the block uncached (cache=None)")
    finally:
        for m, flag in flags:
            m.training = flag
    cache.build_seconds = time.perf_counter() - start
    return cache
