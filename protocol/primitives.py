"""Kafka's primitive wire types as construct classes that compile to fast, bounded code.

Each class is a `construct.Construct` with `_emitparse` / `_emitbuild`, so that
`Construct.compile()` inlines it into one generated module per schema (see docs/protocol.md).
The runtime helpers (`k_*`, protocol/codec_runtime.py, re-exported here) are what the
generated code calls; they check every length and count against the bytes left because
compiled construct code skips those checks.

Parse context: the generated code passes one small dict `this` everywhere, holding `_end`
(length of the frame) and `_frame` (a memoryview of it, so that records fields are returned
as slices without copying). Values are plain dicts and lists.

Interpreted use (`X.parse(data)` / `X.build(obj)`) works too: each class's `_parse`/`_build`
compiles the construct once and runs the compiled function.
"""

from __future__ import annotations

import struct
from typing import Any

from construct import Construct

from protocol.codec_runtime import (  # noqa: F401  (re-exported: the helpers' old home)
    _RUNTIME_NAMES,
    FIXED_FORMATS,
    STRING_MAX_BYTES,
    UVARINT_MAX_BYTES,
    VARLONG_MAX_BYTES,
    DecodeError,
    EncodeError,
    encode_uvarint,
    k_check_tag_end,
    k_encode_str,
    k_fresh_io,
    k_read_array_len,
    k_read_bytes,
    k_read_clen,
    k_read_cstring,
    k_read_len16,
    k_read_len32,
    k_read_ncstring,
    k_read_nstring,
    k_read_records,
    k_read_string,
    k_read_struct_marker,
    k_read_tag_header,
    k_read_uuid,
    k_read_uvarint,
    k_read_varint,
    k_read_varlong,
    k_write_array_len,
    k_write_bytes,
    k_write_records,
    k_write_string,
    k_write_tagged,
    k_write_uuid,
    k_write_uvarint,
    k_write_varint,
    k_write_varlong,
)

__all__ = [
    "Fixed",
    "Uuid",
    "UVarInt",
    "VarInt",
    "VarLong",
    "KString",
    "KBytes",
    "KRecords",
    "KArray",
    "KStruct",
    "KMessage",
    "StructField",
    "k_read_uvarint",
    "k_write_uvarint",
    "k_read_varint",
    "k_read_varlong",
    "k_write_varint",
    "k_write_varlong",
    "encode_uvarint",
]


def _import_runtime(code: Any) -> None:
    """Make the runtime helpers visible in a generated module."""
    code.append(
        "from protocol.codec_runtime import (" + ", ".join(_RUNTIME_NAMES) + ")\n"
        "from uuid import UUID\n"
    )


def _struct_var(code: Any, fmt: str) -> str:
    """A module-level struct.Struct for `fmt`, defined once per generated module."""
    name = "_S_" + fmt.replace("?", "B_")
    code.append(f"{name} = struct.Struct('>{fmt}')\n")
    return name


# ---------------------------------------------------------------------------------------------
# constructs


class _Compiling(Construct):
    """Interpreted parse/build by way of this construct's own compiled code."""

    _compiled_cache: Any = None

    def _compiled(self) -> Any:
        if self._compiled_cache is None:
            self._compiled_cache = KMessage(self).compile()
        return self._compiled_cache

    def _parse(self, stream: Any, context: Any, path: Any) -> Any:
        return self._compiled().parsefunc(stream, context)

    def _build(self, obj: Any, stream: Any, context: Any, path: Any) -> Any:
        return self._compiled().buildfunc(obj, stream, context)


class Fixed(_Compiling):
    """A fixed-width number (intN, uintN, float64, bool) in network byte order."""

    def __init__(self, type_name: str) -> None:
        super().__init__()
        self.type_name = type_name
        self.fmt = FIXED_FORMATS[type_name]
        self.size = struct.calcsize(">" + self.fmt)

    def _emitparse(self, code: Any) -> str:
        _import_runtime(code)
        return f"{_struct_var(code, self.fmt)}.unpack(io.read({self.size}))[0]"

    def _emitbuild(self, code: Any) -> str:
        _import_runtime(code)
        return f"io.write({_struct_var(code, self.fmt)}.pack(obj))"


class _RuntimeCall(_Compiling):
    """A value read and written by one pair of runtime functions (named by the subclass)."""

    reader: str
    writer: str

    def _emitparse(self, code: Any) -> str:
        _import_runtime(code)
        return f"{self.reader}(io)"

    def _emitbuild(self, code: Any) -> str:
        _import_runtime(code)
        return f"{self.writer}(io, obj)"


class Uuid(_RuntimeCall):
    """A 16-byte UUID, decoded as uuid.UUID."""

    reader, writer = "k_read_uuid", "k_write_uuid"


class UVarInt(_RuntimeCall):
    """Kafka's unsigned varint, at most 5 bytes."""

    reader, writer = "k_read_uvarint", "k_write_uvarint"


class VarInt(_RuntimeCall):
    """Zig-zag int32 varint, at most 5 bytes."""

    reader, writer = "k_read_varint", "k_write_varint"


class VarLong(_RuntimeCall):
    """Zig-zag int64 varint, at most 10 bytes."""

    reader, writer = "k_read_varlong", "k_write_varlong"


class KString(_Compiling):
    """String: int16 length or compact (uvarint length+1), optionally nullable."""

    def __init__(self, compact: bool, nullable: bool) -> None:
        super().__init__()
        self.compact = compact
        self.nullable = nullable

    def _emitparse(self, code: Any) -> str:
        _import_runtime(code)
        name = {
            (False, False): "k_read_string",
            (False, True): "k_read_nstring",
            (True, False): "k_read_cstring",
            (True, True): "k_read_ncstring",
        }[(self.compact, self.nullable)]
        return f"{name}(io)"

    def _emitbuild(self, code: Any) -> str:
        _import_runtime(code)
        return f"k_write_string(io, obj, {self.compact}, {self.nullable})"


class KBytes(_Compiling):
    """Bytes: int32 length or compact, optionally nullable; decoded as bytes."""

    def __init__(self, compact: bool, nullable: bool) -> None:
        super().__init__()
        self.compact = compact
        self.nullable = nullable

    def _emitparse(self, code: Any) -> str:
        _import_runtime(code)
        return f"k_read_bytes(io, {self.compact}, {self.nullable})"

    def _emitbuild(self, code: Any) -> str:
        _import_runtime(code)
        return f"k_write_bytes(io, obj, {self.compact}, {self.nullable})"


class KRecords(KBytes):
    """Records: like bytes on the wire, decoded as a memoryview slice of the frame."""

    def _emitparse(self, code: Any) -> str:
        _import_runtime(code)
        return f"k_read_records(io, this, {self.compact}, {self.nullable})"

    def _emitbuild(self, code: Any) -> str:
        _import_runtime(code)
        return f"k_write_records(io, obj, {self.compact}, {self.nullable})"


class KArray(_Compiling):
    """Array (int32 count or compact), optionally nullable, of any element construct."""

    def __init__(self, subcon: Construct, compact: bool, nullable: bool) -> None:
        super().__init__()
        self.subcon = subcon
        self.compact = compact
        self.nullable = nullable

    def _emitparse(self, code: Any) -> str:
        _import_runtime(code)
        fname = f"parse_karray_{code.allocateId()}"
        head = f"    n = k_read_array_len(io, this, {self.compact}, {self.nullable})\n"
        if self.compact:
            # one-byte compact count of a non-null array (< 127 elements): no calls, and no
            # bounds check needed since the count itself bounds the allocation
            head = (
                "    b = io.read(1)\n"
                "    if b and 0 < b[0] < 0x80:\n"
                "        n = b[0] - 1\n"
                "    else:\n"
                "        io.seek(-len(b), 1)\n"
                "        " + head.strip() + "\n"
            )
        if self.nullable:
            head += "    if n < 0:\n        return None\n"
        if isinstance(self.subcon, Fixed):
            # arrays of numbers: one unpack for the whole array
            c, size = self.subcon.fmt, self.subcon.size
            body = (
                f"    data = io.read(n * {size})\n"
                f"    if len(data) != n * {size}:\n"
                f"        raise DecodeError('truncated array')\n"
                f"    return list(struct.unpack('>%d{c}' % n, data))\n"
            )
        else:
            body = f"    return [{self.subcon._compileparse(code)} for _ in range(n)]\n"
        code.append(f"def {fname}(io, this):\n{head}{body}")
        return f"{fname}(io, this)"

    def _emitbuild(self, code: Any) -> str:
        _import_runtime(code)
        fname = f"build_karray_{code.allocateId()}"
        head = (
            "    items = obj\n"
            f"    n = k_write_array_len(io, items, {self.compact}, {self.nullable})\n"
            "    if n <= 0:\n        return items\n"
        )
        if isinstance(self.subcon, Fixed):
            body = f"    io.write(struct.pack('>%d{self.subcon.fmt}' % n, *items))\n"
        else:
            body = f"    for obj in items:\n        {self.subcon._compilebuild(code)}\n"
        code.append(f"def {fname}(obj, io, this):\n{head}{body}    return items\n")
        return f"{fname}(obj, io, this)"


class StructField:
    """One member of a KStruct at one version.

    `default` is the value used on encode when the key is missing; `decoded_default` is the
    source text of the value a decoder reports for an absent tagged field.
    """

    __slots__ = ("name", "subcon", "default", "tag", "decoded_default")

    def __init__(
        self,
        name: str,
        subcon: Construct,
        default: Any,
        tag: int | None = None,
        decoded_default: str = "None",
    ) -> None:
        self.name = name
        self.subcon = subcon
        self.default = default
        self.tag = tag
        self.decoded_default = decoded_default


def _literal(code: Any, value: Any) -> str:
    """Source text for a default value; mutable or unusual ones become module constants."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, (list, tuple)) and not value:
        return "()"  # read-only default for a missing array
    if isinstance(value, dict) and not value:
        return "_EMPTY"
    const = f"_K_CONST_{code.allocateId()}"
    code.append(f"{const} = {value!r}\n")
    return const


class KStruct(_Compiling):
    """A Kafka struct at one version: fields in order, then (flexible) the tagged-field section.

    Parses into a plain dict; builds from any mapping, missing keys taking their default.
    `nullable` structs carry an int8 presence marker (-1 null, 1 present) as Kafka writes them.
    """

    def __init__(self, fields: list[StructField], flexible: bool, nullable: bool = False) -> None:
        super().__init__()
        self.fields = [f for f in fields if f.tag is None]
        self.tagged = sorted((f for f in fields if f.tag is not None), key=lambda f: f.tag)
        self.flexible = flexible
        self.nullable = nullable

    def _groups(self) -> list[list[StructField]]:
        """Consecutive fixed-width numeric fields are read and written with one struct call."""
        groups: list[list[StructField]] = []
        for f in self.fields:
            if isinstance(f.subcon, Fixed) and groups and isinstance(groups[-1][0].subcon, Fixed):
                groups[-1].append(f)
            else:
                groups.append([f])
        return groups

    def _emitparse(self, code: Any) -> str:
        _import_runtime(code)
        fname = f"parse_kstruct_{code.allocateId()}"
        lines = [f"def {fname}(io, this):"]
        if self.nullable:
            lines += ["    if not k_read_struct_marker(io):", "        return None"]
        lines.append("    r = {}")
        for group in self._groups():
            if len(group) > 1:
                fmt = "".join(f.subcon.fmt for f in group)
                size = struct.calcsize(">" + fmt)
                targets = ", ".join(f"r[{f.name!r}]" for f in group)
                lines.append(f"    {targets} = {_struct_var(code, fmt)}.unpack(io.read({size}))")
            else:
                f = group[0]
                lines.append(f"    r[{f.name!r}] = {f.subcon._compileparse(code)}")
        if self.flexible:
            for f in self.tagged:
                lines.append(f"    r[{f.name!r}] = {f.decoded_default}")
            # an empty tag section (one zero byte) is by far the common case: no call for it
            lines.append("    t = io.read(1)")
            lines.append("    if t != b'\\x00':")
            lines.append("        io.seek(-len(t), 1)")
            lines.append("        count = k_read_uvarint(io)")
            lines.append("    else:")
            lines.append("        count = 0")
            lines.append("    if count:")
            lines.append("        unknown = {}")
            lines.append("        for _ in range(count):")
            lines.append("            tag, size = k_read_tag_header(io, this)")
            keyword = "if"
            for f in self.tagged:
                lines.append(f"            {keyword} tag == {f.tag}:")
                lines.append("                end = io.tell() + size")
                lines.append(f"                r[{f.name!r}] = {f.subcon._compileparse(code)}")
                lines.append("                k_check_tag_end(io, end)")
                keyword = "elif"
            if self.tagged:
                lines.append("            else:")
                lines.append("                unknown[tag] = io.read(size)")
            else:
                lines.append("            unknown[tag] = io.read(size)")
            lines.append("        if unknown:")
            lines.append("            r['_unknown_tagged_fields'] = unknown")
        lines.append("    return r")
        code.append("\n".join(lines) + "\n")
        return f"{fname}(io, this)"

    def _emitbuild(self, code: Any) -> str:
        _import_runtime(code)
        code.append("_EMPTY = {}\n_TAG_DEFAULTS = {}\n_MISSING = object()\n")
        fid = code.allocateId()
        fname = f"build_kstruct_{fid}"
        lines = [f"def {fname}(obj, io, this):", "    s = obj"]
        if self.nullable:
            lines += [
                "    if s is None:",
                "        io.write(b'\\xff')",
                "        return s",
                "    io.write(b'\\x01')",
            ]
        lines.append("    g = s.get")
        for group in self._groups():
            if len(group) > 1:
                fmt = "".join(f.subcon.fmt for f in group)
                args = ", ".join(f"g({f.name!r}, {_literal(code, f.default)})" for f in group)
                lines.append(f"    io.write({_struct_var(code, fmt)}.pack({args}))")
            else:
                f = group[0]
                lines.append(f"    obj = g({f.name!r}, {_literal(code, f.default)})")
                lines.append(f"    {f.subcon._compilebuild(code)}")
        if self.flexible:
            if not self.tagged:
                lines.append("    unknown = g('_unknown_tagged_fields')")
                lines.append("    if unknown:")
                lines.append("        k_write_tagged(io, [], unknown)")
                lines.append("    else:")
                lines.append("        io.write(b'\\x00')")
            else:
                lines.append("    tagged = []")
                lines.append("    outer = io")
                lines.append("    unknown = g('_unknown_tagged_fields')")
                for f in self.tagged:
                    key = f"{fid}_{f.tag}"
                    default = _literal(code, f.default)
                    # a tagged field is written only when it differs from its default. A missing
                    # key is the default (the common, cheap case); simple values compare
                    # directly; structs, arrays and bytes compare by encoding, so that partial
                    # mappings and lists/tuples compare as Kafka's equals() would
                    lines.append(f"    obj = g({f.name!r}, _MISSING)")
                    simple = isinstance(f.subcon, (Fixed, Uuid, KString))
                    if simple:
                        lines.append(f"    if obj is not _MISSING and obj != {default}:")
                    else:
                        lines.append("    if obj is not _MISSING:")
                    lines.append("        io = k_fresh_io()")
                    lines.append(f"        {f.subcon._compilebuild(code)}")
                    lines.append("        data = io.getvalue()")
                    if simple:
                        lines.append(f"        tagged.append(({f.tag}, data))")
                    else:
                        lines.append(f"        dflt = _TAG_DEFAULTS.get({key!r})")
                        lines.append("        if dflt is None:")
                        lines.append("            io = k_fresh_io()")
                        lines.append(f"            obj = {default}")
                        lines.append(f"            {f.subcon._compilebuild(code)}")
                        lines.append(f"            dflt = _TAG_DEFAULTS[{key!r}] = io.getvalue()")
                        lines.append("        if data != dflt:")
                        lines.append(f"            tagged.append(({f.tag}, data))")
                lines.append("    io = outer")
                lines.append("    if tagged or unknown:")
                lines.append("        k_write_tagged(io, tagged, unknown)")
                lines.append("    else:")
                lines.append("        io.write(b'\\x00')")
        lines.append("    return s")
        code.append("\n".join(lines) + "\n")
        return f"{fname}(obj, io, this)"


class KMessage(_Compiling):
    """Top level of a schema: sets up the parse context when called through construct's API."""

    def __init__(self, subcon: Construct) -> None:
        super().__init__()
        self.subcon = subcon

    def _emitparse(self, code: Any) -> str:
        _import_runtime(code)
        fname = f"parse_kmessage_{code.allocateId()}"
        code.append(
            f"def {fname}(io, this):\n"
            "    if '_end' not in this:\n"
            "        data = io.getvalue()\n"
            "        this = {'_end': len(data), '_frame': memoryview(data)}\n"
            f"    return {self.subcon._compileparse(code)}\n"
        )
        return f"{fname}(io, this)"

    def _emitbuild(self, code: Any) -> str:
        return self.subcon._compilebuild(code)
