"""What a trained model is used through (Keras 3; importing this package imports no Keras).

- :mod:`~mammo_common.keras.deployment.model_folder`: self-describing model folders
  (``model.keras``, model card, history, curves) and their loading with refusals.
- :mod:`~mammo_common.keras.deployment.optimize`: inference-only rewrites (BatchNorm folding,
  bfloat16 compute).
- :mod:`~mammo_common.keras.deployment.inference`: probability maps from one model or an
  ensemble at the images' own size.
- :mod:`~mammo_common.keras.deployment.export`: a model folder as a TensorFlow SavedModel that
  takes the raw image.
"""
