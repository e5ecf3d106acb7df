"""The shared filesystem handlers use as ``FS``: the interface in base, the backend beside it."""
from mr.fs.base import PathOutsideRootError, SharedFilesystem, Stat
from mr.fs.fsspec_fs import FsspecFilesystem, check_shared_root

__all__ = ["FsspecFilesystem", "PathOutsideRootError", "SharedFilesystem", "Stat",
           "check_shared_root"]
