import numpy as np
import onnx
import pytest
import torch

from accompgen.apps.verify import verify_bundle
from accompgen.core import graph_names
from accompgen.core.bundle import load_bundle
from accompgen.core.decoding import SamplingOptions, decode_window, variation_rngs
from accompgen.core.semantic_framing import semantic_chunk
from accompgen.core.synth import sung_phrase
from accompgen.core.tokens import build_window
from accompgen.model.torch_inference import TorchInference
from accompgen_bridge.ort_inference import OrtInference
from accompgen_bridge.providers import choose_device, open_session

CPU = choose_device("cpu")


def stage_session(bundle, name):
    manifest = load_bundle(bundle)
    return open_session(bundle / manifest.stages[name].graph.file, CPU), manifest.stages[name]


@pytest.mark.parametrize("name", ["semantic", "coarse", "fine"])
@pytest.mark.parametrize("batch", [1, 2])
def test_cached_steps_match_torch(tiny_bundle, tiny_parts, name, batch):
    """Prefill with an empty past, longer than the export example, then 32 cached steps."""
    session, spec = stage_session(tiny_bundle, name)
    ort_inference, torch_inference = OrtInference(session, spec, CPU, 72), TorchInference(tiny_parts.stages[name])
    rng = np.random.default_rng(batch)
    ids = rng.integers(0, tiny_parts.config.tokens.vocab_size, (batch, 72))
    ticks = np.sort(rng.integers(0, 150, 72))
    ends = [40, *range(41, 73)]
    for start, end in zip([0, *ends], ends, strict=False):
        ours = ort_inference.logits(ids[:, start:end], ticks[:end])
        reference = torch_inference.logits(ids[:, start:end], ticks[:end])
        np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_ort_decoding_gives_the_torch_tokens(tiny_bundle, tiny_parts, temperature):
    layout = tiny_parts.config.tokens
    for name, stage in layout.stages.items():
        session, spec = stage_session(tiny_bundle, name)
        rng = np.random.default_rng(0)
        conditions = {t.name: rng.integers(0, t.streams[0].size, (2, t.width, 15)) for t in stage.condition}
        window = build_window(stage, conditions, 10)
        options = SamplingOptions(temperature=temperature, seed=5, variations=2)
        ours = decode_window(
            OrtInference(session, spec, CPU, len(window.ticks)), window, options, variation_rngs(options)
        )
        reference = decode_window(TorchInference(tiny_parts.stages[name]), window, options, variation_rngs(options))
        np.testing.assert_array_equal(ours, reference)


def test_stage_graphs_have_no_shape_of_the_export_example(tiny_bundle):
    manifest = load_bundle(tiny_bundle)
    for spec in manifest.stages.values():
        graph = onnx.load(tiny_bundle / spec.graph.file, load_external_data=False).graph
        dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
        assert dims[graph_names.INPUT_IDS] == ["batch_size", "sequence_length"]
        assert dims[graph_names.TICKS] == ["total_sequence_length"]
        cache_length = "max_sequence_length" if spec.cache == "inplace" else "past_sequence_length"
        assert dims[graph_names.past_key(0)] == ["batch_size", spec.heads, cache_length, spec.head_dim]
    # and they run at sizes never seen at export: batch 3, 7 new tokens, empty past
    session, spec = stage_session(tiny_bundle, "coarse")
    logits = OrtInference(session, spec, CPU, 7).logits(np.zeros((3, 7), np.int64), np.arange(7))
    assert logits.shape == (3, manifest.tokens.vocab_size)


def test_semantic_encoder_matches_torch_at_unseen_lengths(tiny_bundle, tiny_parts):
    manifest = load_bundle(tiny_bundle)
    session = open_session(tiny_bundle / manifest.semantic_encoder.file, CPU)
    phrase = sung_phrase(3.0, 16000, seed=3)
    for frames in (1, 7, 123):
        audio = np.stack([semantic_chunk(phrase, 0, frames)] * 3)
        ours = session.run(None, {graph_names.AUDIO: audio})[0]
        with torch.no_grad():
            reference = tiny_parts.semantic(torch.from_numpy(audio)).numpy()
        assert ours.shape == (3, frames)
        np.testing.assert_array_equal(ours, reference)


@pytest.mark.parametrize(("codebooks", "frames"), [(8, 7), (8, 123), (4, 30)])
def test_codec_decoder_matches_torch(tiny_bundle, tiny_parts, codebooks, frames):
    manifest = load_bundle(tiny_bundle)
    assert manifest.audio.codec_min_frames == 7
    session = open_session(tiny_bundle / manifest.codec_decoder.file, CPU)
    codes = np.random.default_rng(frames).integers(0, 32, (2, codebooks, frames))
    ours = session.run(None, {graph_names.CODES: codes})[0]
    with torch.no_grad():
        reference = tiny_parts.codec.decode(torch.from_numpy(codes)).numpy()
    assert ours.shape == (2, frames * manifest.audio.codec_hop)
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)


def test_fp16_bundle_keeps_the_argmax(tmp_path, tiny_parts):
    from accompgen_export.bundle_writer import ExportSettings, write_bundle

    write_bundle(tiny_parts, tmp_path / "fp16", ExportSettings(fp16=True))
    manifest = load_bundle(tmp_path / "fp16")
    assert manifest.precision == "fp16"
    assert {spec.cache_dtype for spec in manifest.stages.values()} == {"float16"}
    checks = verify_bundle(tmp_path / "fp16", tiny_parts, device="cpu")
    stage_checks = [c for c in checks if c.graph.startswith("stage_")]
    assert all(c.metric == "mean total variation" and c.passed for c in stage_checks)


def test_a_delay_pattern_bundle_matches_torch(tmp_path, tiny_delay_config):
    """Stage graphs of the delay pattern take (batch, sequence, slots) ids; the whole pipeline agrees with torch."""
    from accompgen.core.pipeline import generate_codes
    from accompgen.model.model_dir import random_parts
    from accompgen_bridge.engine import Engine
    from accompgen_export.bundle_writer import write_bundle

    parts = random_parts(tiny_delay_config, seed=2)
    write_bundle(parts, tmp_path / "delay")
    manifest = load_bundle(tmp_path / "delay")
    assert [manifest.stages[n].slots for n in ("semantic", "coarse", "fine")] == [1, 4, 4]
    assert all(c.passed for c in verify_bundle(tmp_path / "delay", parts, device="cpu"))
    engine = Engine(tmp_path / "delay", "cpu")
    plans = {name: spec.plan for name, spec in manifest.stages.items()}
    vocal = np.random.default_rng(0).integers(0, 16, 130)
    options = SamplingOptions(seed=4, variations=2)
    ours = generate_codes(manifest.tokens, plans, vocal, 2.6, {n: engine._inference_factory(n) for n in plans}, options)
    torch_inference = {n: (lambda capacity, m=parts.stages[n]: TorchInference(m)) for n in plans}
    np.testing.assert_array_equal(ours, generate_codes(manifest.tokens, plans, vocal, 2.6, torch_inference, options))
    assert ours.shape == (2, 8, 195)


def test_attention_reads_the_cache_once_per_step(tiny_bundle, tiny_parts, tmp_path):
    """In place: one GroupQueryAttention per layer. Growing: q @ k^T exports as one MatMul that onnxruntime fuses
    with the transpose (FusedMatMul); SDPA exported as Reshape -> Transpose -> Reshape, copying the whole key cache
    again every step."""
    import onnxruntime as ort

    from accompgen_export.bundle_writer import ExportSettings, write_stage

    spec = load_bundle(tiny_bundle).stages["coarse"]
    inplace_ops = [node.op_type for node in onnx.load(tiny_bundle / spec.graph.file).graph.node]
    assert inplace_ops.count("GroupQueryAttention") == spec.layers
    growing = tmp_path / "growing.onnx"
    stage = tiny_parts.config.tokens.stages["coarse"]
    write_stage(tiny_parts.stages["coarse"], stage, growing, ExportSettings(cache="growing"))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(growing), options, providers=["CPUExecutionProvider"])
    ops = [node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node]
    assert ops.count("FusedMatMul") >= spec.layers


def test_the_growing_cache_graphs_stay_available_and_agree(tmp_path, tiny_parts, tiny_bundle):
    """For providers without GroupQueryAttention: the same model, the cache grown by copying."""
    from accompgen_export.bundle_writer import ExportSettings, write_bundle

    write_bundle(tiny_parts, tmp_path / "growing", ExportSettings(cache="growing"))
    growing, inplace = load_bundle(tmp_path / "growing"), load_bundle(tiny_bundle)
    assert {s.cache for s in growing.stages.values()} == {"growing"}
    assert {s.cache for s in inplace.stages.values()} == {"inplace"}
    assert all(c.passed for c in verify_bundle(tmp_path / "growing", tiny_parts, device="cpu"))
    ops = {n.op_type for n in onnx.load(tmp_path / "growing" / "stage_coarse.onnx").graph.node}
    assert "GroupQueryAttention" not in ops and "Concat" in ops


def test_the_inplace_cache_is_one_buffer_written_where_the_step_lies(tiny_bundle):
    import onnxruntime as ort

    spec = load_bundle(tiny_bundle).stages["semantic"]
    session = open_session(tiny_bundle / spec.graph.file, CPU)
    run = OrtInference(session, spec, CPU, capacity=12)
    ids = np.random.default_rng(0).integers(3, 30, (2, 12))
    run.logits(ids[:, :8], np.arange(8))
    before = [np.array(value.numpy()) for value in run.past]
    buffers = [value.data_ptr() for value in run.past]
    run.logits(ids[:, 8:9], np.arange(9))
    after = [value.numpy() for value in run.past]
    assert [value.data_ptr() for value in run.past] == buffers  # no new buffer: written in place
    for old, new in zip(before, after, strict=True):
        assert old.shape == new.shape == (2, spec.heads, 12, spec.head_dim)
        np.testing.assert_array_equal(old[:, :, :8], new[:, :, :8])  # the past untouched
        assert not np.allclose(new[:, :, 8], 0)  # the step's keys and values at position 8
    assert isinstance(run.past[0], ort.OrtValue)
