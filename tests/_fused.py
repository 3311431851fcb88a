"""A layer called the way a compiled model's fused node calls it (``activation=("relu", 0.0)``),
for the layer tests of every layer that accepts a fused ReLU (Conv2D, BatchNorm, Add)."""


class FusedRelu:
    """``layer`` with a fused ReLU, behind the textbook forward/backward that check_layer drives."""

    def __init__(self, layer):
        self.layer, self.name = layer, "fused"
        self.params, self.grads, self.buffers = layer.params, layer.grads, layer.buffers

    def forward(self, x, training=None):
        y, self._ctx = self.layer._forward(x, True if training is None else training, activation=("relu", 0.0))
        return y

    def backward(self, dout):
        self.layer.zero_grad()
        return self.layer._backward(self._ctx, dout, True)
