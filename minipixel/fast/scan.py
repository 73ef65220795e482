"""The recurrence both LSTM layers share, and its taps: what row.py and scan_core.py run.

The fast twins of the loops in minipixel/layers/row_lstm.py and
diagonal_bilstm.py (a conv2d and an lstm_cell per step, the engine deriving
the backward); equal to them, forward and backward (tested).

Notation
--------
D directions run side by side (1 for the Row LSTM; 2 for the Diagonal BiLSTM), N batch,
h hidden units, G = 4h gate maps, S steps of the recurrence, L positions
updated in parallel at each step, T taps of the state-to-state kernel.

    Row LSTM:        steps = rows (S = H), positions = columns (L = W),
                     K_ss is 1 x 3 over the previous row: offsets (-1, 0, +1)
    Diagonal BiLSTM: steps = skewed columns, positions = rows (L = H),
                     K_ss is 2 x 1 over the previous column: offsets (-1, 0),
                     i.e. zero padding at the top only (bottom padding leaks)

For each step s (paper eq. 3):

    taps_s[(k, t), l] = h_{s-1}[k, l + offset_t]        zero outside 0..L-1
    pre_s = K_is (*) x_s + bias + K_ss @ taps_s         (G, L) for each n, d
          = [K_is | bias | K_ss] @ [x_s ; 1 ; taps_s]   one matrix product per step
    h_s, c_s = lstm_cell(pre_s, c_{s-1})

(x_s: the input the step's K_is reads: the row's taps for the Row LSTM, the skewed
column for the Diagonal LSTM).

The learned initial state h_{-1}, c_{-1} is one vector (h,) each per direction,
broadcast over N and L. The only Python loop is over the steps; the backward
runs the same loop in reverse (backpropagation through time), by hand:

    row.py        the Row LSTM: its input-to-state conv and the scan over rows as
                  one op, in a layout of its own
    scan_core.py  the Diagonal LSTM's scan, in place on row blocks, each step
                  computing only the rows some output needs (diagonal.py)

Both run the cell in place (cell.lstm_cell_step and its backward).
"""

# K_ss as offsets along the positions of the previous step (see the notation above)
ROW_OFFSETS = (-1, 0, 1)       # Row LSTM 1 x 3: columns c-1, c, c+1 of the previous row
DIAGONAL_OFFSETS = (-1, 0)     # Diagonal 2 x 1: rows r-1 and r of the previous skewed column
