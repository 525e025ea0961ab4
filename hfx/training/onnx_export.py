"""Write a fine-tuned model as ONNX and int8 ONNX (the export stage). Running any format is the serving half's
job (hfx.serving.loaded_model), so what export measures is what predict and serve run.
"""

from pathlib import Path

import onnx
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model

from hfx.serving.folder import ACTIVATION_RANGES


class LogitsOnly(torch.nn.Module):
    """Positional inputs in the processor's order, the named outputs out: a clean graph signature for ONNX."""

    def __init__(self, model, input_names, outputs):
        super().__init__()
        self.model, self.input_names, self.outputs = model, input_names, outputs

    def forward(self, *inputs):
        output = self.model(**dict(zip(self.input_names, inputs)))
        return tuple(getattr(output, name) for name in self.outputs)


def export_onnx(
    model, sample: dict, input_axes: dict, path: Path, logits_axes: dict, outputs: tuple[str, ...] = ("logits",)
) -> None:
    """`model` must use eager attention: the TorchScript exporter's graph of it matches onnxruntime's
    transformer fusion patterns, which an SDPA graph does not. `sample`: named inputs to trace with, in the
    model's input order; `input_axes`, `logits_axes`: their dynamic axes and the outputs'; `outputs`: the model
    outputs written, by name (question answering: start and end logits)."""
    names = list(sample)
    axes = input_axes | dict.fromkeys(outputs, logits_axes)
    wrapper = LogitsOnly(model, names, outputs).eval()  # export restores the wrapper's mode onto the model
    torch.onnx.export(
        wrapper,
        tuple(sample.values()),
        str(path),
        input_names=names,
        output_names=list(outputs),
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    onnx.checker.check_model(str(path))


class Calibration(CalibrationDataReader):
    """Input batches for static quantization to measure activation ranges on."""

    def __init__(self, batches: list[dict]):
        self.batches = iter(batches)

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def quantize(
    onnx_path: Path, config, out_path: Path, op_types: list[str] | None = None, calibration: list[dict] | None = None
) -> None:
    """Fuse attention/LayerNorm/GELU where onnxruntime knows the architecture, then int8 weights per channel
    (of every op onnxruntime can quantize, or only `op_types`). With `calibration` batches, activations too
    (static QDQ, ranges from those batches): what a CNN needs, since dynamic int8 turns a convolution into a
    ConvInteger that runs slower than float."""
    source = onnx_path
    if config.model_type in MODEL_TYPES:
        fused = optimize_model(
            str(onnx_path),
            model_type=config.model_type,
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
        )
        source = onnx_path.with_name("model_fused.onnx")
        fused.save_model_to_file(str(source))
    if calibration is not None:
        # uint8 activations and int8 weights: the pairing onnxruntime's x86 kernels run fastest.
        quantize_static(
            str(source),
            str(out_path),
            Calibration(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=op_types,
            calibrate_method=CalibrationMethod.MinMax,
        )
    else:
        quantize_dynamic(
            str(source),
            str(out_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=op_types,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    if source != onnx_path:
        source.unlink()
    # Dynamic int8 measures each activation's range over the whole input tensor of a call: the serving half must
    # run such a model one row per call, or an answer would depend on what shares its batch.
    quantized = onnx.load(str(out_path))
    onnx.helper.set_model_props(quantized, {ACTIVATION_RANGES: "fixed" if calibration is not None else "per_call"})
    onnx.save(quantized, str(out_path))


def batches(rows, collator, input_names, batch_size):
    """Tokenized rows (with `labels`) as numpy batches padded by the task's collator: (inputs, labels). Static int8
    measures its activation ranges on these."""
    for start in range(0, len(rows), batch_size):
        chunk = rows.select(range(start, min(start + batch_size, len(rows))))
        batch = collator([{k: row[k] for k in [*input_names, "labels"]} for row in chunk])
        yield {k: batch[k].numpy() for k in input_names}, batch["labels"].numpy()
