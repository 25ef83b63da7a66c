"""Lowering: a message table (protocol/messages/) plus a version -> a compiled construct codec.

Rules (docs/protocol.md has the long form):
- fields the version lacks are left out; flexible versions use compact lengths and end every
  struct with a tagged-field section; tagged fields become entries of that section;
- nullable strings/bytes/arrays/structs follow `nullableVersions` at that version;
- missing keys take the spec default on encode (explicit default, else Kafka's type default);
- the construct tree is compiled once per (api key, version, direction) or (data name,
  version), on first use (functools.cache), because compiling every schema at import would
  cost seconds; the bytecode of each is cached on disk (protocol/codec_cache.py).
"""

from __future__ import annotations

import functools
import importlib
import struct
from io import BytesIO
from typing import Any, Mapping

from typing import TYPE_CHECKING

from protocol import messages
from protocol.codec_cache import load_codec
from protocol.errors import DecodeError, EncodeError
from protocol.spec import FieldSpec, MessageSpec, in_range, type_default

if TYPE_CHECKING:
    from construct import Construct

    from protocol.primitives import KStruct

# protocol.primitives (and with it construct, ~10 ms to import) is imported only to lower a
# schema whose codec is not in the disk cache (protocol/codec_cache.py).

#: Everything a malformed input can make Python raise inside generated code. (Generated code
#: names nothing from construct, so construct's own ConstructError cannot arise in it.)
_DECODE_FAILURES = (
    struct.error,
    ValueError,
    UnicodeDecodeError,
    OverflowError,
    IndexError,
    KeyError,
    TypeError,
    MemoryError,
    RecursionError,
)
_ENCODE_FAILURES = (
    struct.error,
    ValueError,
    OverflowError,
    TypeError,
    AttributeError,
)


def _compact(spec: FieldSpec, version: int, flexible: bool) -> bool:
    """Field-level flexibleVersions overrides the message's (RequestHeader ClientId)."""
    if spec.flexible == "inherit":
        return flexible
    return in_range(version, spec.flexible)  # type: ignore[arg-type]


def _element(spec: FieldSpec, version: int, flexible: bool, compact: bool, nullable: bool) -> Construct:
    """The construct for one value of the field's type (the element type for arrays)."""
    from protocol.primitives import FIXED_FORMATS, Fixed, KBytes, KRecords, KString, Uuid

    if spec.fields is not None:
        return lower_struct(spec.fields, version, flexible, nullable)
    t = spec.type
    if t in FIXED_FORMATS:
        return Fixed(t)
    if t == "uuid":
        return Uuid()
    if t == "string":
        return KString(compact, nullable)
    if t == "bytes":
        return KBytes(compact, nullable)
    if t == "records":
        return KRecords(compact, nullable)
    raise ValueError(f"unknown field type {t}")


def encode_default(spec: FieldSpec, version: int) -> Any:
    """The value used on encode when the field's key is missing."""
    if spec.has_explicit_default:
        if spec.default is None and not spec.is_nullable(version):
            pass  # "null" default in a version where the field is not nullable
        else:
            return spec.default
    if spec.array:
        return []
    if spec.fields is not None:
        return {}
    return type_default(spec)


def decoded_default(spec: FieldSpec, version: int, flexible: bool) -> Any:
    """The value a decoder reports for an absent tagged field (the full default structure)."""
    value = encode_default(spec, version)
    if value is None or spec.array:
        return None if value is None else []
    if spec.fields is not None:
        return struct_default(spec.fields, version, flexible)
    return value


def struct_default(fields: tuple[FieldSpec, ...], version: int, flexible: bool) -> dict:
    """A struct's value with every field at its default, as decoding would produce it."""
    return {
        f.name: decoded_default(f, version, flexible) for f in fields if f.present(version)
    }


def lower_struct(
    fields: tuple[FieldSpec, ...], version: int, flexible: bool, nullable: bool = False
) -> KStruct:
    """Lower a struct's field table at one version."""
    from protocol.primitives import KArray, KStruct, StructField

    members: list[StructField] = []
    for f in fields:
        if not f.present(version):
            continue
        compact = _compact(f, version, flexible)
        nullable_here = f.is_nullable(version)
        if f.array:
            element = _element(f, version, flexible, compact, False)
            con: Construct = KArray(element, compact, nullable_here)
        else:
            con = _element(f, version, flexible, compact, nullable_here)
        tag = f.tag if flexible and f.is_tagged(version) else None
        dd = repr(decoded_default(f, version, flexible)) if tag is not None else "None"
        members.append(StructField(f.name, con, encode_default(f, version), tag, dd))
    return KStruct(members, flexible, nullable)


class Codec:
    """One compiled schema: parse/build functions plus the error conversion around them."""

    __slots__ = ("name", "version", "parse", "build", "_compiled")

    def __init__(self, name: str, version: int, compiled: Any) -> None:
        self.name = name
        self.version = version
        self.parse = compiled.parsefunc
        self.build = compiled.buildfunc
        self._compiled = compiled

    @property
    def source(self) -> str:
        """The generated Python source of this codec (for inspection)."""
        return self._compiled.source

    def read(self, io: BytesIO, ctx: dict) -> dict:
        """Parse one value from `io` at its current position (ctx has _end and _frame)."""
        try:
            return self.parse(io, ctx)
        except DecodeError:
            raise
        except _DECODE_FAILURES as exc:
            raise DecodeError(f"malformed {self.name} v{self.version}: {type(exc).__name__}") from None

    def write(self, io: BytesIO, value: Mapping) -> None:
        """Append the encoding of `value` to `io`."""
        try:
            self.build(value, io, None)
        except EncodeError:
            raise
        except _ENCODE_FAILURES as exc:
            raise EncodeError(f"cannot encode {self.name} v{self.version}: {exc}") from None

    def decode(self, data: bytes | bytearray | memoryview) -> dict:
        """Decode a whole buffer, which must be consumed exactly."""
        io, ctx = open_frame(data)
        value = self.read(io, ctx)
        if io.tell() != ctx["_end"]:
            raise DecodeError(f"{ctx['_end'] - io.tell()} bytes left after {self.name}")
        return value

    def encode(self, value: Mapping) -> bytes:
        """Encode a value to bytes."""
        io = BytesIO()
        self.write(io, value)
        return io.getvalue()


def open_frame(data: bytes | bytearray | memoryview) -> tuple[BytesIO, dict]:
    """A stream and parse context over `data`; records come back as slices of `data`."""
    frame = memoryview(data)
    # BytesIO shares a bytes object without copying; anything else is copied once
    if type(data) is bytes:
        buf = data
    elif type(frame.obj) is bytes and frame.nbytes == len(frame.obj) and frame.contiguous:
        buf = frame.obj  # a whole-bytes memoryview: no copy either
    else:
        buf = frame.tobytes()
    return BytesIO(buf), {"_end": len(buf), "_frame": frame}


def _compile(name: str, version: int, spec: MessageSpec) -> Codec:
    if version not in spec.versions():
        raise ValueError(f"{name} has no version {version}")

    def make_tree() -> Construct:
        from protocol.primitives import KMessage

        return KMessage(lower_struct(spec.fields, version, spec.is_flexible(version)))

    # as make_tree().compile(), but kept on disk across starts (protocol/codec_cache.py)
    return Codec(name, version, load_codec(f"{name}_v{version}", spec, version, make_tree))


def api_spec(api_key: int, is_response: bool) -> MessageSpec:
    """The generated table of one API's request or response."""
    module_name = messages.API_MODULES[api_key]
    module = importlib.import_module(f"protocol.messages.{module_name}")
    return module.RESPONSE if is_response else module.REQUEST


def data_spec(name: str) -> MessageSpec:
    """The generated table of a data / metadata / coordinator record schema."""
    module = importlib.import_module(f"protocol.messages.{messages.DATA_MODULES[name]}")
    return module.DATA


@functools.cache
def message_codec(api_key: int, version: int, is_response: bool) -> Codec:
    """Compiled codec of one API message version (KeyError / ValueError if unknown)."""
    spec = api_spec(api_key, is_response)
    return _compile(spec.name, version, spec)


@functools.cache
def data_codec(name: str, version: int) -> Codec:
    """Compiled codec of one data schema version."""
    spec = data_spec(name)
    return _compile(spec.name, version, spec)
