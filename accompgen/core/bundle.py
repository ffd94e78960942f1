"""The bundle: a directory of ONNX graphs described by manifest.yaml, written by export and read by the bridge.

No torch here: the bridge validates bundles with this module alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from accompgen.core.decoding import SamplingOptions
from accompgen.core.errors import UserError
from accompgen.core.files import write_text_atomic
from accompgen.core.pipeline import StagePlan
from accompgen.core.tokens import STAGE_NAMES, TokenLayout

FORMAT_VERSION = 2  # 2: a stage's window, prompt and pattern sit together under `plan`
MANIFEST = "manifest.yaml"
PRECISIONS = ("fp32", "fp16")
CACHE_LAYOUTS = ("inplace", "growing")
QUANTIZATIONS = ("none", "int8", "int4")  # of the stages' matrix products; other weights then stored in fp16


class BundleError(UserError):
    """A bundle that cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class GraphSpec:
    file: str
    sha256: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class StageSpec:
    graph: GraphSpec
    layers: int
    heads: int
    head_dim: int
    cache_dtype: str  # float32, or float16 in fp16 bundles: the cache stays in the graph's own precision
    cache: str  # inplace (one buffer of fixed capacity, bound as past and present) or growing (CACHE_LAYOUTS)
    plan: StagePlan  # the stage's window, prompt and codebook pattern, as it was trained
    slots: int  # W: ids per position of input_ids (batch, sequence[, W]); 1 for flat


@dataclass(frozen=True)
class AudioSpec:
    semantic_sample_rate: int  # the semantic encoder's input rate
    semantic_hop: int  # samples per semantic frame
    semantic_context: int  # extra samples on each side of a chunk (accompgen.core.semantic_framing)
    semantic_chunk_frames: int  # frames per semantic-encoder call, so attention never spans a whole song
    codec_sample_rate: int  # the codec decoder's output rate
    codec_hop: int  # samples per acoustic frame
    codec_min_frames: int  # the decoder's shortest input: shorter codes are padded, their audio trimmed


@dataclass(frozen=True)
class SamplingDefaults:
    """The sampling settings a bundle answers with when a request leaves them out."""

    temperature: float
    top_k: int
    top_p: float
    cfg_scale: float

    @classmethod
    def of(cls, options: SamplingOptions) -> SamplingDefaults:
        return cls(**{f.name: getattr(options, f.name) for f in fields(cls)})

    def options(self, seed: int, variations: int) -> SamplingOptions:
        return SamplingOptions(**asdict(self), seed=seed, variations=variations)


@dataclass(frozen=True)
class Manifest:
    model: str  # the config the bundle was exported from
    precision: str  # fp32 or fp16: the arithmetic of the stage graphs
    quantization: str  # none, int8 or int4 (weight-only, accompgen_export.compact)
    tokens: TokenLayout
    audio: AudioSpec
    sampling: SamplingDefaults
    semantic_encoder: GraphSpec
    stages: dict[str, StageSpec]  # keyed by STAGE_NAMES
    codec_decoder: GraphSpec
    accompgen_version: str
    source: dict[str, Any] = field(default_factory=dict)  # what the bundle was exported from
    format_version: int = FORMAT_VERSION

    def graphs(self) -> dict[str, GraphSpec]:
        """Every graph by its manifest name."""
        return {
            "semantic_encoder": self.semantic_encoder,
            **{f"stage_{name}": stage.graph for name, stage in self.stages.items()},
            "codec_decoder": self.codec_decoder,
        }

    def to_dict(self) -> dict[str, Any]:
        def graph(spec: GraphSpec) -> dict[str, Any]:
            return {**asdict(spec), "inputs": list(spec.inputs), "outputs": list(spec.outputs)}

        return {
            "format_version": self.format_version,
            "accompgen_version": self.accompgen_version,
            "model": self.model,
            "precision": self.precision,
            "quantization": self.quantization,
            "tokens": self.tokens.to_dict(),
            "audio": asdict(self.audio),
            "sampling": asdict(self.sampling),
            "graphs": {
                "semantic_encoder": graph(self.semantic_encoder),
                **{
                    f"stage_{name}": {**graph(s.graph), **{k: v for k, v in asdict(s).items() if k != "graph"}}
                    for name, s in self.stages.items()
                },
                "codec_decoder": graph(self.codec_decoder),
            },
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        root = _Section(data, MANIFEST)
        version = root.get("format_version")
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{MANIFEST} has format_version {version}; this AccompGen reads version {FORMAT_VERSION}: "
                "export the bundle again with this version"
            )
        precision = root.get("precision")
        if precision not in PRECISIONS:
            raise BundleError(f"{MANIFEST}: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        quantization = root.get("quantization")
        if quantization not in QUANTIZATIONS:
            raise BundleError(
                f"{MANIFEST}: quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}"
            )
        graphs = root.section("graphs")
        try:
            tokens = TokenLayout.from_dict(root.get("tokens"))
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"{MANIFEST}: bad tokens section: {err}") from err
        return cls(
            model=str(root.get("model")),
            precision=precision,
            quantization=quantization,
            tokens=tokens,
            audio=root.section("audio").build(AudioSpec),
            sampling=root.section("sampling").build(SamplingDefaults),
            semantic_encoder=graphs.section("semantic_encoder").graph(),
            stages={name: graphs.section(f"stage_{name}").stage() for name in STAGE_NAMES},
            codec_decoder=graphs.section("codec_decoder").graph(),
            accompgen_version=str(root.get("accompgen_version")),
            source=dict(root.data.get("source") or {}),
            format_version=version,
        )


class _Section:
    """A mapping read from the manifest that names the full key path of anything missing."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise BundleError(f"{path} must be a mapping")
        self.data, self.path = data, path

    def get(self, key: str) -> Any:
        if key not in self.data:
            raise BundleError(f"{MANIFEST} lacks the key {self._name(key)}: export the bundle again")
        return self.data[key]

    def section(self, key: str) -> _Section:
        return _Section(self.get(key), self._name(key))

    def build(self, kind: type) -> Any:
        return kind(**{f.name: self.get(f.name) for f in fields(kind)})

    def graph(self) -> GraphSpec:
        return GraphSpec(
            file=str(self.get("file")),
            sha256=str(self.get("sha256")),
            inputs=tuple(self.get("inputs")),
            outputs=tuple(self.get("outputs")),
        )

    def stage(self) -> StageSpec:
        names = [f.name for f in fields(StageSpec) if f.name not in ("graph", "plan")]
        try:
            plan = self.section("plan").build(StagePlan)
        except ValueError as err:
            raise BundleError(f"{MANIFEST}: bad {self._name('plan')}: {err}") from err
        spec = StageSpec(graph=self.graph(), plan=plan, **{name: self.get(name) for name in names})
        if spec.cache not in CACHE_LAYOUTS:
            raise BundleError(f"{MANIFEST}: {self._name('cache')} must be one of {', '.join(CACHE_LAYOUTS)}")
        return spec

    def _name(self, key: str) -> str:
        return key if self.path == MANIFEST else f"{self.path}.{key}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: Path, manifest: Manifest) -> None:
    write_text_atomic(directory / MANIFEST, yaml.safe_dump(manifest.to_dict(), sort_keys=False))


def set_sampling_defaults(directory: Path, changes: dict[str, Any]) -> Manifest:
    """Rewrite a bundle's default sampling settings (the graphs, and so their hashes, stay as they are)."""
    manifest = load_bundle(directory, check_hashes=False)
    manifest = replace(manifest, sampling=replace(manifest.sampling, **changes))
    write_manifest(directory, manifest)
    return manifest


def load_bundle(directory: str | Path, check_hashes: bool = True) -> Manifest:
    """Read and validate a bundle: the manifest, every graph file and (by default) their sha256."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{directory} holds no {MANIFEST}: point to a directory written by `accompgen export`")
    try:
        data = yaml.safe_load(manifest_path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise BundleError(f"{manifest_path} is not valid YAML ({err}): export the bundle again") from err
    except OSError as err:
        raise BundleError(f"cannot read {manifest_path}: {err.strerror}") from err
    manifest = Manifest.from_dict(data)
    for name, spec in manifest.graphs().items():
        path = directory / spec.file
        if not path.is_file():
            raise BundleError(f"the bundle lacks {spec.file} (graph {name}): export the bundle again")
        if check_hashes and sha256_file(path) != spec.sha256:
            raise BundleError(
                f"{path} does not match its sha256 in {MANIFEST}: the file is corrupt or was replaced; "
                "export the bundle again"
            )
    return manifest
