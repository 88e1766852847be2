"""Errors whose message says how to fix the problem; front ends show them as one line."""


class RagError(Exception):
    """Base class: str(error) is a complete, user-facing sentence with the fix."""


class ConfigError(RagError):
    pass


class InputError(RagError):
    pass


class IndexMissingError(RagError):
    pass


class IndexIncompatibleError(RagError):
    pass


class IndexCorruptError(RagError):
    pass


class ModelError(RagError):
    pass


class BusyError(RagError):
    pass


class RemoteError(RagError):
    """A remote model or embedding server is down, slow, or not the server it should be."""
