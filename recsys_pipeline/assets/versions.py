"""Which artifact version a step reads, which one it publishes, and the data version it reports.

A step reads each upstream artifact at the version folder that the upstream's latest
materialization recorded when the step began, and pins it (``ArtifactStore.pinned``) to the
step's end, so a republish of that upstream cannot pull the folder away mid-step. Every
materialization records the version folder it published (``dagster/uri``, ``artifact_version``)
and its data version: a hash of the asset's code version, its inputs' data versions and its
effective settings (``raw_csv`` reports the sha256 of its input bytes instead). The code version
is a hash of the package code the asset's module runs and of the versions of the libraries it
imports (``code_versions``), set when the definitions are built (:func:`with_code_versions`). The
same inputs, code and settings give the same data version, so nothing downstream turns stale, and
an expensive step asked to rebuild what it already built reuses its artifact (:func:`unchanged`);
new code is a new version, so a model trained by older code is not reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from recsys_pipeline.assets.code_versions import code_version_of
from recsys_pipeline.assets.failures import failing_clearly
from recsys_pipeline.data.artifacts import ArtifactError, ArtifactStore
from recsys_pipeline.resources.storage import RecsysStorage

VERSION_ENTRY = "artifact_version"  # metadata: the version folder's name
DATA_VERSION_TAG = "dagster/data_version"
UNRECORDED = "unrecorded"  # the instance holds no materialization of an input

Context = dg.AssetExecutionContext | dg.AssetCheckExecutionContext


@dataclass(frozen=True)
class Recorded:
    """What the latest materialization of a key recorded."""

    version: str | None  # artifact version folder
    data_version: str | None
    metadata: Mapping[str, dg.MetadataValue] = field(default_factory=dict)


def latest(instance: dg.DagsterInstance, key: str) -> Recorded | None:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    if event is None or event.asset_materialization is None:
        return None
    materialization = event.asset_materialization
    version = materialization.metadata.get(VERSION_ENTRY)
    return Recorded(
        version=version.value if version is not None else None,
        data_version=materialization.tags.get(DATA_VERSION_TAG),
        metadata=materialization.metadata,
    )


@dataclass(frozen=True)
class Inputs:
    """The pinned folder and the data version of each upstream artifact a step reads."""

    paths: dict[str, Path]
    data_versions: dict[str, str]

    def __getitem__(self, key: str) -> Path:
        return self.paths[key]


@contextlib.contextmanager
def reading(context: Context, storage: RecsysStorage, *keys: str) -> Iterator[Inputs]:
    """Pin, for the block, the version of each of ``keys`` that its latest materialization
    recorded; an instance without a record of one (a throwaway CLI instance) reads the version
    the store has published, and says so in the log."""
    store = storage.artifacts()
    with contextlib.ExitStack() as stack:
        paths, data_versions = {}, {}
        for key in keys:
            record = latest(context.instance, key)
            with failing_clearly(ArtifactError):
                if record is None or record.version is None:
                    name = store.path(key).name
                    context.log.info(
                        f"no materialization of {key} recorded in this Dagster instance: "
                        f"reading the published version {name}"
                    )
                    data_versions[key] = UNRECORDED
                else:
                    name = record.version
                    data_versions[key] = record.data_version or UNRECORDED
                paths[key] = stack.enter_context(store.pinned(key, name))
        yield Inputs(paths, data_versions)


def with_code_versions(definitions: dg.Definitions, module: str) -> dg.Definitions:
    """An asset module's ``definitions`` (assets and checks), each materializable asset carrying
    the module's code version. Applied when the definitions are built, whether a module declares
    its assets at import or in ``definitions()``, so definitions built again after the code
    changed carry the new versions throughout."""
    version = code_version_of(module)
    assets = [
        a.map_asset_specs(lambda s: s.replace_attributes(code_version=version))
        if isinstance(a, dg.AssetsDefinition) and a.is_materializable
        else a  # an observed source: its data version is what it observes
        for a in definitions.assets or []
    ]
    return dg.Definitions(assets=assets, asset_checks=definitions.asset_checks)


def code_version(context: dg.AssetExecutionContext) -> str:
    return context.assets_def.code_versions_by_key[context.asset_key] or ""


def data_version(
    context: dg.AssetExecutionContext, inputs: Inputs, settings: Mapping[str, object]
) -> dg.DataVersion:
    """A hash of the asset's code version, its inputs' data versions and its settings."""
    identity = {
        "code_version": code_version(context),
        "inputs": inputs.data_versions,
        "settings": settings,
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    return dg.DataVersion(hashlib.sha256(text.encode()).hexdigest()[:32])


def content_version(context: dg.AssetExecutionContext, digest: str) -> dg.DataVersion:
    """For an asset whose output is cheap to fingerprint: a hash of its code version and its
    content, so the same content keeps its version even when an input's version moved."""
    text = json.dumps({"code_version": code_version(context), "content": digest})
    return dg.DataVersion(hashlib.sha256(text.encode()).hexdigest()[:32])


def published(
    context: dg.AssetExecutionContext,
    store: ArtifactStore,
    version: dg.DataVersion,
    metadata: Mapping[str, object],
) -> dg.MaterializeResult:
    """The materialization of what ``store`` just published for this asset."""
    folder = store.published[context.asset_key.to_user_string()]
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "dagster/uri": folder.as_uri(),
            VERSION_ENTRY: folder.name,
            "reused": False,
        },
        data_version=version,
    )


def unchanged(
    context: dg.AssetExecutionContext, storage: RecsysStorage, version: dg.DataVersion
) -> dg.MaterializeResult | None:
    """When this asset's latest materialization has ``version`` and its artifact is intact, a
    materialization of that same artifact (its metadata repeated, ``reused`` set); else None,
    and the step does the work."""
    key = context.asset_key.to_user_string()
    record = latest(context.instance, key)
    if record is None or record.data_version != version.value or record.version is None:
        return None
    try:
        storage.artifacts().version(key, record.version)
    except ArtifactError as exc:
        context.log.warning(f"rebuilding {key}: {exc}")
        return None
    context.log.info(
        f"{key}: code, inputs and settings unchanged since version {record.version}; reusing it"
    )
    return dg.MaterializeResult(metadata={**record.metadata, "reused": True}, data_version=version)
