"""The LSTM cell of both PixelRNN layers (paper eq. 3), forward and backward by hand.

Notation
--------
N batch, h hidden units, L positions updated in parallel in one step (a row
of W pixels for the Row LSTM, a skewed column of H pixels for the Diagonal
BiLSTM). ``pre`` (N, 4h, L) holds the gate pre-activations
K_is (*) x_i + K_ss (*) h_{i-1}, in PyTorch's gate order (i, f, g, o):

    pre[:, 0h:1h]  input gate    i = sigmoid(.)
    pre[:, 1h:2h]  forget gate   f = sigmoid(.)
    pre[:, 2h:3h]  content gate  g = tanh(.)      (tanh, not sigmoid: a known bug)
    pre[:, 3h:4h]  output gate   o = sigmoid(.)

    c_i = f * c_{i-1} + i * g
    h_i = o * tanh(c_i)
"""
from ..ops.elementwise import sigmoid_array
from ..tensor import check_same, record


def lstm_cell_forward(pre, c_prev, xp):
    """(N, 4h, L), (N, h, L) -> h, c (N, h, L) and the cache for the backward."""
    n = c_prev.shape[1]
    i = sigmoid_array(pre[:, 0 * n:1 * n], xp)
    f = sigmoid_array(pre[:, 1 * n:2 * n], xp)
    g = xp.tanh(pre[:, 2 * n:3 * n])
    o = sigmoid_array(pre[:, 3 * n:4 * n], xp)
    c = f * c_prev + i * g
    tc = xp.tanh(c)
    return o * tc, c, (i, f, g, o, c_prev, tc)


def lstm_cell_backward(dh, dc, cache, xp):
    """Gradients of h and c  ->  gradients of pre (N, 4h, L) and c_prev (N, h, L).

    The steps undo the forward's, last line first."""
    i, f, g, o, c_prev, tc = cache
    # 1. h = o * tanh(c)
    do = dh * tc
    dc = dc + dh * o * (1 - tc * tc)
    # 2. c = f * c_prev + i * g
    di, dg, df, dc_prev = dc * g, dc * i, dc * c_prev, dc * f
    # 3. the activations: sigmoid' = s (1 - s), tanh' = 1 - t^2
    dpre = xp.concatenate([di * i * (1 - i), df * f * (1 - f),
                           dg * (1 - g * g), do * o * (1 - o)], axis=1)
    return dpre, dc_prev


def lstm_cell(pre, c_prev):
    """The cell as an engine op: Tensors pre (N, 4h, ...), c_prev (N, h, ...) -> (h, c).

    One fused op with a hand-written backward; h and c come out as two views of
    one recorded output (N, 2h, ...)."""
    check_same(pre, c_prev, op="lstm_cell")
    if pre.shape[1] != 4 * c_prev.shape[1]:
        raise ValueError(f"lstm_cell: pre needs 4h = {4 * c_prev.shape[1]} channels, "
                         f"got {pre.shape[1]}")
    xp, n = pre.xp, c_prev.shape[1]
    h, c, cache = lstm_cell_forward(pre.data, c_prev.data, xp)

    def backward(g):
        return lstm_cell_backward(g[:, :n], g[:, n:], cache, xp)
    hc = record(xp.concatenate([h, c], axis=1), (pre, c_prev), backward, "lstm_cell")
    return hc[:, :n], hc[:, n:]
