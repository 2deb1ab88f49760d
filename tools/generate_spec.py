"""Generate ``amqp_core/spec.py`` from RabbitMQ's AMQP 0-9-1 JSON protocol description.

``spec.py`` holds the constants and tables and imports the classes from the modules generated
beside it, one per AMQP class (``_spec_basic.py`` ...) plus ``_spec_support.py``: each stays
small to compile, which keeps the peak memory of a process without ``.pyc`` files low.

Usage::

    python -m tools.generate_spec            # (re)write packages/amqp-core/src/amqp_core/spec.py
    python -m tools.generate_spec --check    # exit 1 if the committed module is out of date

The JSON (``amqp-rabbitmq-0.9.1.json``, MIT-licensed, from RabbitMQ's codegen) is read from
``../shared/spec/`` beside the repository, or from ``--spec`` / ``$AMQP_SPEC_JSON``; it is never
copied into the repository. The output is piped through ``ruff format`` so that it is committed
exactly as the formatter would leave it, which makes generation deterministic for a given ruff.

Every method class gets an encoder and a decoder specialised at generation time: consecutive
fixed-size fields (and the length octet of a following string) are merged into one precompiled
``struct.Struct``, adjacent bit fields are packed into shared octets, and nothing is interpreted
per field at run time. When the fast path meets a value or input it does not expect it hands
over to the generic, checking codec of :mod:`amqp_core.amqp_object`, which accepts pika's
lenient inputs and raises the typed errors. See ``docs/spec.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import keyword
import os
import re
import struct
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ("DEFAULT_OUTPUT", "default_spec_path", "main", "render")

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEC_FILE_NAME = "amqp-rabbitmq-0.9.1.json"
#: Environment variable that points at the JSON when it is not in ``../shared/spec/``.
SPEC_ENV_VAR = "AMQP_SPEC_JSON"
DEFAULT_OUTPUT = REPO_ROOT / "packages" / "amqp-core" / "src" / "amqp_core" / "spec.py"
REGENERATE_COMMAND = "python -m tools.generate_spec  (or: hatch run codegen)"

#: Struct format code of each fixed-size field kind (spec section 4.2.5: network byte order).
FIXED_FORMATS = {"octet": "B", "short": "H", "long": "I", "longlong": "Q", "timestamp": "Q"}

#: Python annotation of each field kind, for attributes and constructor parameters.
PYTHON_TYPES = {
    "bit": "bool",
    "octet": "int",
    "short": "int",
    "long": "int",
    "longlong": "int",
    "timestamp": "int",
    "shortstr": "str",
    "longstr": "str | bytes",
    "table": "Mapping[str, FieldValue] | None",
}

#: Argument names that are Python keywords, renamed as pika renames them.
KEYWORD_RENAMES = {"global": "global_qos"}

#: Methods whose arguments have no defaults in pika's signatures (the JSON gives none either,
#: and pika's other methods default such arguments to None).
REQUIRED_ARGUMENT_METHODS = {("connection", "update-secret")}

#: Properties whose constructor argument may be an Enum, stored as its int value (pika's
#: ``delivery_mode`` accepts ``DeliveryMode``).
ENUM_PROPERTIES = {"delivery-mode"}

#: Short strings whose encoded form (length octet included) is cached by value, because they
#: repeat from one message to the next in real traffic: the exchange and routing key of a publish
#: and the low-cardinality properties. Message and correlation ids, unique per message, are not.
CACHED_SHORTSTRS = {
    ("basic", "publish", "exchange"),
    ("basic", "publish", "routing-key"),
    ("basic", None, "content-type"),
    ("basic", None, "content-encoding"),
    ("basic", None, "reply-to"),
    ("basic", None, "expiration"),
    ("basic", None, "type"),
    ("basic", None, "user-id"),
    ("basic", None, "app-id"),
    ("basic", None, "cluster-id"),
}

#: Constants that are not in the JSON: pika's values. FRAME_MAX_SIZE is pika's default
#: frame_max; the header and end sizes follow spec section 4.2.3 (a 7-octet header, one end octet).
EXTRA_CONSTANTS = (
    ("FRAME_MAX_SIZE", 131072),
    ("FRAME_HEADER_SIZE", 7),
    ("FRAME_END_SIZE", 1),
    ("TRANSIENT_DELIVERY_MODE", 1),
    ("PERSISTENT_DELIVERY_MODE", 2),
)

# Local names the generated codecs use; an argument with one of these names would clash.
_RESERVED_LOCALS = {"buf", "offset", "end", "data", "o", "e", "n", "stop", "inst", "flags"}
_RESERVED_LOCALS |= {"chunks", "raw", "cls", "self"}

_REQUIRED = object()


@dataclass(frozen=True)
class Field:
    """One method argument or content property."""

    spec_name: str
    name: str
    kind: str
    default: object

    @property
    def python_type(self) -> str:
        """The annotation of the attribute."""
        return PYTHON_TYPES[self.kind]


@dataclass(frozen=True)
class MethodSpec:
    """One AMQP method."""

    class_name: str
    class_id: int
    spec_name: str
    method_id: int
    synchronous: bool
    content: bool
    fields: tuple[Field, ...]

    @property
    def py_name(self) -> str:
        """``DeclareOk`` for ``declare-ok``."""
        return camel_case(self.spec_name)

    @property
    def full_name(self) -> str:
        """``Queue.DeclareOk``."""
        return f"{camel_case(self.class_name)}.{self.py_name}"

    @property
    def index(self) -> int:
        """``class_id << 16 | method_id``."""
        return self.class_id << 16 | self.method_id


@dataclass(frozen=True)
class ClassSpec:
    """One AMQP class, its methods and its content properties."""

    spec_name: str
    class_id: int
    methods: tuple[MethodSpec, ...]
    properties: tuple[Field, ...]

    @property
    def py_name(self) -> str:
        """``Basic`` for ``basic``."""
        return camel_case(self.spec_name)


@dataclass(frozen=True)
class Spec:
    """The parsed JSON."""

    version: tuple[int, int, int]
    port: int
    constants: tuple[tuple[str, int, str | None], ...]
    classes: tuple[ClassSpec, ...]
    copyright_line: str


def camel_case(name: str) -> str:
    """``recover-async`` -> ``RecoverAsync``."""
    return "".join(part.capitalize() for part in name.split("-"))


def python_name(name: str) -> str:
    """``auto-delete`` -> ``auto_delete``; keywords get pika's names."""
    result = name.replace("-", "_")
    if keyword.iskeyword(result):
        result = KEYWORD_RENAMES.get(result, result + "_")
    return result


def constant_name(name: str) -> str:
    """``FRAME-MIN-SIZE`` -> ``FRAME_MIN_SIZE``."""
    return name.replace("-", "_").upper()


def default_spec_path() -> Path:
    """The JSON's path: ``$AMQP_SPEC_JSON`` or ``<repo>/../shared/spec/<file>``."""
    override = os.environ.get(SPEC_ENV_VAR)
    if override:
        return Path(override)
    return REPO_ROOT.parent / "shared" / "spec" / SPEC_FILE_NAME


def parse_spec(raw: bytes) -> Spec:
    """Turn the JSON into the generator's model."""
    document = json.loads(raw)
    domains: dict[str, str] = dict(document["domains"])

    def make_field(argument: dict[str, object], required: bool) -> Field:
        spec_name = str(argument["name"])
        kind = str(argument["type"]) if "type" in argument else domains[str(argument["domain"])]
        if kind not in PYTHON_TYPES:
            raise ValueError(f"unsupported AMQP type {kind!r} for {spec_name!r}")
        if required:
            default: object = _REQUIRED
        elif kind == "table":
            # pika defaults tables to None (the JSON says {}): no shared mutable default.
            default = None
        else:
            default = argument.get("default-value")
        name = python_name(spec_name)
        if name in _RESERVED_LOCALS:
            raise ValueError(f"argument name {name!r} clashes with a generated local variable")
        return Field(spec_name, name, kind, default)

    classes = []
    for cls in document["classes"]:
        methods = []
        for method in cls["methods"]:
            required = (cls["name"], method["name"]) in REQUIRED_ARGUMENT_METHODS
            methods.append(
                MethodSpec(
                    class_name=cls["name"],
                    class_id=cls["id"],
                    spec_name=method["name"],
                    method_id=method["id"],
                    synchronous=bool(method.get("synchronous", False)),
                    content=bool(method.get("content", False)),
                    fields=tuple(make_field(arg, required) for arg in method["arguments"]),
                )
            )
        properties = tuple(make_field(prop, False) for prop in cls.get("properties") or ())
        classes.append(ClassSpec(cls["name"], cls["id"], tuple(methods), properties))
    constants = tuple(
        (constant_name(item["name"]), int(item["value"]), item.get("class"))
        for item in document["constants"]
    )
    version = (document["major-version"], document["minor-version"], document["revision"])
    return Spec(
        version=version,
        port=document["port"],
        constants=constants,
        classes=tuple(classes),
        copyright_line=document["copyright"][0].strip(),
    )


class Writer:
    """Collects generated lines with indentation."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.structs: dict[str, str] = {}

    def __call__(self, indent: int = 0, text: str = "") -> None:
        self.lines.append("    " * indent + text if text else "")

    def struct(self, fmt: str) -> str:
        """The module-level name of the precompiled ``struct.Struct(">" + fmt)``."""
        name = f"_S_{fmt}"
        self.structs[name] = fmt
        return name


def _literal(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def _bit_expression(names: Sequence[str]) -> str:
    return " | ".join(
        f"({1 << position} if self.{name} else 0)" for position, name in enumerate(names)
    )


def _items(fields: Sequence[Field]) -> Iterator[tuple[str, list[Field]]]:
    """Group fields: runs of up to 8 adjacent bits become one ``("bits", [...])`` item."""
    bits: list[Field] = []
    for field in fields:
        if field.kind == "bit":
            if len(bits) == 8:
                yield "bits", bits
                bits = []
            bits.append(field)
            continue
        if bits:
            yield "bits", bits
            bits = []
        yield field.kind, [field]
    if bits:
        yield "bits", bits


def _docstring(w: Writer, indent: int, summary: str, attributes: Sequence[Field]) -> None:
    if not attributes:
        w(indent, f'"""{summary}"""')
        return
    w(indent, f'"""{summary}')
    w(indent)
    w(indent, "Attributes:")
    for field in attributes:
        w(indent + 1, f"{field.name}: {field.kind} ``{field.spec_name}``.")
    w(indent, '"""')


def _init(
    w: Writer, indent: int, fields: Sequence[Field], enum_names: set[str], optional: bool
) -> None:
    """Emit ``__init__``; ``optional`` types every attribute ``X | None`` (properties)."""
    params = []
    for field in fields:
        annotation = field.python_type
        if optional and not annotation.endswith("| None"):
            annotation += " | None"
        if field.name in enum_names:
            annotation = "int | Enum | None"
        if field.default is _REQUIRED:
            params.append(f"{field.name}: {annotation}")
        elif field.default is None and not annotation.endswith("| None"):
            params.append(f"{field.name}: {annotation} | None = None")
        else:
            params.append(f"{field.name}: {annotation} = {_literal(field.default)}")
    w(indent, f"def __init__(self, {', '.join(params)}) -> None:")
    for field in fields:
        if field.name in enum_names:
            w(indent + 1, f"self.{field.name} = _enum_int({field.name})")
        elif not optional and field.default is None and not field.python_type.endswith("| None"):
            # pika's "not set yet" None; the attribute is typed as decoded from the wire and
            # packing rejects a None that is still there.
            w(indent + 1, f'self.{field.name} = cast("{field.python_type}", {field.name})')
        else:
            w(indent + 1, f"self.{field.name} = {field.name}")


def _method_pack(w: Writer, indent: int, method: MethodSpec) -> None:
    w(indent, "def pack(self) -> bytes:")
    w(indent + 1, '"""Encode as a method frame payload (see :meth:`amqp_object.Method.pack`)."""')
    if not method.fields:
        w(indent + 1, f"return {struct.pack('>I', method.index)!r}")
        return
    body: list[str] = []
    pieces: list[str] = []
    run_fmt = "I"
    run_args = [f"0x{method.index:08X}"]
    literal_values: list[int] = [method.index]

    def flush() -> None:
        nonlocal run_fmt, run_args, literal_values
        if not run_fmt:
            return
        if len(literal_values) == len(run_args):
            pieces.append(repr(struct.pack(">" + run_fmt, *literal_values)))
        elif run_fmt == "B" and (run_args[0].startswith(("len(", "("))):
            # A string length or a bit octet: always in range for the lookup table (a length
            # over 255 raises IndexError, which hands over to the checked path).
            pieces.append(f"_BYTE[{run_args[0]}]")
        else:
            pieces.append(f"{w.struct(run_fmt)}.pack({', '.join(run_args)})")
        run_fmt, run_args, literal_values = "", [], []

    for kind, group in _items(method.fields):
        field = group[0]
        if kind == "bits":
            run_fmt += "B"
            run_args.append(_bit_expression([f.name for f in group]))
        elif kind in FIXED_FORMATS:
            run_fmt += FIXED_FORMATS[kind]
            run_args.append(f"self.{field.name}")
        elif kind == "shortstr" and (
            (method.class_name, method.spec_name, field.spec_name) in CACHED_SHORTSTRS
        ):
            # Length octet and UTF-8 in one cached piece.
            body.append(
                f"{field.name} = _SHORTSTRS.get(self.{field.name}) or _shortstr(self.{field.name})"
            )
            flush()
            pieces.append(field.name)
        elif kind == "shortstr":
            body.append(f"{field.name} = self.{field.name}.encode()")
            run_fmt += "B"
            run_args.append(f"len({field.name})")
            flush()
            pieces.append(field.name)
        elif kind == "longstr":
            body.append(f"{field.name} = self.{field.name}")
            body.append(
                f"{field.name}_raw = {field.name}.encode() "
                f"if isinstance({field.name}, str) else {field.name}"
            )
            run_fmt += "I"
            run_args.append(f"len({field.name}_raw)")
            flush()
            pieces.append(f"{field.name}_raw")
        elif kind == "table":
            flush()
            pieces.append(f"pack_table(self.{field.name})")
        else:  # pragma: no cover - parse_spec rejects unknown kinds
            raise AssertionError(kind)
    flush()
    if len(pieces) == 1:
        result = pieces[0]
    elif len(pieces) == 2:
        result = f"{pieces[0]} + {pieces[1]}"
    else:
        result = f"b''.join(({', '.join(pieces)}))"
    if all(field.kind == "bit" for field in method.fields):
        # Bits take any value (its truth), so this path cannot fail and needs no fallback.
        w(indent + 1, f"return {result}")
        return
    w(indent + 1, "try:")
    for line in body:
        w(indent + 2, line)
    w(indent + 2, f"return {result}")
    w(indent + 1, "except Exception:")
    w(indent + 2, "# A value of an unexpected type or range: the checked path accepts what pika")
    w(indent + 2, "# accepts and names the field it rejects.")
    w(indent + 2, "return self._pack_checked()")


def _bytes_preamble(w: Writer, indent: int) -> None:
    """Bind ``data``/``o``/``stop``: the buffer itself if it is bytes, else a copy of the payload.

    Decoding strings from ``bytes`` is faster than from a memoryview, and copying just the
    arguments costs less than the per-string conversions it saves.
    """
    w(indent, "if isinstance(buf, bytes):")
    w(indent + 1, "data = buf")
    w(indent + 1, "o = offset")
    w(indent + 1, "stop = end")
    w(indent, "else:")
    w(indent + 1, "if isinstance(buf, memoryview):")
    w(indent + 2, "data = buf[offset:end].tobytes()")
    w(indent + 1, "else:")
    w(indent + 2, "data = bytes(buf[offset:end])")
    w(indent + 1, "o = 0")
    w(indent + 1, "stop = end - offset")


def _method_unpack(w: Writer, indent: int, method: MethodSpec, cls_name: str) -> None:
    w(indent, "@classmethod")
    w(indent, f"def unpack(cls, buf: Buffer, offset: int, end: int) -> {cls_name}:")
    w(indent + 1, '"""Decode ``buf[offset:end]`` (see :meth:`amqp_object.Method.unpack`)."""')
    if not method.fields:
        w(indent + 1, "if offset != end:")
        w(indent + 2, "return cls._unpack_checked(buf, offset, end)")
        w(indent + 1, "return _new(cls)")
        return
    has_strings = any(f.kind in ("shortstr", "longstr") for f in method.fields)
    body: list[str] = []
    run_fmt = ""
    run_targets: list[str] = []
    pending_bits: list[tuple[str, list[Field]]] = []
    bit_groups = 0

    def flush() -> None:
        nonlocal run_fmt, run_targets, pending_bits
        if not run_fmt:
            return
        if run_fmt == "B":
            body.append(f"{run_targets[0]} = data[o]")
            body.append("o += 1")
        else:
            targets = ", ".join(run_targets) + ("," if len(run_targets) == 1 else "")
            body.append(f"{targets} = {w.struct(run_fmt)}.unpack_from(data, o)")
            body.append(f"o += {struct.calcsize('>' + run_fmt)}")
        for local, group in pending_bits:
            for position, field in enumerate(group):
                body.append(f"{field.name} = ({local} & {1 << position}) != 0")
        run_fmt, run_targets, pending_bits = "", [], []

    for kind, group in _items(method.fields):
        field = group[0]
        if kind == "bits":
            bit_groups += 1
            local = "bits" if bit_groups == 1 else f"bits{bit_groups}"
            run_fmt += "B"
            run_targets.append(local)
            pending_bits.append((local, group))
        elif kind in FIXED_FORMATS:
            run_fmt += FIXED_FORMATS[kind]
            run_targets.append(field.name)
        elif kind in ("shortstr", "longstr"):
            run_fmt += "B" if kind == "shortstr" else "I"
            run_targets.append("n")
            flush()
            body.append("e = o + n")
            body.append(f"{field.name} = data[o:e]" + (".decode()" if kind == "shortstr" else ""))
            body.append("o = e")
        elif kind == "table":
            flush()
            body.append(f"{field.name}, o = unpack_table(data, o, stop)")
        else:  # pragma: no cover - parse_spec rejects unknown kinds
            raise AssertionError(kind)
    flush()
    w(indent + 1, "try:")
    if has_strings:
        _bytes_preamble(w, indent + 2)
    else:
        w(indent + 2, "data = buf")
        w(indent + 2, "o = offset")
        w(indent + 2, "stop = end")
    for line in body:
        w(indent + 2, line)
    w(indent + 1, "except Exception:")
    w(indent + 2, "# Truncated or malformed: the checked path finds and names the fault.")
    w(indent + 2, "return cls._unpack_checked(buf, offset, end)")
    w(indent + 1, "if o != stop:")
    w(indent + 2, "return cls._unpack_checked(buf, offset, end)")
    w(indent + 1, "inst = _new(cls)")
    for field in method.fields:
        w(indent + 1, f"inst.{field.name} = {field.name}")
    w(indent + 1, "return inst")


def _render_method(w: Writer, cls: ClassSpec, method: MethodSpec) -> None:
    w()
    w(1, f"class {method.py_name}(amqp_object.Method):")
    traits = ["synchronous" if method.synchronous else "asynchronous"]
    if method.content:
        traits.append("carries content")
    _docstring(
        w,
        2,
        f"``{cls.spec_name}.{method.spec_name}`` ({cls.class_id}, {method.method_id}): "
        f"{', '.join(traits)}.",
        method.fields,
    )
    w()
    w(2, f"__slots__ = ({''.join(repr(n) + ', ' for n in sorted(f.name for f in method.fields))})")
    w()
    w(2, f"INDEX = 0x{method.index:08X}")
    w(2, f'NAME = "{method.full_name}"')
    w(2, f"synchronous = {method.synchronous}")
    w(2, f"HAS_CONTENT = {method.content}")
    arguments = "".join(f'("{f.name}", "{f.kind}"), ' for f in method.fields)
    w(2, f"_ARGUMENTS = ({arguments})")
    if method.fields:
        w()
        for field in method.fields:
            w(2, f"{field.name}: {field.python_type}")
        w()
        _init(w, 2, method.fields, set(), optional=False)
    w()
    _method_pack(w, 2, method)
    w()
    _method_unpack(w, 2, method, f"{cls.py_name}.{method.py_name}")


def _render_properties(w: Writer, cls: ClassSpec) -> str:
    name = f"{cls.py_name}Properties"
    props = cls.properties
    if len(props) > 15:  # pragma: no cover - would need continued flag words when packing
        raise ValueError(f"{name}: more than 15 properties")
    flags = {prop.name: 1 << (15 - position) for position, prop in enumerate(props)}
    enum_names = {prop.name for prop in props if prop.spec_name in ENUM_PROPERTIES}
    w()
    w()
    w(0, f"class {name}(amqp_object.Properties):")
    _docstring(
        w,
        1,
        f"The content properties of class ``{cls.spec_name}`` ({cls.class_id}); None means absent.",
        props,
    )
    w()
    w(1, f"__slots__ = ({''.join(repr(n) + ', ' for n in sorted(flags))})")
    w()
    w(1, f"INDEX = {cls.class_id}")
    w(1, f'NAME = "{name}"')
    for prop in props:
        w(1, f"FLAG_{prop.name.upper()} = 0x{flags[prop.name]:04X}")
    entries = "".join(f'("{p.name}", "{p.kind}", 0x{flags[p.name]:04X}), ' for p in props)
    w(1, f"_PROPERTIES = ({entries})")
    w(1, "_DECODERS: ClassVar[dict[int, amqp_object.PropertiesDecoder]] = {}")
    w()
    for prop in props:
        annotation = prop.python_type
        w(1, f"{prop.name}: {annotation}" + ("" if annotation.endswith("| None") else " | None"))
    w()
    _init(w, 1, props, enum_names, optional=True)

    # pack: flag word, then the values of the properties that are set, in order.
    w()
    w(1, "def pack(self) -> bytes:")
    w(2, '"""Encode flags and values (see :meth:`amqp_object.Properties.pack`)."""')
    w(2, "try:")
    w(3, "flags = 0")
    w(3, "chunks: list[bytes] = [b''] # the flag word, once known")
    for prop in props:
        flag = f"0x{flags[prop.name]:04X}"
        w(3, f"{prop.name} = self.{prop.name}")
        w(3, f"if {prop.name} is not None:")
        w(4, f"flags |= {flag}")
        if prop.kind == "shortstr" and (cls.spec_name, None, prop.spec_name) in CACHED_SHORTSTRS:
            w(4, f"chunks.append(_SHORTSTRS.get({prop.name}) or _shortstr({prop.name}))")
        elif prop.kind == "shortstr":
            w(4, f"raw = {prop.name}.encode()")
            w(4, "chunks.append(_BYTE[len(raw)] + raw)")
        elif prop.kind == "longstr":
            w(4, f"raw = {prop.name}.encode() if isinstance({prop.name}, str) else {prop.name}")
            w(4, f"chunks.append({w.struct('I')}.pack(len(raw)))")
            w(4, "chunks.append(raw)")
        elif prop.kind == "table":
            w(4, f"chunks.append(pack_table({prop.name}))")
        elif prop.kind == "octet":
            # KeyError (out of range, not an int) hands over to the checked path.
            w(4, f"chunks.append(_OCTETS[{prop.name}])")
        elif prop.kind in FIXED_FORMATS:
            w(4, f"chunks.append({w.struct(FIXED_FORMATS[prop.kind])}.pack({prop.name}))")
        elif prop.kind != "bit":  # pragma: no cover
            raise AssertionError(prop.kind)
    w(3, f"chunks[0] = {w.struct('H')}.pack(flags)")
    w(3, "return b''.join(chunks)")
    w(2, "except Exception:")
    w(3, "# An unexpected type or range: the checked path accepts what pika accepts (an Enum,")
    w(3, "# a datetime, bytes) and names the property it rejects.")
    w(3, "return self._pack_checked()")

    # unpack: a decoder specialised for the flag word, built on first use.
    w()
    w(1, "@classmethod")
    w(1, f"def unpack(cls, buf: Buffer, offset: int, end: int) -> {name}:")
    w(2, '"""Decode ``buf[offset:end]`` (see :meth:`amqp_object.Properties.unpack`).')
    w()
    w(2, "The decoder for the flag word is built once (:meth:`amqp_object.Properties._decoder`):")
    w(2, "it reads just the properties that are present, with no per-property test.")
    w(2, '"""')
    w(2, "try:")
    _bytes_preamble(w, 3)
    w(3, "flags = data[o] << 8 | data[o + 1]")
    w(3, "decoder = cls._DECODERS.get(flags) or cls._decoder(flags)")
    w(3, f"inst: {name} = decoder(cls, data, o + 2, stop)")
    w(2, "except Exception:")
    w(3, "# Truncated or malformed, a continued flag word, or more flag words than are cached:")
    w(3, "# the checked path decodes, or finds and names the fault.")
    w(3, "return cls._unpack_checked(buf, offset, end)")
    w(2, "return inst")
    return name


def _all_sort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then everything else.
    if name.isupper() or (name.replace("_", "").isupper()):
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def render_unformatted(raw: bytes, source_name: str = SPEC_FILE_NAME) -> dict[str, str]:
    """Generate the modules' sources (before ``ruff format``) from the JSON bytes.

    Returns:
        The source of each module by file name: ``spec.py``, ``_spec_support.py`` and one
        ``_spec_<class>.py`` per AMQP class.
    """
    spec = parse_spec(raw)
    digest = hashlib.sha256(raw).hexdigest()
    w = Writer()
    body = Writer()
    public: list[str] = []

    # Constants.
    # A reply code has a soft/hard class, except REPLY-SUCCESS; the rest are frame constants.
    reply_codes = sorted(
        ((n, v, c) for n, v, c in spec.constants if c or n.startswith("REPLY_")),
        key=lambda item: item[1],
    )
    frame_constants = [(n, v) for n, v, c in spec.constants if not (c or n.startswith("REPLY_"))]
    extra = dict(EXTRA_CONSTANTS)
    body(0, f"PROTOCOL_VERSION: Final = {spec.version!r}")
    body(0, f"PORT: Final = {spec.port}")
    public += ["PROTOCOL_VERSION", "PORT"]
    body()
    body(
        0, "# Frame types and sizes (spec section 4.2.3). FRAME_MAX_SIZE is not in the spec: it is"
    )
    body(0, "# pika's default frame_max.")
    for name, value in frame_constants:
        body(0, f"{name}: Final = {value}")
        public.append(name)
        if name == "FRAME_MIN_SIZE":
            body(0, f"FRAME_MAX_SIZE: Final = {extra['FRAME_MAX_SIZE']}")
            public.append("FRAME_MAX_SIZE")
    for name in ("FRAME_HEADER_SIZE", "FRAME_END_SIZE"):
        body(0, f"{name}: Final = {extra[name]}")
        public.append(name)
    body()
    body(0, "# Values of BasicProperties.delivery_mode.")
    for name in ("TRANSIENT_DELIVERY_MODE", "PERSISTENT_DELIVERY_MODE"):
        body(0, f"{name}: Final = {extra[name]}")
        public.append(name)
    body()
    body(0, "# Reply codes (spec section 1.2.1, constants).")
    for name, value, _ in reply_codes:
        body(0, f"{name}: Final = {value}")
        public.append(name)
    body()
    body()
    body(0, "class ReplyCode(IntEnum):")
    body(1, '"""Every AMQP reply code, by its spec name."""')
    body()
    for name, value, _ in reply_codes:
        body(1, f"{name} = {value}")
    public.append("ReplyCode")
    soft = [n for n, _, c in reply_codes if c == "soft-error"]
    hard = [n for n, _, c in reply_codes if c == "hard-error"]
    body()
    body()
    body(0, "#: Reply codes of channel exceptions: the broker closes only the channel.")
    body(0, f"SOFT_ERRORS: Final[frozenset[int]] = frozenset(({''.join(n + ', ' for n in soft)}))")
    body(0, "#: Reply codes of connection exceptions: the broker closes the whole connection.")
    body(0, f"HARD_ERRORS: Final[frozenset[int]] = frozenset(({''.join(n + ', ' for n in hard)}))")
    public += ["SOFT_ERRORS", "HARD_ERRORS", "is_hard_error", "is_soft_error"]
    body()
    body()
    body(0, "def is_hard_error(reply_code: int) -> bool:")
    body(1, '"""Return whether ``reply_code`` is a connection exception (a hard error)."""')
    body(1, "return reply_code in HARD_ERRORS")
    body()
    body()
    body(0, "def is_soft_error(reply_code: int) -> bool:")
    body(1, '"""Return whether ``reply_code`` is a channel exception (a soft error)."""')
    body(1, "return reply_code in SOFT_ERRORS")

    # Each AMQP class (with its property class) is generated into a module of its own, which
    # spec.py imports: compiled as one 160 KiB module the spec raised the peak RSS of a process
    # that compiles from source (no .pyc) by about 10 MiB, in parts by about 3 MiB.
    property_names: dict[str, str] = {}
    parts: dict[str, str] = {}
    part_imports: list[tuple[str, list[str]]] = []
    for cls in spec.classes:
        part = Writer()
        names: list[str] = []
        if cls.properties:
            # The property class comes first so that its class can alias it (Basic.Properties).
            property_names[cls.spec_name] = _render_properties(part, cls)
            names.append(property_names[cls.spec_name])
        part()
        part()
        part(0, f"class {cls.py_name}(amqp_object.Class):")
        part(1, f'"""AMQP class ``{cls.spec_name}`` ({cls.class_id}) and its methods."""')
        part()
        part(1, "__slots__ = ()")
        part()
        part(1, f"INDEX = {cls.class_id}")
        part(1, f'NAME = "{cls.py_name}"')
        if cls.spec_name in property_names:
            part(1, f"Properties = {property_names[cls.spec_name]}")
        for method in cls.methods:
            _render_method(part, cls, method)
        names.append(cls.py_name)
        public.extend(names)
        module = f"_spec_{python_name(cls.spec_name)}"
        parts[f"{module}.py"] = _render_part(part, cls, names, source_name, digest)
        part_imports.append((module, sorted(names)))

    all_methods = [(cls, m) for cls in spec.classes for m in cls.methods]
    body()
    body()
    body(0, "#: Every method class by its index (``class_id << 16 | method_id``).")
    body(0, "methods: Final[dict[int, type[amqp_object.Method]]] = {")
    for cls, method in all_methods:
        body(1, f"0x{method.index:08X}: {cls.py_name}.{method.py_name},")
    body(0, "}")
    body()
    body(0, "#: Every content property class by the id of its class.")
    body(0, "props: Final[dict[int, type[amqp_object.Properties]]] = {")
    for cls in spec.classes:
        if cls.spec_name in property_names:
            body(1, f"{cls.class_id}: {property_names[cls.spec_name]},")
    body(0, "}")
    content = [f"0x{m.index:08X}" for _, m in all_methods if m.content]
    body()
    body(0, f"_CONTENT_METHODS: Final = frozenset(({''.join(c + ', ' for c in content)}))")
    body()
    body()
    body(0, "def has_content(index: int) -> bool:")
    body(1, '"""Return whether the method with this index is followed by content frames."""')
    body(1, "return index in _CONTENT_METHODS")
    public += ["methods", "props", "has_content"]
    # pika's spec module re-exports these two enums (pika.spec.DeliveryMode, .ExchangeType).
    public += ["DeliveryMode", "ExchangeType"]

    # Head of the module: written last, since it imports the names the parts define.
    w(0, _generated_line(source_name, digest))
    version = "-".join(map(str, spec.version))
    w(0, f'"""AMQP {version} with RabbitMQ\'s extensions: constants, methods and properties.')
    w()
    w(0, "pika-compatible (``pika.spec``): ``spec.Basic.Publish``, ``spec.BasicProperties``,")
    w(0, "``spec.methods``, ``spec.props``, ``spec.has_content`` and the constants keep pika's")
    w(0, "names, and ``spec.DeliveryMode`` and ``spec.ExchangeType`` are re-exported as in pika.")
    w(0, "Each method and property class has ``pack()`` (to wire bytes) and ``unpack(buf, offset,")
    w(0, "end)`` (from wire bytes), specialised per class; see :mod:`amqp_core.amqp_object` for")
    w(0, "their contracts and the checking codec they fall back to. Regenerate with")
    w(0, f"``{REGENERATE_COMMAND}``; see docs/spec.md.")
    w()
    w(0, f"Protocol data from RabbitMQ's {source_name},")
    w(0, f"{spec.copyright_line} Distributed under the MIT license.")
    w(0, '"""')
    w()
    w(0, "from __future__ import annotations")
    w()
    w(0, "from enum import IntEnum")
    w(0, "from typing import Final")
    w()
    w(0, "from amqp_core import amqp_object")
    for module, names in sorted(part_imports):
        w(0, f"from amqp_core.{module} import {', '.join(names)}")
    w(0, "from amqp_core.delivery_mode import DeliveryMode")
    w(0, "from amqp_core.exchange_type import ExchangeType")
    w()
    w(0, f"__all__ = ({''.join(repr(n) + ', ' for n in sorted(public, key=_all_sort_key))})")
    w()
    return {
        "spec.py": "\n".join(w.lines + body.lines) + "\n",
        "_spec_support.py": _render_support(source_name, digest),
        **parts,
    }


def _generated_line(source_name: str, digest: str) -> str:
    """The first line of every generated module (longer than the line limit, hence its noqa)."""
    header = f"Generated by tools/generate_spec.py from {source_name} (sha256 {digest})."
    return f"# {header} Do not edit.  # noqa: E501"


#: Names a part module may use, and the import that provides each.
_PART_IMPORTS: tuple[tuple[str, str], ...] = (
    ("Mapping", "collections.abc"),
    ("Enum", "enum"),
    ("ClassVar", "typing"),
    ("cast", "typing"),
    ("_BYTE", "amqp_core._spec_support"),
    ("_OCTETS", "amqp_core._spec_support"),
    ("_SHORTSTRS", "amqp_core._spec_support"),
    ("_enum_int", "amqp_core._spec_support"),
    ("_new", "amqp_core._spec_support"),
    ("_shortstr", "amqp_core._spec_support"),
    ("Buffer", "amqp_core._types"),
    ("FieldValue", "amqp_core.data"),
    ("pack_table", "amqp_core.data"),
    ("unpack_table", "amqp_core.data"),
)


def _render_part(
    part: Writer, cls: ClassSpec, names: Sequence[str], source_name: str, digest: str
) -> str:
    """One AMQP class's module: its imports (those its code uses), structs and classes."""
    code = "\n".join(part.lines)
    used: dict[str, list[str]] = {}
    for name, module in _PART_IMPORTS:
        if re.search(rf"(?<![\w.]){re.escape(name)}\b", code):
            used.setdefault(module, []).append(name)
    w = Writer()
    w(0, _generated_line(source_name, digest))
    w(0, f'"""AMQP class ``{cls.spec_name}`` ({cls.class_id}) of :mod:`amqp_core.spec`.')
    w()
    w(0, "Import it from :mod:`amqp_core.spec`. Each AMQP class is generated into a module of its")
    w(0, "own so that no module is large to compile: a process that compiles from source (no")
    w(0, "``.pyc``) peaks lower.")
    w(0, '"""')
    w()
    w(0, "from __future__ import annotations")
    w()
    standard = [
        f"from {m} import {', '.join(used[m])}"
        for m in ("collections.abc", "enum", "typing")
        if m in used
    ]
    if part.structs:
        standard.insert(0, "import struct")
    if standard:
        for line in standard:
            w(0, line)
        w()
    w(0, "from amqp_core import amqp_object")
    for module in ("amqp_core._spec_support", "amqp_core._types", "amqp_core.data"):
        if module in used:
            w(0, f"from {module} import {', '.join(used[module])}")
    w()
    w(0, f"__all__ = ({''.join(repr(n) + ', ' for n in sorted(names, key=_all_sort_key))})")
    if part.structs:
        w()
        w(0, "# Precompiled structs (network byte order), named by their format.")
        for struct_name in sorted(part.structs):
            w(0, f'{struct_name} = struct.Struct(">{part.structs[struct_name]}")')
    return "\n".join(w.lines + part.lines) + "\n"


def _render_support(source_name: str, digest: str) -> str:
    """The helpers every part module shares: byte tables and the short-string cache."""
    w = Writer()
    w(0, _generated_line(source_name, digest))
    w(0, '"""Helpers shared by the generated modules of :mod:`amqp_core.spec`."""')
    w()
    w(0, "from __future__ import annotations")
    w()
    w(0, "from enum import Enum")
    w(0, "from typing import Final")
    w()
    w(0, "# One-octet strings by value: the length prefix of a short string, a packed bit octet.")
    w(0, "_BYTE: Final = tuple(bytes((i,)) for i in range(256))")
    w(0, "# Octet property values by value; a KeyError hands over to the checked path.")
    w(0, "_OCTETS: Final = {i: _BYTE[i] for i in range(256)}")
    w(0, "_new = object.__new__")
    w()
    w(0, "# Encoded short strings (length octet + UTF-8) by value, for the fields whose values")
    w(0, "# repeat in real traffic (exchange and routing key of a publish, content type ...).")
    w(0, "# Bounded: once full, further values are encoded every time.")
    w(0, "_SHORTSTRS: Final[dict[str, bytes]] = {}")
    w(0, "_SHORTSTRS_SIZE: Final = 1024")
    w()
    w()
    w(0, "def _shortstr(value: str) -> bytes:")
    w(1, '"""Encode a short string for ``_SHORTSTRS``, caching it while there is room."""')
    w(1, "raw = value.encode()")
    w(1, "if len(raw) > 255:")
    w(2, "# The fast paths hand over to the checked codec, which names the field.")
    w(2, 'raise ValueError("short string over 255 bytes")')
    w(1, "encoded = _BYTE[len(raw)] + raw")
    w(1, "if type(value) is str and len(_SHORTSTRS) < _SHORTSTRS_SIZE:")
    w(2, "_SHORTSTRS[value] = encoded")
    w(1, "return encoded")
    w()
    w()
    w(0, "def _enum_int(value: int | Enum | None) -> int | None:")
    w(1, '"""Store an Enum (pika\'s DeliveryMode) as its int value."""')
    w(1, "if value is None or type(value) is int:")
    w(2, "return value")
    w(1, "return int(value.value if isinstance(value, Enum) else value)")
    return "\n".join(w.lines) + "\n"


def ruff_format(source: str, filename: Path) -> str:
    """Format ``source`` with the repository's ruff configuration."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(filename), "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ruff format failed on the generated code:\n{result.stderr}")
    return result.stdout


def render(spec_path: Path | None = None, output: Path = DEFAULT_OUTPUT) -> dict[Path, str]:
    """Return the formatted modules generated from the JSON at ``spec_path``, by path.

    ``output`` is the path of ``spec.py``; the other modules go beside it.
    """
    path = spec_path or default_spec_path()
    sources = render_unformatted(path.read_bytes(), path.name)
    paths = {name: output if name == "spec.py" else output.parent / name for name in sources}
    return {paths[name]: ruff_format(source, paths[name]) for name, source in sources.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m tools.generate_spec", description=__doc__)
    parser.add_argument(
        "--spec",
        type=Path,
        default=None,
        help=f"the JSON protocol description (default: ${SPEC_ENV_VAR} or ../shared/spec/)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the module to write")
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if the output is out of date"
    )
    args = parser.parse_args(argv)
    spec_path: Path = args.spec or default_spec_path()
    output: Path = args.output
    if not spec_path.is_file():
        print(f"error: AMQP spec JSON not found at {spec_path}", file=sys.stderr)
        return 2
    sources = render(spec_path, output)
    stale = [
        path
        for path, source in sources.items()
        if (path.read_text(encoding="utf-8") if path.exists() else None) != source
    ]
    if args.check:
        if stale:
            names = ", ".join(str(path) for path in stale)
            print(
                f"{names}: out of date with {spec_path} or with tools/generate_spec.py;\n"
                f"run `{REGENERATE_COMMAND}` to fix.",
                file=sys.stderr,
            )
            return 1
        print(f"{output} and the modules beside it are up to date.")
        return 0
    for path in stale:
        path.write_text(sources[path], encoding="utf-8")
        print(f"wrote {path}")
    if not stale:
        print(f"{output} and the modules beside it are already up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
