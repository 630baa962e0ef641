"""Modules with one habit wrong, for the kit checks of issue 15.

Each is ``SimpleStorage`` with one habit changed; ``vsm check`` must name
the mistake (or, for ``TypeErrorForText``, accept the clear refusal).
"""
import io
import os

from simple.simple import SimpleStorage


class RecreatingStorage(SimpleStorage):
    """Creates its storage directory again when it is gone, and answers False then.

    Issue 15, point 7: a module that kept writing after its directory was
    moved away.
    """

    def _require_storage_dir(self) -> None:
        os.makedirs(self.storage_dir, exist_ok=True)


class AlwaysOkStatistics(SimpleStorage):
    """Reports status 'ok' whatever happens (the status page then shows OK)."""

    def statistics(self, context):
        result = super().statistics(context)
        result["status"] = "ok"
        result.pop("reason", None)
        return result


class LeavesEmptyDirectories(SimpleStorage):
    """Deletes files but leaves their shard directories behind (issue 15, point 8)."""

    def delete(self, context, module_data):
        path = self._object_path(module_data)
        self._require_storage_dir()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class TypeErrorForText(SimpleStorage):
    """Refuses a text stream with TypeError: a clear answer the kit accepts."""

    def assign(self, context, module_data, stream):
        if isinstance(stream, io.TextIOBase):
            raise TypeError("assign needs a binary stream; open files in 'rb' mode")
        super().assign(context, module_data, stream)


class AcceptsText(SimpleStorage):
    """Stores text streams silently encoded: the kit must fail it."""

    def assign(self, context, module_data, stream):
        class _Encoded:
            def read(self, size=-1):
                chunk = stream.read(size)
                return chunk.encode() if isinstance(chunk, str) else chunk
        super().assign(context, module_data, _Encoded())


class UnknownStatusWord(SimpleStorage):
    """Reports a status the platform does not know."""

    def statistics(self, context):
        return dict(super().statistics(context), status="fine")
