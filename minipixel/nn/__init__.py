"""Modules (parameters, state dicts, devices) and optimizers."""
from .module import Module, ModuleList, Parameter
from .optim import SGD, Adam, RMSProp, clip_grad_norm

__all__ = ["Module", "ModuleList", "Parameter", "SGD", "Adam", "RMSProp", "clip_grad_norm"]
