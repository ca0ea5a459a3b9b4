"""What every stage trains with (Keras 3; importing this package imports no Keras).

- :mod:`~mammo_common.keras.training.data`: ``PyDataset`` batches over array-likes, and the
  image normalisation that prediction shares.
- :mod:`~mammo_common.keras.training.augment`: paired geometric and intensity augmentation.
- :mod:`~mammo_common.keras.training.losses` and :mod:`~mammo_common.keras.training.metrics`:
  the segmentation losses and Keras metrics.
- :mod:`~mammo_common.keras.training.harness`: :func:`fit_resumable`, best-weights
  checkpointing, exact resume, the history file.
- :mod:`~mammo_common.keras.training.curves`: training curves in DVCLive's format.
- :mod:`~mammo_common.keras.training.batchnorm_calibration` and
  :mod:`~mammo_common.keras.training.fused_batchnorm`: BatchNorm statistics re-estimated on
  whole images, and TensorFlow's fused BatchNorm kernel while training.
- :mod:`~mammo_common.keras.training.distribute`: ``tf.distribute`` strategies.
"""
