"""Keras layers the built-in set lacks, used by variants' training forms."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="imdb_rnn_pipeline")
class InputFreeSimpleRNNCell(keras.layers.Layer):
    """SimpleRNN's cell for inputs that already are `W x_t`: h_t = tanh(x_t + b + U h_{t-1})."""

    def __init__(self, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.output_size = units
        # Drawn in SimpleRNNCell's order (its dropout seed, then kernel, recurrent and bias
        # initialisers), so a seeded run starts from exactly the weights SimpleRNN would have.
        # The kernel's initialiser is applied by the Embedding that holds the input kernel.
        self.seed_generator = keras.random.SeedGenerator()
        self.kernel_initializer = keras.initializers.get("glorot_uniform")
        self.recurrent_initializer = keras.initializers.get("orthogonal")
        self.bias_initializer = keras.initializers.get("zeros")

    def build(self, input_shape) -> None:
        # Same weight order as SimpleRNNCell's recurrent kernel and bias.
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), initializer=self.recurrent_initializer, name="recurrent_kernel"
        )
        self.bias = self.add_weight(shape=(self.units,), initializer=self.bias_initializer, name="bias")

    def call(self, inputs, states):
        hidden = keras.ops.tanh(inputs + self.bias + keras.ops.matmul(states[0], self.recurrent_kernel))
        return hidden, [hidden]

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}
