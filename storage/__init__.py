"""storage: images and their metadata JSON (local folder or MinIO/S3 with a spool), and a SQLite index.

The public API::

    from storage import (
        GenerationMetadata, InputInfo, WorkflowInfo, GenerationParameters, QualityRecord, AttemptRecord,
        RefinementInfo, StorageInfo,                       # the metadata document (storage.metadata)
        StorageSettings, open_store, Store, LocalStore, S3Store, StoredObject,   # stores
        parse_object_url, ObjectRef,                       # s3:// and endpoint URLs
        Index, GenerationQuery, GenerationFilter, rebuild_index,                 # the index
        StorageError, ...                                  # the exception tree (storage.errors)
    )

See storage/README.md for the settings and the layout.
"""

from typing import TYPE_CHECKING

from comfy_quality.lazy import lazy_exports
from storage.errors import (
    InvalidKeyError,
    InvalidObjectURLError,
    MetadataError,
    ObjectNotFoundError,
    ObjectTooLargeError,
    StorageConfigError,
    StorageError,
    StorageIndexError,
    StorageUnavailableError,
)
from storage.factory import open_store
from storage.index import (
    AttemptRow,
    DimensionAverages,
    Facets,
    GenerationPage,
    GenerationRow,
    GradeDistribution,
    Index,
    RebuildReport,
    StrategyGain,
    TrendPoint,
    rebuild_index,
)
from storage.index_query import GenerationFilter, GenerationQuery, ScoreRange
from storage.layout import ObjectRef, parse_object_url
from storage.local import LocalStore
from storage.metadata import (
    SCHEMA_VERSION,
    AttemptRecord,
    AttemptTimings,
    GenerationMetadata,
    GenerationParameters,
    InputInfo,
    LoraSpec,
    QualityRecord,
    RefinementInfo,
    StorageInfo,
    WorkflowInfo,
    describe_rejection,
    metadata_json_schema,
    new_generation_id,
)
from storage.settings import StorageSettings
from storage.store import AttemptImage, FlushReport, Store, StoredObject, StoreHealth

if TYPE_CHECKING:
    from storage.s3 import S3Store

__all__ = [
    "SCHEMA_VERSION",
    "AttemptImage",
    "AttemptRecord",
    "AttemptRow",
    "AttemptTimings",
    "DimensionAverages",
    "Facets",
    "FlushReport",
    "GenerationFilter",
    "GenerationMetadata",
    "GenerationPage",
    "GenerationParameters",
    "GenerationQuery",
    "GenerationRow",
    "GradeDistribution",
    "Index",
    "InputInfo",
    "InvalidKeyError",
    "InvalidObjectURLError",
    "LocalStore",
    "LoraSpec",
    "MetadataError",
    "ObjectNotFoundError",
    "ObjectRef",
    "ObjectTooLargeError",
    "QualityRecord",
    "RebuildReport",
    "RefinementInfo",
    "S3Store",
    "ScoreRange",
    "StorageConfigError",
    "StorageError",
    "StorageIndexError",
    "StorageInfo",
    "StorageSettings",
    "StorageUnavailableError",
    "Store",
    "StoreHealth",
    "StoredObject",
    "StrategyGain",
    "TrendPoint",
    "WorkflowInfo",
    "describe_rejection",
    "metadata_json_schema",
    "new_generation_id",
    "open_store",
    "parse_object_url",
    "rebuild_index",
]

# the S3 store (and the minio client library under it) is imported only when asked for: a local store, the
# default, never loads it
__getattr__, __dir__ = lazy_exports(__name__, {"S3Store": "storage.s3"})
