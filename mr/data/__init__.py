"""Bulk data of requests (arguments, datasets): the interface in base, backends beside it."""
from mr.data.base import DataStore
from mr.settings import Settings


def create_data_store(settings: Settings) -> DataStore:
    """The data store the settings name: ``memory``, or any other value as an fsspec URL."""
    if settings.data_store_url == "memory":
        from mr.data.memory import MemoryDataStore
        return MemoryDataStore()
    from mr.data.fsspec_store import FsspecDataStore
    return FsspecDataStore(settings.data_store_url)
