"""Diagonal BiLSTM model (paper section 3.2): 7x7 mask A, then Diagonal BiLSTM layers."""
from ..fast import FastDiagonalBiLSTMLayer
from ..layers import DiagonalBiLSTMLayer
from .base import PixelModel


class DiagonalBiLSTM(PixelModel):
    name = "diagonal"

    def make_layer(self, h, colours, rng, dtype, condition_maps=0):
        return (FastDiagonalBiLSTMLayer if self.fast else DiagonalBiLSTMLayer)(
            h, colours, rng, dtype, condition_maps)
