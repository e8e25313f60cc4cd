"""MTCNN's three networks (P-net, R-net, O-net) as Keras 3 models, with the weights that the
``mtcnn`` 1.0 package ships (``mtcnn/assets/weights/*.lz4``, MIT).

The package builds them as ``tf.keras`` subclass models, which only run on TensorFlow; these are
the same layers as functional Keras 3 models, so they run on any Keras backend (TensorFlow, JAX,
PyTorch) and on a GPU. The weight files are read with ``joblib`` (a dependency of ``mtcnn``)
without importing the package, which would import TensorFlow.
"""
from __future__ import annotations

from extractor.models.runners import package_file


def _weights(net: str) -> list:
    import joblib

    return joblib.load(package_file("mtcnn", f"assets/weights/{net}.lz4"))


def _conv_prelu(layers, tensor, filters: int, kernel: int, name: str):
    tensor = layers.Conv2D(filters, kernel, padding="valid", name=f"{name}_conv")(tensor)
    return layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(tensor)


def _dense_prelu(layers, tensor, units: int, name: str):
    return layers.PReLU(name=f"{name}_prelu")(layers.Dense(units, name=f"{name}_dense")(tensor))


def _flatten_like_caffe(layers, tensor):
    """The original nets were trained in Caffe (channels first, then width-major): the package
    swaps height and width before flattening so the dense weights line up; so do we."""
    return layers.Flatten()(layers.Permute((2, 1, 3))(tensor))


def build_pnet():
    """Fully convolutional proposal net: any image size in, per 12x12 cell (stride 2) a box
    regression (4) and face/not-face softmax (2) out."""
    import keras

    layers = keras.layers
    image = keras.Input((None, None, 3))
    x = _conv_prelu(layers, image, 10, 3, "p1")
    x = layers.MaxPooling2D(2, 2, padding="same")(x)
    x = _conv_prelu(layers, x, 16, 3, "p2")
    x = _conv_prelu(layers, x, 32, 3, "p3")
    boxes = layers.Conv2D(4, 1, name="p4_boxes")(x)
    scores = layers.Conv2D(2, 1, activation="softmax", name="p4_scores")(x)
    return _with_weights(keras.Model(image, [boxes, scores], name="mtcnn_pnet"), "pnet")


def build_rnet():
    """Refinement net: 24x24 crops in, box offsets (4) and scores (2) out."""
    import keras

    layers = keras.layers
    image = keras.Input((24, 24, 3))
    x = _conv_prelu(layers, image, 28, 3, "r1")
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    x = _conv_prelu(layers, x, 48, 3, "r2")
    x = layers.MaxPooling2D(3, 2, padding="valid")(x)
    x = _conv_prelu(layers, x, 64, 2, "r3")
    x = _dense_prelu(layers, _flatten_like_caffe(layers, x), 128, "r4")
    boxes = layers.Dense(4, name="r5_boxes")(x)
    scores = layers.Dense(2, activation="softmax", name="r5_scores")(x)
    return _with_weights(keras.Model(image, [boxes, scores], name="mtcnn_rnet"), "rnet")


def build_onet():
    """Output net: 48x48 crops in, box offsets (4), five key points (x1..x5, y1..y5 relative to
    the box) and scores (2) out."""
    import keras

    layers = keras.layers
    image = keras.Input((48, 48, 3))
    x = _conv_prelu(layers, image, 32, 3, "o1")
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    x = _conv_prelu(layers, x, 64, 3, "o2")
    x = layers.MaxPooling2D(3, 2, padding="valid")(x)
    x = _conv_prelu(layers, x, 64, 3, "o3")
    x = layers.MaxPooling2D(2, 2, padding="same")(x)
    x = _conv_prelu(layers, x, 128, 2, "o4")
    x = _dense_prelu(layers, _flatten_like_caffe(layers, x), 256, "o5")
    boxes = layers.Dense(4, name="o6_boxes")(x)
    points = layers.Dense(10, name="o6_points")(x)
    scores = layers.Dense(2, activation="softmax", name="o6_scores")(x)
    return _with_weights(keras.Model(image, [boxes, points, scores], name="mtcnn_onet"), "onet")


def _with_weights(model, net: str):
    """Load the package's weight list, which is in layer order (kernel, bias, PReLU alpha...)."""
    weights = _weights(net)
    expected = [tuple(w.shape) for w in model.weights]
    if [tuple(w.shape) for w in weights] != expected:
        raise RuntimeError(f"mtcnn {net} weights do not match the network ({len(weights)} arrays)")
    model.set_weights(weights)
    return model
