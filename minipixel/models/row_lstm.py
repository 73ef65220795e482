"""Row LSTM model (paper section 3.1): 7x7 mask A, then Row LSTM layers."""
from ..fast import FastRowLSTMLayer
from ..layers import RowLSTMLayer
from .base import PixelModel


class RowLSTM(PixelModel):
    name = "rowlstm"

    def make_layer(self, h, colours, rng, dtype, condition_maps=0):
        return (FastRowLSTMLayer if self.fast else RowLSTMLayer)(h, colours, rng, dtype,
                                                                 condition_maps)
