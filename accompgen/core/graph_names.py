"""Input and output names of the exported graphs, shared by the exporter and the runtime (no torch).

Stage graphs follow the optimum / onnxruntime-genai convention for explicit KV caches.
"""

INPUT_IDS = "input_ids"  # (batch_size, sequence_length) int64, or (..., slots) for the delay pattern
TICKS = "ticks"  # (total_sequence_length,) int64: the tick of every position, cached ones first
LOGITS = "logits"  # (batch_size, vocab_size) float32: the last position only

AUDIO = "audio"  # (batch_size, samples) float32
SEMANTIC_IDS = "semantic_ids"  # (batch_size, frames) int64, cluster ids in [0, K)
CODES = "codes"  # (batch_size, codebooks, frames) int64, entries in [0, codebook_size)


def past_key(layer: int) -> str:
    return f"past_key_values.{layer}.key"


def past_value(layer: int) -> str:
    return f"past_key_values.{layer}.value"


def present_key(layer: int) -> str:
    return f"present.{layer}.key"


def present_value(layer: int) -> str:
    return f"present.{layer}.value"


def stage_inputs(n_layers: int) -> list[str]:
    return [INPUT_IDS, TICKS] + [name for i in range(n_layers) for name in (past_key(i), past_value(i))]


def stage_outputs(n_layers: int) -> list[str]:
    return [LOGITS] + [name for i in range(n_layers) for name in (present_key(i), present_value(i))]
