"""A user's own builder of ``mlp()``'s one-hidden-layer network: the any-builder trainer."""

import keras


def dense(input_shape, hidden=6, dropout=0.0, l2=0.0, output_units=1,
          output_activation="sigmoid"):  # fmt: skip
    """``mlp()``'s network with one hidden layer, as a user's own builder."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Dense(hidden, activation="relu",
                           kernel_regularizer=keras.regularizers.L2(l2))(inputs)  # fmt: skip
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(output_units, activation=output_activation)(x)
    return keras.Model(inputs, outputs)
