"""BatchNormalization through TensorFlow's fused kernel while training.

Keras 3 computes a training-mode BatchNorm as separate operations (mean, variance, subtract,
scale, shift, and the gradient of each), every one a full pass over the feature map. tf.keras 2
used TensorFlow's fused kernel (``FusedBatchNormV3``: one oneDNN pass forward, one backward)
instead. On the wide, shallow maps of this project's U-Nets (1024x768x16 in unet5l, 640x640x12
in the U-Net++ decoder) those passes dominate the training step: on this project's 2-core
CPU, BatchNorm + ReLU forward and backward at unet5l's first level take 24 ms the Keras 3 way
and 5.5 ms fused, against 11 ms for the convolution itself (``bench/profile_unet5l.py``).

:class:`FusedBatchNormalization` is ``keras.layers.BatchNormalization`` with the same weights,
config and inference behaviour; only its training-mode forward pass on the TensorFlow backend
(4-D channels-last input, float32 or bfloat16, no mask, renorm or cross-replica statistics)
goes through the fused kernel. Every other case, and every other backend, runs Keras' own code.
The moving statistics are updated exactly as Keras does (momentum, biased batch variance:
the kernel's Bessel-corrected variance is scaled back by ``(n - 1) / n``).

:func:`use_fused_batchnorm` switches the BatchNorms of a built model in place (their class
only: weights, names and graph stay);
:func:`mammo_common.keras.training.harness.fit_resumable` calls it before compiling, so every stage
trains this way. A saved model then names ``mammo>FusedBatchNormalization``, which loads wherever
``mammo_common.keras`` is importable (model folders load it first).
"""

from __future__ import annotations

from typing import Any

import keras

__all__ = ["FusedBatchNormalization", "use_fused_batchnorm"]


@keras.saving.register_keras_serializable(package="mammo", name="FusedBatchNormalization")
class BatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose TensorFlow training step is one fused kernel.

    Takes exactly the arguments of ``keras.layers.BatchNormalization``. The class keeps Keras'
    class name on purpose: Keras files a layer's weights under its snake-cased class name, so
    weights saved with either class load into the other (a network class rebuilt from its
    config has plain BatchNorms); its config is registered as
    ``mammo>FusedBatchNormalization``. Exported as :data:`FusedBatchNormalization`.
    """

    def _fusable(self, inputs: Any, training: Any, mask: Any) -> bool:
        if keras.backend.backend() != "tensorflow" or not training or not self.trainable:
            return False
        if mask is not None or self.renorm or getattr(self, "synchronized", False):
            return False
        shape = inputs.shape
        if len(shape) != 4 or self.axis not in (-1, 3):
            return False
        return keras.backend.standardize_dtype(inputs.dtype) in ("float32", "bfloat16")

    def call(self, inputs, training=None, mask=None):
        """Normalises ``inputs``; see the module docstring for when the fused kernel runs."""
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones((channels,))
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros((channels,))
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, is_training=True, data_format="NHWC"
        )
        n = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, tf.float32)
        variance = variance * tf.maximum(n - 1.0, 0.0) / tf.maximum(n, 1.0)
        momentum = self.momentum
        self.moving_mean.assign(
            tf.cast(self.moving_mean, tf.float32) * momentum + mean * (1.0 - momentum)
        )
        self.moving_variance.assign(
            tf.cast(self.moving_variance, tf.float32) * momentum + variance * (1.0 - momentum)
        )
        return tf.cast(outputs, self.compute_dtype)


FusedBatchNormalization = BatchNormalization


def use_fused_batchnorm(model: keras.Model) -> int:
    """Switch every plain ``keras.layers.BatchNormalization`` of ``model`` to the fused class.

    In place, nested models included; weights, names, configs and the graph are unchanged
    (the fused class only adds a code path). Call it before the model is compiled or traced.

    Returns:
        How many layers were switched.
    """
    switched = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if type(layer) is keras.layers.BatchNormalization:
            layer.__class__ = FusedBatchNormalization
            switched += 1
    return switched
