"""TrainRecipe: batch augmentation, the per-step LR curve, label smoothing, clipping, noise warm-up, validation
and a tiny SGD-recipe noise-injection run that learns."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from tsb_aihw.data import BatchCropFlip, get_dataset, make_loader
from tsb_aihw.errors import ConfigError
from tsb_aihw.training import TrainRecipe, train_block, train_noise_injection, weight_noise
from tsb_aihw.training.noise_injection import noise_ramp

from helpers import ToyTSB, digits, digits_cnn

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PLAIN = TrainRecipe(augment="none", label_smoothing=0.0, weight_decay=0.0, schedule="constant",
                    warmup_fraction=0.0)


def images(n: int = 16, c: int = 3, h: int = 8, w: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(n, c, h, w, generator=gen), torch.arange(n) % 10


# -- batch augmentation -----------------------------------------------------------------------------------


def test_augmentation_keeps_labels_shape_and_dtype():
    x, y = images()
    out, labels = BatchCropFlip(2, True, seed=0)(x, y)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(labels, y)


def test_no_padding_no_flip_is_the_identity():
    x, y = images()
    out, _ = BatchCropFlip(0, False, seed=0)(x, y)
    assert torch.equal(out, x)


def test_flip_only_flips_about_half_of_the_images_horizontally():
    x, y = images(n=200, h=4, w=5)
    out, _ = BatchCropFlip(0, True, seed=3)(x, y)
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    assert bool((same | flipped).all()) and not bool((same & flipped).any())
    assert 70 < int(flipped.sum()) < 130  # p = 0.5


def test_crop_only_takes_a_window_of_the_reflect_padded_image_at_varied_offsets():
    x, y = images(n=60, h=8, w=10)
    p = 2
    out, _ = BatchCropFlip(p, False, seed=5)(x, y)
    padded = F.pad(x, (p, p, p, p), mode="reflect")
    offsets = set()
    for o, big in zip(out, padded):
        hits = [(dy, dx) for dy in range(2 * p + 1) for dx in range(2 * p + 1)
                if torch.equal(o, big[:, dy:dy + 8, dx:dx + 10])]
        assert hits, "an output image is not a crop of its padded input"
        offsets.update(hits)
    assert len(offsets) > 10  # 25 possible offsets, drawn per image
    assert (p, p) in offsets or len(offsets) > 15


def test_augmentation_is_seeded():
    x, y = images()
    a1, _ = BatchCropFlip(2, True, seed=7)(x, y)
    a2, _ = BatchCropFlip(2, True, seed=7)(x, y)
    b, _ = BatchCropFlip(2, True, seed=8)(x, y)
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, b)
    aug = BatchCropFlip(2, True, seed=7)
    first, _ = aug(x, y)
    second, _ = aug(x, y)
    assert not torch.equal(first, second)  # the stream advances batch to batch
    aug.reset()
    assert torch.equal(aug(x, y)[0], first)


def test_augmentation_rejects_bad_input():
    with pytest.raises(ConfigError, match="padding"):
        BatchCropFlip(-1)
    with pytest.raises(ConfigError, match=r"\[N, C, H, W\]"):
        BatchCropFlip(2)(torch.zeros(3, 8, 8), torch.zeros(3))
    with pytest.raises(ConfigError, match="smaller than the image"):
        BatchCropFlip(4)(torch.zeros(2, 1, 4, 4), torch.zeros(2))


# -- LR curve and noise warm-up -----------------------------------------------------------------------


def test_onecycle_rises_to_the_peak_at_the_warmup_end_and_falls_to_the_end_value():
    r = TrainRecipe(lr=0.4, schedule="onecycle", warmup_fraction=0.25, start_lr_fraction=0.1,
                    final_lr_fraction=0.01)
    total = 101
    curve = [r.lr_at(s, total) for s in range(total)]
    assert curve[0] == pytest.approx(0.04)
    peak = max(range(total), key=curve.__getitem__)
    assert peak == 25 and curve[25] == pytest.approx(0.4)
    assert curve[-1] == pytest.approx(0.004)
    assert all(a < b for a, b in zip(curve[:25], curve[1:26]))
    assert all(a > b for a, b in zip(curve[25:], curve[26:]))


def test_linear_decay_is_a_straight_line_after_a_linear_warmup():
    r = TrainRecipe(lr=1.0, schedule="linear-decay", warmup_fraction=0.2, start_lr_fraction=0.0,
                    final_lr_fraction=0.0)
    total = 11  # progress 0, 0.1, ..., 1
    curve = [r.lr_at(s, total) for s in range(total)]
    assert curve[:3] == pytest.approx([0.0, 0.5, 1.0])  # warm-up: linear 0 -> 1 over 20%
    assert curve[2:] == pytest.approx([1 - i / 8 for i in range(9)])  # then linear 1 -> 0
    flat = TrainRecipe(lr=0.2, schedule="constant", warmup_fraction=0.5, start_lr_fraction=0.5)
    assert [flat.lr_at(s, 5) for s in range(5)] == pytest.approx([0.1, 0.15, 0.2, 0.2, 0.2])
    cos = TrainRecipe(lr=1.0, schedule="cosine", warmup_fraction=0.0, final_lr_fraction=0.1)
    assert [cos.lr_at(s, 3) for s in range(3)] == pytest.approx([1.0, 0.55, 0.1])


def test_noise_warmup_ramps_linearly_then_stays_full():
    r = TrainRecipe(noise_warmup_fraction=0.5)
    assert [r.noise_scale(s, 11) for s in range(11)] == pytest.approx([0, .2, .4, .6, .8, 1, 1, 1, 1, 1, 1])
    assert TrainRecipe().noise_scale(0, 10) == 1.0
    model = digits_cnn(4)
    with weight_noise(model, 0.2) as layers:
        ramp = noise_ramp(layers, r)
        assert ramp is not None
        ramp(2, 11)
        assert [m.parametrizations.weight[0].std for m in layers] == pytest.approx([0.08, 0.08])
        ramp(10, 11)
        assert [m.parametrizations.weight[0].std for m in layers] == pytest.approx([0.2, 0.2])
    assert noise_ramp(layers, TrainRecipe()) is None


def test_the_trainer_sets_the_recipe_lr_at_every_step():
    train, _ = digits(1400)
    loader = DataLoader(train, 200, shuffle=True)  # 7 steps per epoch
    torch.manual_seed(0)
    recipe = dataclasses.replace(PLAIN, schedule="onecycle", warmup_fraction=0.3, lr=0.05)
    res = train_noise_injection(digits_cnn(4), loader, noise_std=0.0, epochs=3, progress=False, recipe=recipe)
    assert [h["lr"] for h in res.history] == pytest.approx([recipe.lr_at(7 * e, 21) for e in range(3)])
    assert res.config.optim.recipe == recipe and res.config.optim.optimizer == "sgd"


# -- loss, clipping ------------------------------------------------------------------------------------


def one_batch() -> tuple[DataLoader, torch.Tensor, torch.Tensor]:
    train, _ = digits(1400)
    x, y = torch.stack([train[i][0] for i in range(64)]), torch.stack([train[i][1] for i in range(64)])
    return DataLoader(torch.utils.data.TensorDataset(x, y), 64), x, y


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_label_smoothing_is_the_training_loss(smoothing):
    loader, x, y = one_batch()
    torch.manual_seed(0)
    model = digits_cnn(4)
    with torch.no_grad():
        model[-1].weight *= 30  # confident logits: smoothing changes the loss clearly
    reference = copy.deepcopy(model).train()
    with torch.no_grad():
        logits = reference(x)
    expected = F.cross_entropy(logits, y, label_smoothing=smoothing)
    other = F.cross_entropy(logits, y, label_smoothing=0.3 - smoothing)
    res = train_noise_injection(model, loader, noise_std=0.0, epochs=1, progress=False,
                                recipe=dataclasses.replace(PLAIN, label_smoothing=smoothing))
    assert res.history[0]["train_loss"] == pytest.approx(float(expected), rel=1e-5)
    assert abs(float(expected) - float(other)) > 0.05  # the two settings are told apart


def test_grad_clip_bounds_the_first_step():
    loader, _, _ = one_batch()
    steps = {}
    for clip in (None, 0.01):
        torch.manual_seed(0)
        model = digits_cnn(4)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        recipe = dataclasses.replace(PLAIN, lr=0.1, grad_clip=clip, nesterov=False)
        train_noise_injection(model, loader, noise_std=0.0, epochs=1, progress=False, recipe=recipe)
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        steps[clip] = float((after - before).norm())
    assert steps[0.01] == pytest.approx(0.1 * 0.01, rel=1e-3)  # first SGD step = lr * clipped grad
    assert steps[None] > 10 * steps[0.01]


# -- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("field,value,match", [
    ("optimizer", "lbfgs", "optimizer 'lbfgs' is unknown"),
    ("lr", 0.0, "lr must be in"),
    ("lr", float("nan"), "lr must be a finite number"),
    ("lr", "0.1", "lr must be a finite number"),
    ("momentum", 1.0, "momentum must be in"),
    ("weight_decay", -1e-4, "weight_decay must be in"),
    ("schedule", "step", "schedule 'step' is unknown"),
    ("warmup_fraction", 1.0, "warmup_fraction must be in"),
    ("final_lr_fraction", 1.5, "final_lr_fraction must be in"),
    ("label_smoothing", 1.0, "label_smoothing must be in"),
    ("grad_clip", 0.0, "grad_clip must be in"),
    ("augment", "mixup", "augment 'mixup' is unknown"),
    ("crop_padding", 2.5, "crop_padding must be an integer"),
    ("flip", "yes", "flip must be true or false"),
    ("channels_last", 1, "channels_last must be true or false"),
    ("noise_warmup_fraction", -0.1, "noise_warmup_fraction must be in"),
])
def test_bad_recipe_values_are_one_clear_config_error(field, value, match):
    with pytest.raises(ConfigError, match=match) as err:
        TrainRecipe(**{field: value})
    assert "\n" not in str(err.value)


def test_recipe_combinations_and_keys_are_checked():
    with pytest.raises(ConfigError, match="nesterov"):
        TrainRecipe(optimizer="adam")  # nesterov=True is the default
    with pytest.raises(ConfigError, match="onecycle"):
        TrainRecipe(warmup_fraction=0.0)
    with pytest.raises(ConfigError, match="unknown recipe key"):
        TrainRecipe.from_dict({"lr": 0.1, "learning_rate": 0.1})
    assert TrainRecipe.from_dict({"lr": 0.1, "grad_clip": 1.0}) == TrainRecipe(lr=0.1, grad_clip=1.0)
    assert TrainRecipe.from_dict(TrainRecipe().to_dict()) == TrainRecipe()


def test_trainers_refuse_ambiguous_or_double_augmented_setups():
    train, _ = digits(1400)
    loader = DataLoader(train, 64)
    with pytest.raises(ConfigError, match="lr inside the recipe"):
        train_noise_injection(digits_cnn(4), loader, noise_std=0.0, epochs=1, lr=1e-3, recipe=PLAIN,
                              progress=False)
    with pytest.raises(ConfigError, match="loader with len"):
        train_noise_injection(digits_cnn(4), (batch for batch in loader), noise_std=0.0, epochs=1, recipe=PLAIN,
                              progress=False)


def test_batch_augmentation_refuses_a_per_item_augmented_dataset(tmp_path):
    from tsb_aihw.data.dataset import TensorImageDataset
    from tsb_aihw.data.info import DatasetInfo
    from tsb_aihw.data.transforms import train_augmentation

    info = DatasetInfo(name="toy", split="train", num_classes=10, in_channels=3, image_size=(8, 8),
                       classes=tuple(str(i) for i in range(10)), size=20, split_note="toy", seed=0, augment=True,
                       mean=(0.5,) * 3, std=(0.5,) * 3)
    ds = TensorImageDataset(torch.zeros(20, 3, 8, 8, dtype=torch.uint8), torch.arange(20) % 10, info,
                            torch.arange(20).numpy(), train_augmentation((8, 8), info.mean, info.std))
    with pytest.raises(ConfigError, match="augment=False"):
        train_noise_injection(digits_cnn(4), make_loader(ds, 10), noise_std=0.0, epochs=1, progress=False,
                              recipe=TrainRecipe())


# -- training with a recipe ---------------------------------------------------------------------------


def test_sgd_recipe_noise_injection_learns_and_is_reproducible():
    train, val, _ = digits(1200, 1500)
    recipe = TrainRecipe(lr=0.05, warmup_fraction=0.2, crop_padding=1, flip=False,  # digits: no flips
                         noise_warmup_fraction=0.3, grad_clip=5.0, channels_last=True)
    results, states = [], []
    for _ in range(2):
        torch.manual_seed(0)
        model = digits_cnn(8, 8)
        loader = make_loader(train, 64, shuffle=True, seed=0)
        res = train_noise_injection(model, loader, DataLoader(val, 300), noise_std=0.1, epochs=6, seed=4,
                                    progress=False, recipe=recipe)
        results.append(res)
        states.append(model.state_dict())
    res = results[0]
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.6 * losses[0]
    assert res.best_val_acc > 0.8  # chance: 0.1
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])  # same seed, same weights
    weight = next(iter(model.parameters()))
    assert weight.is_contiguous()  # channels-last is undone after training


class BlockNet(torch.nn.Module):
    """digits_features(8) -> a ToyTSB -> Flatten -> Linear: a backbone with one insertion site."""

    def __init__(self) -> None:
        super().__init__()
        self.features = digits_cnn(8)[:-2]
        self.tsb = ToyTSB(8)
        self.head = torch.nn.Linear(8 * 16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.tsb(self.features(x)), 1))


def test_block_training_with_a_recipe_only_moves_the_block():
    train, _ = digits(1400)
    torch.manual_seed(0)
    model = BlockNet()
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("tsb.")}
    recipe = dataclasses.replace(PLAIN, lr=0.02, noise_warmup_fraction=0.5)
    res = train_block(model, DataLoader(train, 100), block_params="tsb", epochs=2, noise_std=0.05, progress=False,
                      recipe=recipe)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert float(model.tsb.conv.weight.detach().abs().sum()) > 0
    assert res.config.optim.recipe.noise_warmup_fraction == 0.5
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_fan_in_fc_init_keeps_the_first_logits_small():
    from tsb_aihw.models import get_model

    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    stds = {}
    for init in ("fan_out", "fan_in"):
        torch.manual_seed(0)
        model = get_model("vgg8", width=0.25, fc_init=init).train()
        with torch.no_grad():
            stds[init] = float(model(x).std())
    assert stds["fan_out"] > 10  # NF_Training's init: train-mode logits of std ~30
    assert 0.3 < stds["fan_in"] < 3
    torch.manual_seed(0)
    ref = get_model("vgg8", width=0.25)
    torch.manual_seed(0)
    same = get_model("vgg8", width=0.25, fc_init="fan_out")
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), same.state_dict().values()))
    with pytest.raises(ConfigError, match="fc_init"):
        get_model("resnet18", width=0.25, fc_init="xavier")
