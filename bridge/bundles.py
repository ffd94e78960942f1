"""The bundles a bridge can serve without being told a path: the ones installed with AccompGen and those in
STATE_DIR/bundles (a DAW's settings offer them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import accompgen
from accompgen.core.bundle import MANIFEST, BundleError, load_bundle

INSTALLED = Path(accompgen.__file__).parent / "bundles"  # the trained chorale bundle comes with the package


@dataclass(frozen=True)
class FoundBundle:
    name: str
    path: str
    summary: str  # "chorales, int8": the model and its weights; or why it cannot be served

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def bundle_folders(state_dir: Path) -> list[Path]:
    return [INSTALLED, state_dir / "bundles"]


def find_bundles(folders: list[Path]) -> list[FoundBundle]:
    """Every folder holding a manifest directly inside `folders`, in order, each named for what it holds (its
    graphs' hashes are not checked here: the bridge checks them when it loads one)."""
    found = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for candidate in sorted(p for p in folder.iterdir() if (p / MANIFEST).is_file()):
            try:
                manifest = load_bundle(candidate, check_hashes=False)
                weights = manifest.quantization if manifest.quantization != "none" else manifest.precision
                summary = f"{manifest.model}, {weights}"
            except BundleError as err:
                summary = f"cannot be served: {err}"
            found.append(FoundBundle(candidate.name, str(candidate), summary))
    return found
