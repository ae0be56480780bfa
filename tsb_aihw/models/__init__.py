"""Backbones (registry), the Tiny Shared Block and its insertion into any CNN."""
from tsb_aihw.models import lenet as _lenet  # noqa: F401  (registers lenet3)
from tsb_aihw.models import resnet as _resnet  # noqa: F401  (registers resnet18)
from tsb_aihw.models import vgg as _vgg  # noqa: F401  (registers vgg8)
from tsb_aihw.models.counting import backbone_weight_count, weight_layers
from tsb_aihw.models.insertion import bind_sites, get_tsb, insert_tsb
from tsb_aihw.models.pretrained import load_torchvision
from tsb_aihw.models.registry import get_model, list_models, register_model
from tsb_aihw.models.tsb import TinySharedBlock, TSBSite

__all__ = [
    "get_model", "list_models", "register_model", "TinySharedBlock", "TSBSite", "insert_tsb", "bind_sites",
    "get_tsb", "backbone_weight_count", "weight_layers", "load_torchvision",
]
