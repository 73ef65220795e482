"""PixelCNN (paper section 3.5): 7x7 mask A, then residual blocks of masked 3x3 convs.

PixelCNN has no recurrence: its fast and paper paths differ only in the loss."""
from ..layers import PixelCNNBlock
from .base import PixelModel


class PixelCNN(PixelModel):
    name = "pixelcnn"

    def make_layer(self, h, colours, rng, dtype, condition_maps=0):
        return PixelCNNBlock(h, colours, rng, dtype, relu_slope=self.relu_slope,
                             condition_maps=condition_maps)
