"""The per-pixel twin of minipixel/layers/residual.py: PixelCNN's residual block at one
pixel, and the (leaky) ReLU on raw arrays.

Tested equal to the block's forward pass at every pixel
(reference_tests/test_per_pixel_twins.py).
"""
from .conv import condition_bias


def rectify(a, slope, xp, out=None):
    """ReLU (slope 0) or leaky ReLU of a raw array, into `out` if given (may be a)."""
    if slope == 0:
        return xp.maximum(a, 0, out=out)
    return xp.multiply(a, xp.where(a > 0, 1, slope).astype(a.dtype), out=out)


class PixelCNNPixels:
    """The block at one pixel at a time, for cached sampling, in raw arrays.

    Its 3 x 3 conv reads the grid y_grid = relu(reduce(relu x)) (N, H + 2p, W + 2p, h),
    channels last, at pixels drawn so far; each step writes y_grid at (r, col), then
    reads the window there. In a conditional network (the Multi-Scale model) the block's
    bias V (*) cond is computed once, at every pixel, from cond (N, H, W, c), channels
    last, and added to the 3 x 3 conv's output at (r, col), as the forward adds it."""

    def __init__(self, block, N, H, W, cond=None):
        p = block.conv.padding[0]
        h = block.conv.weight.shape[1]
        self.xp, self.p, self.slope = block.conv.weight.xp, p, block.relu_slope
        self.y_grid = self.xp.zeros((N, H + 2 * p, W + 2 * p, h), dtype=block.conv.weight.dtype)
        self.reduce, self.expand = block.reduce.at_pixel(), block.expand.at_pixel()
        self.conv = block.conv.at_pixel(self.y_grid)
        self.bias = condition_bias(block, cond)                          # V (*) cond

    def begin_row(self, r):
        self.conv.begin_row(r)

    def at(self, x, r, col, out):
        """Block output at (r, col) into out (N, 2h), for its input x (N, 2h) there."""
        xp, p, slope = self.xp, self.p, self.slope
        rectify(self.reduce.vec(rectify(x, slope, xp)), slope, xp,
                out=self.y_grid[:, r + p, col + p])
        y = self.conv.at(r, col)
        if self.bias is not None:
            y += self.bias[:, r, col]
        return xp.add(x, self.expand.vec(rectify(y, slope, xp, out=y)), out=out)
