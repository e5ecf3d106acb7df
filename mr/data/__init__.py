"""Bulk data of requests (arguments, datasets): the interface in base, backends beside it."""
import tempfile

from mr.data.base import DataStore
from mr.settings import Settings


def create_data_store(settings: Settings) -> DataStore:
    """The data store the settings name: ``memory``, or any other value as an fsspec URL."""
    if settings.data_store_url == "memory":
        from mr.data.memory import MemoryDataStore
        return MemoryDataStore()
    from mr.data.fsspec_store import FsspecDataStore
    return FsspecDataStore(settings.data_store_url)


def create_shuffle_store(settings: Settings, data: DataStore) -> DataStore:
    """Where executor children spill and read the shuffle's files: MR_SHUFFLE_URL, else the data
    store when children can open it too (any but ``memory``), else a temporary directory of
    this process, removed when the store is closed."""
    from mr.data.fsspec_store import FsspecDataStore
    if settings.shuffle_url:
        return FsspecDataStore(settings.shuffle_url)
    if isinstance(data, FsspecDataStore):
        return data
    return FsspecDataStore(tempfile.mkdtemp(prefix="mr-shuffle-"), temporary=True)
