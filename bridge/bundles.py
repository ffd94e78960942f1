"""Which bundles a bridge serves: the ones installed with AccompGen and those in STATE_DIR/bundles (found without
being told a path; a DAW's settings offer them), and any folder given with `--bundle`."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import accompgen
from accompgen.core.bundle import MANIFEST, BundleError, Manifest, load_bundle
from accompgen.core.errors import UserError
from accompgen_bridge.handlers import CREDENTIALS

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


def bundles_in(folder: Path) -> list[Path]:
    """The folders holding a manifest directly inside `folder`, by name (none when it cannot be listed)."""
    try:
        return sorted(p for p in folder.iterdir() if (p / MANIFEST).is_file())
    except OSError:
        return []


def describe(manifest: Manifest) -> str:
    """ "chorales, int8": the model and its weights."""
    weights = manifest.quantization if manifest.quantization != "none" else manifest.precision
    return f"{manifest.model}, {weights}"


def summary_of(bundle: Path) -> str:
    """What `describe` says, or why the bundle cannot be served (its graphs' hashes are not checked here: the
    bridge checks them when it loads one)."""
    try:
        return describe(load_bundle(bundle, check_hashes=False))
    except BundleError as err:
        return f"cannot be served: {err}"


def find_bundles(folders: list[Path]) -> list[FoundBundle]:
    """Every bundle directly inside `folders`, in order, each named for what it holds."""
    return [FoundBundle(p.name, str(p), summary_of(p)) for folder in folders for p in bundles_in(folder)]


def bundle_name(folder: Path) -> str:
    """What a request calls a bundle: its folder's name (of the absolute path, so `--bundle .` has one too)."""
    return Path(os.path.abspath(folder)).name


@dataclass
class ServedBundles:
    folders: dict[str, Path] = field(default_factory=dict)  # name -> folder, the default first
    given: set[str] = field(default_factory=set)  # given with --bundle: a problem with one stops the bridge
    passed_over: list[str] = field(default_factory=list)  # found bundles not served, each with why


def served_bundles(given: list[Path], found_in: list[Path]) -> ServedBundles:
    """Each of `given` (a bundle, or a folder of bundles), then every bundle in `found_in`. A folder reached twice
    is served once; a request names a bundle by its folder's name, so two given folders of one name are refused,
    and a found one named like an earlier one is passed over."""
    served = ServedBundles()
    for bundle in (bundle for path in given for bundle in _given_bundles(path)):
        name, other = bundle_name(bundle), served.folders.get(bundle_name(bundle))
        if name in CREDENTIALS:
            raise UserError(f"{bundle}: a bundle may not be named {name}, a word of the protocol: rename the folder")
        if other is not None and other.resolve() != bundle.resolve():
            raise UserError(
                f"two bundles are named {name}: {other} and {bundle}. Requests name a bundle by its folder: "
                "rename one folder"
            )
        served.folders.setdefault(name, bundle)
        served.given.add(name)
    for bundle in (bundle for folder in found_in for bundle in bundles_in(folder)):
        other = served.folders.get(bundle.name)
        if bundle.name in CREDENTIALS:
            served.passed_over.append(f"{bundle}: a bundle may not be named {bundle.name}, a word of the protocol")
        elif other is None:
            served.folders[bundle.name] = bundle
        elif other.resolve() != bundle.resolve():
            served.passed_over.append(f"{bundle}: {other} is served under the same name {bundle.name}")
    if not served.folders:
        raise UserError(
            f"no bundle to serve: none is installed or in {found_in[-1] if found_in else 'the state folder'}. "
            "Give a folder written by `accompgen export` with --bundle"
        )
    return served


def _given_bundles(path: Path) -> list[Path]:
    if (path / MANIFEST).is_file():
        return [path]
    inside = bundles_in(path)
    if not inside:
        raise UserError(
            f"--bundle {path}: no {MANIFEST} in it or in the folders inside it. Give a folder written by "
            "`accompgen export`, or a folder of such folders"
        )
    return inside
