"""The benchmark's PyTorch peer: the models as a competent PyTorch user would write them.

Eager mode; each masked conv multiplies its weight by its mask in the forward
(F.conv2d(x, w * m, b)); the LSTM cell from torch.sigmoid / torch.tanh; a Python
loop over rows (Row LSTM) or skewed columns (Diagonal LSTM) with the state-to-state
conv as F.conv1d; skew and unskew as a pad and two reshapes; torch's losses and
autograd. Nothing is kept for bookkeeping (reference_tests/torch_oracle.py, the
cross-check oracle, also returns every intermediate and skews row by row).
The masks come from the oracle's mask builder (built once, outside the step).

    net = Peer(cfg, params, masks);  net.loss(images).backward()
"""
import torch
import torch.nn.functional as F


def skew(x):
    """(N, C, H, W) -> (N, C, H, H + W - 1): row r shifted right by r, zeros elsewhere."""
    N, C, H, W = x.shape
    flat = F.pad(x, (0, H)).reshape(N, C, H * (W + H))
    return flat[..., :H * (W + H - 1)].reshape(N, C, H, W + H - 1)


def unskew(s, W):
    """(N, C, H, H + W - 1) -> (N, C, H, W)."""
    N, C, H, S = s.shape
    return F.pad(s.reshape(N, C, H * S), (0, H)).reshape(N, C, H, S + 1)[..., :W]


def cell(pre, c):
    i, f, g, o = pre.chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class Peer:
    def __init__(self, cfg, params, masks):
        self.cfg, self.P, self.M = cfg, params, masks

    def conv(self, name, x, padding=0):
        return F.conv2d(x, self.P[name + ".weight"] * self.M[name + ".weight"],
                        self.P[name + ".bias"], padding=padding)

    def row_lstm(self, p, x):
        N, _, H, W = x.shape
        gates = self.conv(p + "input_to_state", x, padding=(0, 1))
        k = self.P[p + "state_to_state"][:, :, 0]                          # (4h, h, 3)
        h = self.P[p + "h0"][None, :, None].expand(N, -1, W)
        c = self.P[p + "c0"][None, :, None].expand(N, -1, W)
        rows = []
        for r in range(H):
            h, c = cell(gates[:, :, r] + F.conv1d(h, k, padding=1), c)
            rows.append(h)
        return torch.stack(rows, dim=2)

    def diagonal_lstm(self, p, x):
        N, _, H, W = x.shape
        gates = self.conv(p + "input_to_state", skew(x))                  # (N, 4h, H, W')
        k = self.P[p + "state_to_state"][..., 0]                           # (4h, h, 2)
        h = self.P[p + "h0"][None, :, None].expand(N, -1, H)
        c = self.P[p + "c0"][None, :, None].expand(N, -1, H)
        cols = []
        for j in range(H + W - 1):
            rec = F.conv1d(h, k, padding=1)[..., :H]                       # rows r-1 and r
            h, c = cell(gates[..., j] + rec, c)
            cols.append(h)
        return unskew(torch.stack(cols, dim=3), W)

    def layer(self, i, x):
        p, model = f"layers.{i}.", self.cfg["model"]
        if model == "pixelcnn":
            y = self.conv(p + "reduce", F.relu(x))
            y = self.conv(p + "conv", F.relu(y), padding=1)
            return x + self.conv(p + "expand", F.relu(y))
        if model == "rowlstm":
            hidden = self.row_lstm(p, x)
        else:
            l2r = self.diagonal_lstm(p + "left_to_right.", x)
            r2l = self.diagonal_lstm(p + "right_to_left.", x.flip(3)).flip(3)
            hidden = l2r + F.pad(r2l[:, :, :-1], (0, 0, 1, 0))             # shifted down a row
        return x + self.conv(p + "output", hidden)

    def loss(self, images):
        """Mean NLL per image in nats."""
        C, V = self.cfg["channels"], self.cfg["levels"]
        dtype = self.P["first.weight"].dtype
        x = self.conv("first", images.to(dtype) * (2.0 / (V - 1)) - 1, padding=3)
        outs = []
        for i in range(self.cfg["layers"]):
            x = self.layer(i, x)
            outs.append(x)
        z = self.conv("out_logits", F.relu(self.conv("out_hidden", F.relu(
            self.conv("skip", torch.cat(outs, dim=1))))))
        N, _, H, W = z.shape
        if V == 2:
            nll = F.binary_cross_entropy_with_logits(z, images.to(dtype), reduction="sum")
        else:
            logits = z.reshape(N, C, V, H, W).permute(0, 2, 1, 3, 4)
            nll = F.cross_entropy(logits, images, reduction="sum")
        return nll / N
