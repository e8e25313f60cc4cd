"""MTCNN's three networks (P-net, R-net, O-net) as Keras 3 models, with the weights that the
``mtcnn`` 1.0 package ships (``mtcnn/assets/weights/*.lz4``, MIT).

The package builds them as ``tf.keras`` subclass models, which only run on TensorFlow; these are
the same layers as functional Keras 3 models, so they run on any Keras backend (TensorFlow, JAX,
PyTorch) and on a GPU. The weight files are read with ``joblib`` (a dependency of ``mtcnn``)
without importing the package, which would import TensorFlow.
"""
from __future__ import annotations

from extractor.models.model_files import package_file


def _weights(net: str) -> list:
    import joblib

    return joblib.load(package_file("mtcnn", f"assets/weights/{net}.lz4"))


def _trunk(layers, x, steps, prefix: str):
    """Convolutions with PReLU, ``("conv", filters, kernel)``, and max-pools, ``("pool", size,
    stride, padding)``, in order: the three nets differ only in these lists and their heads."""
    for number, (kind, *args) in enumerate(steps, start=1):
        if kind == "conv":
            filters, kernel = args
            x = layers.Conv2D(filters, kernel, padding="valid", name=f"{prefix}{number}_conv")(x)
            x = layers.PReLU(shared_axes=[1, 2], name=f"{prefix}{number}_prelu")(x)
        else:
            size, stride, padding = args
            x = layers.MaxPooling2D(size, stride, padding=padding, name=f"{prefix}{number}_pool")(x)
    return x


def build_pnet():
    """Fully convolutional proposal net: any image size in, per 12x12 cell (stride 2) a box
    regression (4) and face/not-face softmax (2) out."""
    import keras

    layers = keras.layers
    image = keras.Input((None, None, 3))
    x = _trunk(layers, image, [("conv", 10, 3), ("pool", 2, 2, "same"), ("conv", 16, 3), ("conv", 32, 3)], "p")
    boxes = layers.Conv2D(4, 1, name="p_boxes")(x)
    scores = layers.Conv2D(2, 1, activation="softmax", name="p_scores")(x)
    return _with_weights(keras.Model(image, [boxes, scores], name="mtcnn_pnet"), "pnet")


def _refinement_net(side: int, steps: list, units: int, head_sizes: tuple[int, ...], net: str):
    """R- and O-net: a ``side`` x ``side`` crop through the trunk, flattened as in Caffe (the
    original nets were trained channels first, so height and width are swapped before
    flattening, as the package does), a dense layer with PReLU, then linear heads and a softmax
    face/not-face score last."""
    import keras

    layers = keras.layers
    image = keras.Input((side, side, 3))
    x = layers.Flatten()(layers.Permute((2, 1, 3))(_trunk(layers, image, steps, net[0])))
    x = layers.PReLU(name=f"{net[0]}_dense_prelu")(layers.Dense(units, name=f"{net[0]}_dense")(x))
    heads = [layers.Dense(size, name=f"{net[0]}_head{size}")(x) for size in head_sizes]
    heads.append(layers.Dense(2, activation="softmax", name=f"{net[0]}_scores")(x))
    return _with_weights(keras.Model(image, heads, name=f"mtcnn_{net}"), net)


def build_rnet():
    """Refinement net: 24x24 crops in, box offsets (4) and scores (2) out."""
    return _refinement_net(24, [("conv", 28, 3), ("pool", 3, 2, "same"), ("conv", 48, 3), ("pool", 3, 2, "valid"),
                                ("conv", 64, 2)], 128, (4,), "rnet")


def build_onet():
    """Output net: 48x48 crops in, box offsets (4), five key points (x1..x5, y1..y5 relative to
    the box) and scores (2) out."""
    return _refinement_net(48, [("conv", 32, 3), ("pool", 3, 2, "same"), ("conv", 64, 3), ("pool", 3, 2, "valid"),
                                ("conv", 64, 3), ("pool", 2, 2, "same"), ("conv", 128, 2)], 256, (4, 10), "onet")


def _with_weights(model, net: str):
    """Load the package's weight list, which is in layer order (kernel, bias, PReLU alpha...)."""
    weights = _weights(net)
    expected = [tuple(w.shape) for w in model.weights]
    if [tuple(w.shape) for w in weights] != expected:
        raise RuntimeError(f"mtcnn {net} weights do not match the network ({len(weights)} arrays)")
    model.set_weights(weights)
    return model
