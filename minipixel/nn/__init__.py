"""Modules (parameters, state dicts, devices) and optimizers."""
from .module import Module, ModuleList, Parameter
from .optim import (DEFAULT_LR, OPTIMIZERS, SGD, Adam, RMSProp, clip_grad_norm, grad_norm,
                    make_optimizer)

__all__ = ["Module", "ModuleList", "Parameter", "SGD", "Adam", "RMSProp", "clip_grad_norm",
           "grad_norm", "make_optimizer", "OPTIMIZERS", "DEFAULT_LR"]
