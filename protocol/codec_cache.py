"""Compile a lowered construct tree to parse/build functions, keeping the bytecode on disk.

Turning a schema into functions has three steps: lowering the table to a construct tree
and generating Python source from it (about 0.3 ms for a large message), then Python's
`compile()` of that source (about 2 ms for Metadata or Fetch responses: 80% of the
cost). A broker compiles a dozen schemas before its first answers, so the last step is
kept on disk, as `__pycache__` does for modules: the code object is stored under the
SHA-256 of the generated source (plus the interpreter's bytecode magic), so a file can
only ever be reused for exactly the source it was compiled from; a stale or foreign
file is never looked up, a damaged one (checksum) is ignored and rewritten.

The source is generated every time (it is cheap and it is the key); only `compile()` is
skipped. Trees with linked (non-compiled) instances are never cached: their source
names object ids of this process.

Where: `$KBROKER_CODEC_CACHE` if set (`off` disables the cache), else
`$XDG_CACHE_HOME/kbroker/codecs` or `~/.cache/kbroker/codecs`. The directory is created
private (0700); files are written atomically (temp file + rename), so brokers starting
side by side never read half a file; a cache that cannot be created or written only costs
the compile. Files are loaded only from a directory owned by this user and writable by
no one else, since a cached code object runs like a .pyc does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import marshal
import os
import struct
import tempfile
import zlib
from pathlib import Path
from types import CodeType
from typing import Any, Callable

from construct.core import CodeGen

logger = logging.getLogger(__name__)

ENV_VAR = "KBROKER_CODEC_CACHE"
_FORMAT = b"KBCODEC1"
_HEADER = struct.Struct(">8s4s32sI")  # format, bytecode magic, source sha256, payload crc32
_MAGIC = importlib.util.MAGIC_NUMBER

# What generated code may name besides its own definitions: construct's runtime names (its
# emitters refer to them) and the helpers its compiled snippets expect in module scope.
_PRELUDE = """\
from construct import *
from construct.lib import *
from io import BytesIO
import collections
import itertools
import struct
len_, sum_, min_, max_, abs_ = len, sum, min, max, abs
def restream(data, func):
    return func(BytesIO(data))
def reuse(obj, func):
    return func(obj)
"""


class CompiledCodec:
    """The parse and build functions of one schema, with the source they came from."""

    __slots__ = ("parsefunc", "buildfunc", "source")

    def __init__(self, parsefunc: Callable[..., Any], buildfunc: Callable[..., Any], source: str) -> None:
        self.parsefunc = parsefunc
        self.buildfunc = buildfunc
        self.source = source


def compile_tree(tree: Any, label: str) -> CompiledCodec:
    """Parse/build functions of a construct tree (`parseall(io, this)`, `buildall(obj, io, this)`)."""
    gen = CodeGen()
    gen.append(_PRELUDE)
    parse_expr = tree._compileparse(gen)
    build_expr = tree._compilebuild(gen)
    gen.append(f"""
        def parseall(io, this):
            return {parse_expr}
        def buildall(obj, io, this):
            return {build_expr}
    """)
    source = gen.toString()
    cacheable = not gen.linkedinstances
    code = _cached_code(source, label) if cacheable else None
    if code is None:
        code = compile(source, f"<codec {label}>", "exec")
        if cacheable:
            _store(source, code)
    namespace: dict[str, Any] = {
        "__name__": f"protocol.codec.{label}",
        "linkedinstances": gen.linkedinstances,
        "linkedparsers": gen.linkedparsers,
        "linkedbuilders": gen.linkedbuilders,
    }
    exec(code, namespace)
    return CompiledCodec(namespace["parseall"], namespace["buildall"], source)


# ---------------------------------------------------------------------- the disk cache

_dir_state: dict[str, Path | None] = {}


def cache_dir() -> Path | None:
    """The cache directory (created on first use), or None when disabled or unusable."""
    if "dir" in _dir_state:
        return _dir_state["dir"]
    _dir_state["dir"] = path = _open_dir()
    return path


def reset() -> None:
    """Forget the resolved directory (tests change $KBROKER_CODEC_CACHE)."""
    _dir_state.clear()


def _open_dir() -> Path | None:
    configured = os.environ.get(ENV_VAR, "")
    if configured.lower() in ("off", "0", "false", "no"):
        return None
    if configured:
        base = Path(configured)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "kbroker" / "codecs"
    path = base / _MAGIC.hex()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except (OSError, RuntimeError) as exc:  # RuntimeError: no home directory
        logger.debug("codec cache disabled: %s", exc)
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        logger.warning("codec cache %s ignored: not private to this user", path)
        return None
    return path


def _file_for(directory: Path, digest: bytes) -> Path:
    return directory / f"{digest.hex()}.code"


def _digest(source: str) -> bytes:
    return hashlib.sha256(source.encode()).digest()


def _cached_code(source: str, label: str) -> CodeType | None:
    directory = cache_dir()
    if directory is None:
        return None
    digest = _digest(source)
    try:
        with open(_file_for(directory, digest), "rb") as f:
            if os.fstat(f.fileno()).st_uid != os.getuid():
                return None
            blob = f.read()
    except OSError:
        return None  # not cached yet
    if len(blob) < _HEADER.size:
        return None
    fmt, magic, stored_digest, crc = _HEADER.unpack_from(blob)
    payload = memoryview(blob)[_HEADER.size:]
    if fmt != _FORMAT or magic != _MAGIC or stored_digest != digest or zlib.crc32(payload) != crc:
        logger.debug("codec cache entry for %s damaged; recompiling", label)
        return None
    try:
        code = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return None
    return code if isinstance(code, CodeType) else None


def _store(source: str, code: CodeType) -> None:
    directory = cache_dir()
    if directory is None:
        return
    digest = _digest(source)
    payload = marshal.dumps(code)
    blob = _HEADER.pack(_FORMAT, _MAGIC, digest, zlib.crc32(payload)) + payload
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, _file_for(directory, digest))
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:  # full or read-only disk: the cache is only an optimisation
        logger.debug("codec cache write failed: %s", exc)
