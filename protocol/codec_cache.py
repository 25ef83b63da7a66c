"""Parse/build functions of a schema version, with their bytecode kept on disk.

Turning a schema into functions costs three steps: lowering the table to a construct tree
and generating Python source from it (about 0.3 ms for a large message, plus importing
construct itself, about 10 ms once per process), then Python's `compile()` of the source
(about 2 ms for a Metadata or Fetch response). A broker builds a dozen codecs before its
first answers, so the result is kept on disk, as `__pycache__` does for modules, and a
warm start neither imports construct nor generates nor compiles anything.

The key is the SHA-256 of everything the generated code depends on: the schema table
itself (its repr), the version, the source files of the generator (this module,
codec_runtime.py, primitives.py, lower.py, spec.py), construct's version file and the
interpreter's bytecode magic. Any change to any of them gives new keys, so a stale entry
is never looked up; a damaged one (checksum) is ignored and rewritten. Generated code
imports only protocol.codec_runtime and the standard library (`_PRELUDE`), never
construct, so what it runs is the same whether it came from the disk or was just compiled.

Where: `$KBROKER_CODEC_CACHE` if set (`off` disables the cache), else
`$XDG_CACHE_HOME/kbroker/codecs` or `~/.cache/kbroker/codecs`, one subdirectory per
generator fingerprint (sets of other fingerprints unused for a day are deleted when a new
one starts). Directories are created private (0700); files are written atomically (temp
file + rename), so brokers starting side by side never read half a file; a cache that
cannot be created or written only costs the compile. Files are loaded only from
directories owned by this user and writable by no one else, since a cached code object
runs like a .pyc does.
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

logger = logging.getLogger(__name__)

ENV_VAR = "KBROKER_CODEC_CACHE"
PRUNE_AFTER_S = 86_400  # another fingerprint's set untouched this long is deleted
_FORMAT = b"KBCODEC2"
_HEADER = struct.Struct(">8s4s32sI")  # format, bytecode magic, key (sha256), payload crc32
_MAGIC = importlib.util.MAGIC_NUMBER

# What generated code may name besides its own definitions (the emitters of primitives.py
# import their helpers from protocol.codec_runtime themselves). No construct names: a codec
# loaded from the disk must run without construct (tests check every schema's names resolve).
_PRELUDE = """\
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
    """The parse and build functions of one schema, and (on demand) their source."""

    __slots__ = ("parsefunc", "buildfunc", "_source", "_make_tree")

    def __init__(self, parsefunc: Callable[..., Any], buildfunc: Callable[..., Any],
                 source: str | None, make_tree: Callable[[], Any] | None = None) -> None:
        self.parsefunc = parsefunc
        self.buildfunc = buildfunc
        self._source = source
        self._make_tree = make_tree

    @property
    def source(self) -> str:
        """The generated source (regenerated when the code came from the disk cache)."""
        if self._source is None and self._make_tree is not None:
            self._source = generate_source(self._make_tree())[0]
        return self._source or ""


def load_codec(label: str, schema: Any, version: int, make_tree: Callable[[], Any]) -> CompiledCodec:
    """Parse/build functions of `schema` at `version`: from the disk cache, else compiled.

    `make_tree()` lowers the schema to its construct tree (only called on a miss);
    `schema` is the table it is lowered from (a MessageSpec), part of the cache key.
    """
    digest = _key(schema, version)
    code = _cached_code(digest, label) if digest is not None else None
    source = None
    if code is None:
        source, linked = generate_source(make_tree())
        code = compile(source, f"<codec {label}>", "exec")
        if digest is not None and not linked:
            _store(digest, code)
    return _instantiate(code, label, source, make_tree)


def compile_tree(tree: Any, label: str) -> CompiledCodec:
    """Parse/build functions of a construct tree, compiled now (no cache)."""
    source, _ = generate_source(tree)
    return _instantiate(compile(source, f"<codec {label}>", "exec"), label, source)


def generate_source(tree: Any) -> tuple[str, bool]:
    """The module source defining `parseall(io, this)` and `buildall(obj, io, this)` for
    `tree`, and whether it links live construct instances (then it cannot be cached)."""
    from construct.core import CodeGen

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
    return gen.toString(), bool(gen.linkedinstances)


def _instantiate(code: CodeType, label: str, source: str | None,
                 make_tree: Callable[[], Any] | None = None) -> CompiledCodec:
    namespace: dict[str, Any] = {"__name__": f"protocol.codec.{label}"}
    exec(code, namespace)
    return CompiledCodec(namespace["parseall"], namespace["buildall"], source, make_tree)


# ---------------------------------------------------------------------- the disk cache

_dir_state: dict[str, Any] = {}

# the files whose content decides what a schema compiles to
_GENERATOR_FILES = ("codec_cache.py", "codec_runtime.py", "primitives.py", "lower.py", "spec.py")


def cache_dir() -> Path | None:
    """The cache directory (created on first use), or None when disabled or unusable."""
    if "dir" in _dir_state:
        return _dir_state["dir"]
    _dir_state["dir"] = path = _open_dir()
    return path


def _fingerprint() -> bytes | None:
    """Hash of the generator's sources, construct's version and the bytecode magic."""
    if "fingerprint" not in _dir_state:
        h = hashlib.sha256(_FORMAT + _MAGIC)
        try:
            here = Path(__file__).parent
            for name in _GENERATOR_FILES:
                h.update((here / name).read_bytes())
            spec = importlib.util.find_spec("construct")  # locates it without importing it
            locations = list(spec.submodule_search_locations or ()) if spec else []
            h.update((Path(locations[0]) / "version.py").read_bytes())
            _dir_state["fingerprint"] = h.digest()
        except (OSError, IndexError, ImportError) as exc:
            logger.debug("codec cache disabled: %s", exc)
            _dir_state["fingerprint"] = None
    return _dir_state["fingerprint"]


def _key(schema: Any, version: int) -> bytes | None:
    """The cache key of `schema` at `version`, or None when it cannot be cached."""
    if cache_dir() is None:
        return None
    fingerprint = _fingerprint()
    if fingerprint is None:
        return None
    text = repr(schema)
    from protocol.spec import _NO_DEFAULT

    text = text.replace(repr(_NO_DEFAULT), "<no default>")  # an object(): its repr has an address
    if " at 0x" in text:
        return None  # something else without a stable repr: never reuse across processes
    return hashlib.sha256(fingerprint + f"{version}:".encode() + text.encode()).digest()


def reset() -> None:
    """Forget the resolved directory (tests change $KBROKER_CODEC_CACHE)."""
    _dir_state.clear()


def _open_dir() -> Path | None:
    configured = os.environ.get(ENV_VAR, "")
    if configured.lower() in ("off", "0", "false", "no"):
        return None
    fingerprint = _fingerprint()
    if fingerprint is None:
        return None
    if configured:
        base = Path(configured)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "kbroker" / "codecs"
    # one subdirectory per generator fingerprint, so a changed kbroker/construct/Python
    # starts a fresh set and the old sets can be pruned as whole directories
    path = base / fingerprint.hex()[:32]
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
            _prune(base, keep=path)
        except FileExistsError:
            pass
        for directory in (base, path):
            st = directory.stat()
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                logger.warning("codec cache %s ignored: not private to this user", directory)
                return None
    except (OSError, RuntimeError) as exc:  # RuntimeError: no home directory
        logger.debug("codec cache disabled: %s", exc)
        return None
    return path


def _prune(base: Path, keep: Path) -> None:
    """Remove the sets of other fingerprints unused for PRUNE_AFTER_S (older kbroker code)."""
    import shutil
    import time

    cutoff = time.time() - PRUNE_AFTER_S
    for entry in base.iterdir():
        try:
            if entry != keep and entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def _file_for(directory: Path, digest: bytes) -> Path:
    return directory / f"{digest.hex()}.code"


def _cached_code(digest: bytes, label: str) -> CodeType | None:
    directory = cache_dir()
    if directory is None:
        return None
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


def _store(digest: bytes, code: CodeType) -> None:
    directory = cache_dir()
    if directory is None:
        return
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
