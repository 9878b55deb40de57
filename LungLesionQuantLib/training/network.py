"""The network of every stage, and its export to the ONNX file that inference runs."""
from __future__ import annotations

import json
from pathlib import Path

import onnx
import torch
from monai.networks.nets import UNet

CHANNELS = (16, 32, 64, 128, 256)


def build_unet(in_channels: int, out_channels: int) -> torch.nn.Module:
    """A light 2D U-Net (MONAI): five levels, 16 base channels, instance norm, ~0.7 M weights.

    Narrow enough to train on two CPU cores in minutes and to run a 255-slice CT in seconds.
    """
    return UNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels,
                channels=CHANNELS, strides=(2, 2, 2, 2), num_res_units=0)


def export_onnx(model: torch.nn.Module, path: Path, in_channels: int, size: int, metadata: dict) -> None:
    """Write the model as ONNX (input ``image`` N×C×S×S, output ``logits``), metadata inside."""
    model = model.eval()
    dummy = torch.zeros(2, in_channels, size, size)
    tmp = path.with_name(path.name + ".partial")
    torch.onnx.export(model, (dummy,), str(tmp), input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    proto = onnx.load(str(tmp))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    onnx.save(proto, str(tmp))
    tmp.replace(path)


def unet_from_onnx(path: Path) -> torch.nn.Module:
    """The eager PyTorch network of an exported stage, weights read back from its ONNX file.

    Convolution weights keep their PyTorch names in the ONNX graph; PReLU slopes are renamed
    by the exporter, so they are matched by order (graph order equals forward order here).
    """
    import numpy as np
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    inputs = proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    model = build_unet(inputs, len(json.loads(meta["llq_classes"])))
    weights = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    state = model.state_dict()
    slopes = [weights[node.input[1]] for node in proto.graph.node if node.op_type == "PRelu"]
    prelu_keys = [k for k in state if k.endswith("adn.A.weight")]
    if len(slopes) != len(prelu_keys):
        raise ValueError(f"{path}: {len(slopes)} PReLU slopes in the graph, {len(prelu_keys)} in the network")
    for key, slope in zip(prelu_keys, slopes):
        state[key] = torch.from_numpy(np.array(slope).reshape(state[key].shape))
    for key in state:
        if key not in prelu_keys:
            state[key] = torch.from_numpy(np.array(weights[key]))
    model.load_state_dict(state)
    return model.eval()
