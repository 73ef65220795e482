"""The paper's four models and its presets."""
from .base import PixelModel, check_images
from .diagonal_bilstm import DiagonalBiLSTM
from .multiscale import MultiScalePixelRNN
from .pixelcnn import PixelCNN
from .presets import MODELS, PRESETS, build, from_preset
from .row_lstm import RowLSTM

__all__ = ["PixelModel", "PixelCNN", "RowLSTM", "DiagonalBiLSTM", "MultiScalePixelRNN",
           "MODELS", "PRESETS", "build", "from_preset", "check_images"]
