"""minipixel: PixelRNN and PixelCNN on a tiny NumPy/CuPy autograd engine.

    minipixel.Tensor, no_grad, gradients   the engine (minipixel/tensor.py)
    minipixel.ops                       differentiable ops, backward beside forward
    minipixel.nn                        Module, Parameter, optimizers
    minipixel.gradcheck                 finite-difference gradient checker
"""
from . import backend, nn, ops
from .backend import DeviceError, default_device, get_array_module
from .gradcheck import GradcheckError, gradcheck, gradcheck_directional
from .tensor import Tensor, gradients, no_grad

__version__ = "0.1.0"
__all__ = ["Tensor", "no_grad", "gradients", "ops", "nn", "backend", "gradcheck",
           "gradcheck_directional", "GradcheckError", "DeviceError", "default_device",
           "get_array_module"]
