"""Build a Keras 3 model from an ONNX file's graph and weights (no onnxruntime, no download).

Only the operators that the packaged convolutional detectors use are supported (``Conv``
including depthwise, ``ConvTranspose``, ``BatchNormalization``, ``Relu``, ``Sigmoid``, ``Add``);
anything else is refused by name, so a new model file fails loudly instead of running wrong.

ONNX is channels-first (NCHW); the Keras model is channels-last (NHWC), which every backend runs
well on the CPU and the GPU. Weights are transposed once here. ONNX pads a stride-2 convolution
symmetrically, where Keras' ``"same"`` puts the odd pixel at the bottom/right, so explicit
padding is kept wherever the two would differ.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

SUPPORTED = ("Conv", "ConvTranspose", "BatchNormalization", "Relu", "Sigmoid", "Add")


def _attributes(node) -> dict:
    from onnx import helper

    return {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}


def _conv(keras, attrs: dict, weight: np.ndarray, bias: np.ndarray | None, name: str, tensor):
    """An ONNX ``Conv`` (OIHW weights) as Keras layers on ``tensor`` (NHWC)."""
    out_channels, in_per_group, kernel_h, kernel_w = weight.shape
    groups = int(attrs.get("group", 1))
    strides = tuple(attrs.get("strides", (1, 1)))
    top, left, bottom, right = attrs.get("pads", (0, 0, 0, 0))
    if tuple(attrs.get("dilations", (1, 1))) != (1, 1):
        raise ValueError(f"{name}: dilated convolutions are not supported")
    same = strides == (1, 1) and (top, left, bottom, right) == ((kernel_h - 1) // 2, (kernel_w - 1) // 2) * 2 \
        and kernel_h % 2 == 1 and kernel_w % 2 == 1
    if not same and any((top, left, bottom, right)):
        tensor = keras.layers.ZeroPadding2D(((top, bottom), (left, right)), name=f"{name}_pad")(tensor)
    padding = "same" if same else "valid"
    use_bias = bias is not None
    if groups == 1:
        layer = keras.layers.Conv2D(out_channels, (kernel_h, kernel_w), strides, padding, use_bias=use_bias,
                                    name=name)
        kernel = weight.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    elif groups == out_channels and in_per_group == 1:
        layer = keras.layers.DepthwiseConv2D((kernel_h, kernel_w), strides, padding, use_bias=use_bias, name=name)
        kernel = weight.transpose(2, 3, 0, 1)  # (C, 1, H, W) -> (H, W, C, 1)
    else:
        raise ValueError(f"{name}: grouped convolution with {groups} groups is not supported")
    output = layer(tensor)
    layer.set_weights([kernel, bias] if use_bias else [kernel])
    return output


def _conv_transpose(keras, attrs: dict, weight: np.ndarray, bias: np.ndarray | None, name: str, tensor):
    """An ONNX ``ConvTranspose`` without padding (IOHW weights)."""
    _, out_channels, kernel_h, kernel_w = weight.shape
    if any(attrs.get("pads", (0, 0, 0, 0))) or int(attrs.get("group", 1)) != 1 or any(attrs.get("output_padding", ())):
        raise ValueError(f"{name}: only unpadded, ungrouped ConvTranspose is supported")
    layer = keras.layers.Conv2DTranspose(out_channels, (kernel_h, kernel_w), tuple(attrs.get("strides", (1, 1))),
                                         "valid", use_bias=bias is not None, name=name)
    output = layer(tensor)
    kernel = weight.transpose(2, 3, 1, 0)  # (in, out, H, W) -> (H, W, out, in)
    layer.set_weights([kernel, bias] if bias is not None else [kernel])
    return output


def keras_model_from_onnx(path: str | Path, name: str | None = None):
    """A Keras functional model (NHWC in, NHWC out) equal to the ONNX graph at ``path``.

    Spatial dimensions are left free, so the model runs on any frame size the network's strides
    allow. Outputs keep the ONNX graph's output order.
    """
    import keras
    from onnx import numpy_helper

    from extractor.models.model_files import read_onnx

    graph = read_onnx(Path(path)).graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    unknown = sorted({node.op_type for node in graph.node} - set(SUPPORTED))
    if unknown:
        raise ValueError(f"{path}: ONNX operators {unknown} are not supported by the Keras converter")
    data_inputs = [i for i in graph.input if i.name not in weights]
    if len(data_inputs) != 1:
        raise ValueError(f"{path}: expected one image input, found {[i.name for i in data_inputs]}")
    channels = data_inputs[0].type.tensor_type.shape.dim[1].dim_value
    image = keras.Input((None, None, channels), name="image")
    tensors = {data_inputs[0].name: image}
    for index, node in enumerate(graph.node):
        attrs = _attributes(node)
        layer_name = f"{node.op_type.lower()}_{index}"
        inputs = [tensors.get(i) for i in node.input]
        if node.op_type == "Conv":
            bias = weights[node.input[2]] if len(node.input) > 2 else None
            out = _conv(keras, attrs, weights[node.input[1]], bias, layer_name, inputs[0])
        elif node.op_type == "ConvTranspose":
            bias = weights[node.input[2]] if len(node.input) > 2 else None
            out = _conv_transpose(keras, attrs, weights[node.input[1]], bias, layer_name, inputs[0])
        elif node.op_type == "BatchNormalization":
            layer = keras.layers.BatchNormalization(epsilon=float(attrs.get("epsilon", 1e-5)), name=layer_name)
            out = layer(inputs[0])
            layer.set_weights([weights[n] for n in node.input[1:5]])
        elif node.op_type == "Relu":
            out = keras.layers.ReLU(name=layer_name)(inputs[0])
        elif node.op_type == "Sigmoid":
            out = keras.layers.Activation("sigmoid", name=layer_name)(inputs[0])
        else:  # Add
            out = keras.layers.Add(name=layer_name)(inputs)
        tensors[node.output[0]] = out
    outputs = [tensors[o.name] for o in graph.output]
    return keras.Model(image, outputs, name=name or Path(path).stem)
