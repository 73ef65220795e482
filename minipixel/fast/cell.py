"""The LSTM cell (paper eq. 3), fused: the scan's in-place forward and backward by hand.

The fast twin of minipixel/layers/cell.py (which writes eq. 3 from sigmoid and
tanh ops); equal to it, forward and backward (reference_tests/test_lstm.py), and
inside both scans (reference_tests/test_fast_equals_paper.py).

Notation
--------
h hidden units (n in the code); D directions, M positions updated in parallel (images and pixels of
one step of the scan). ``act`` (D, 4h, M) holds the gates in PyTorch's order
(i, f, g, o), the paper's [o, f, i, g] reordered:

    act[:, 0h:1h]  input gate    i = sigmoid(pre)
    act[:, 1h:2h]  forget gate   f = sigmoid(pre)
    act[:, 2h:3h]  content gate  g = tanh(pre)      (tanh, not sigmoid: a known bug)
    act[:, 3h:4h]  output gate   o = sigmoid(pre)

    c_i = f * c_{i-1} + i * g
    h_i = o * tanh(c_i)

All four gates come from one exp: sigmoid(x) = 1 / (1 + exp(-x)) for i, f, o, and
tanh(x) = 2 sigmoid(2x) - 1 for g, so the scan hands the cell z = k * pre with
k = -1 for i, f, o and -2 for g (``exp_gate_scale``; folded into the scan's weight).
The backward needs only the activations, not the pre-activations:
    d act / d pre = act (1 - act) for i, f, o;  1 - g^2 for g.
"""


def exp_gate_scale(xp, n, dtype):
    """k (4h, 1): -1 for i, f, o and -2 for g, the scaling of pre that lstm_cell_step takes."""
    k = xp.full((4 * n, 1), -1.0, dtype=dtype)
    k[2 * n:3 * n] = -2.0
    return k


def lstm_cell_step(act, c_prev, c_new, tanh_c, h_new, tmp, xp):
    """The cell forward in place, for the scan's inner loop: no allocation.

    act (D, 4h, M) holds z = k * pre on entry (k from exp_gate_scale: the scan folds
    it into its weights) and the gate activations (i, f, g, o) on exit; c_new,
    tanh_c = tanh(c_new), h_new (D, h, M) are written into the given buffers; tmp
    (D, h, M) is scratch.

    One exp rather than one tanh per gate (NumPy's float32 exp costs about half its
    tanh). Where z is large, exp(z) overflows to inf and the gate to its exact limit 0
    (the caller silences NumPy's overflow warning)."""
    n = c_prev.shape[1]
    xp.exp(act, out=act)
    act += 1
    xp.divide(1, act, out=act)                          # sigmoid(pre); sigmoid(2 pre) for g
    i, f, g, o = act[:, :n], act[:, n:2 * n], act[:, 2 * n:3 * n], act[:, 3 * n:]
    g *= 2
    g -= 1                                              # g = tanh(pre)
    xp.multiply(f, c_prev, out=c_new)                   # c = f * c_prev + i * g
    xp.multiply(i, g, out=tmp)
    c_new += tmp
    xp.tanh(c_new, out=tanh_c)
    xp.multiply(o, tanh_c, out=h_new)                   # h = o * tanh(c)


def lstm_cell_step_backward(dh, dc, act, c_prev, tanh_c, d_act, tmp, tmp_g, xp):
    """lstm_cell_step's backward in place: dh, dc (D, h, M), the gradients of h_new and
    c_new  ->  d_act (D, 4h, M) = d pre, and dc overwritten with d c_prev. tmp (D, h, M),
    tmp_g (D, 4h, M) scratch. Its numbered steps undo the forward's, last line first."""
    n = c_prev.shape[1]
    i, f, g, o = act[:, :n], act[:, n:2 * n], act[:, 2 * n:3 * n], act[:, 3 * n:]
    # 1. h = o * tanh(c)
    xp.multiply(dh, tanh_c, out=d_act[:, 3 * n:])            # do
    xp.multiply(tanh_c, tanh_c, out=tmp)
    xp.subtract(1, tmp, out=tmp)
    tmp *= o
    tmp *= dh
    dc += tmp                                           # dc += dh * o * (1 - tanh(c)^2)
    # 2. c = f * c_prev + i * g
    xp.multiply(dc, g, out=d_act[:, :n])                 # di
    xp.multiply(dc, c_prev, out=d_act[:, n:2 * n])       # df
    xp.multiply(dc, i, out=d_act[:, 2 * n:3 * n])        # dg
    # 3. d act / d pre: sigmoid' = act (1 - act) for i, f, o; tanh' = 1 - g^2 for g
    xp.subtract(1, act, out=tmp_g)
    tmp_g *= act
    xp.multiply(g, g, out=tmp_g[:, 2 * n:3 * n])
    xp.subtract(1, tmp_g[:, 2 * n:3 * n], out=tmp_g[:, 2 * n:3 * n])
    d_act *= tmp_g
    dc *= f                                             # d c_prev
