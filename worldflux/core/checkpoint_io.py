"""Bounded, verified reading of checkpoint files (the only place checkpoint bytes are parsed).

Every checkpoint directory (a *unit*) holds ``manifest.json``: the format version, the unit's
kind and, for every file in it, its size and SHA-256. :class:`CheckpointUnit` reads a unit so that
nothing untrusted is trusted:

* files are opened only if they are regular files (no symbolic links, FIFOs or devices), no
  larger than their limit and than the memory available, and exactly as large as the manifest
  says; their SHA-256 must match before a byte is parsed;
* JSON is decoded as strict UTF-8, its nesting depth is measured before parsing (at most
  :attr:`CheckpointLimits.max_json_depth`) and every failure is a :class:`CheckpointError`;
* safetensors headers are parsed and handed to the caller's check (names, shapes, exact
  dtypes) before any tensor is materialised.

Pickle is never used. Every error names the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from worldflux.core.exceptions import CheckpointError

__all__ = [
    "LIMITS",
    "MANIFEST",
    "CheckpointLimits",
    "CheckpointUnit",
    "TensorFile",
    "TensorInfo",
    "available_memory",
    "check_allocation",
    "parse_json",
    "read_regular_file",
]

MANIFEST = "manifest.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class CheckpointLimits:
    """Bounds applied to everything read from a checkpoint.

    Attributes:
        max_json_bytes: largest JSON file (config, metadata, manifest, replay layout).
        max_state_json_bytes: largest training-state JSON (optimiser structure, RNG, loop state).
        max_json_depth: deepest nesting of JSON arrays/objects.
        max_tensor_file_bytes: largest safetensors file (``WORLDFLUX_CHECKPOINT_MAX_BYTES``).
        max_header_bytes: largest safetensors header.
        max_tensors: most tensors in one safetensors file.
        memory_fraction: share of the available memory one allocation may take.
        max_build_seconds: longest build of a model on the meta device (size check).
    """

    max_json_bytes: int = 4 << 20
    max_state_json_bytes: int = 32 << 20
    max_json_depth: int = 64
    max_tensor_file_bytes: int = int(os.environ.get("WORLDFLUX_CHECKPOINT_MAX_BYTES", 1 << 40))
    max_header_bytes: int = 16 << 20
    max_tensors: int = 200_000
    memory_fraction: float = 0.8
    max_build_seconds: float = 10.0


#: The limits in force (tests replace it with ``dataclasses.replace``).
LIMITS = CheckpointLimits()


def available_memory() -> int:
    """Bytes of memory available for new allocations (``MemAvailable``; else free pages)."""
    try:
        with open("/proc/meminfo", "rb") as handle:
            for line in handle.read(1 << 16).splitlines():
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_allocation(nbytes: int, what: str, source: str | Path) -> None:
    """Raise CheckpointError when allocating ``nbytes`` for ``what`` exceeds a limit or the
    available memory; call it before allocating anything sized by a checkpoint."""
    limit = LIMITS.max_tensor_file_bytes
    if nbytes > limit:
        raise CheckpointError(
            f"{source}: {what} needs {nbytes} bytes, more than the limit of {limit} bytes "
            "(WORLDFLUX_CHECKPOINT_MAX_BYTES)"
        )
    free = int(available_memory() * LIMITS.memory_fraction)
    if nbytes > free:
        raise CheckpointError(
            f"{source}: {what} needs {nbytes} bytes, more than the {free} bytes of memory "
            "available; refusing to allocate it"
        )


def read_regular_file(path: Path, limit: int, field: str = "file") -> bytes:
    """The bytes of ``path`` if it is a regular file (not a link, FIFO or device) of at most
    ``limit`` bytes that fit in memory; never blocks and never reads past the limit."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (expected the checkpoint's {field})") from None
    except OSError as error:
        raise CheckpointError(f"{path}: {field} unreadable ({error.strerror})") from None
    if stat.S_ISLNK(info.st_mode):
        raise CheckpointError(f"{path}: {field} is a symbolic link; checkpoints hold plain files")
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path}: {field} is not a regular file")
    if info.st_size > limit:
        raise CheckpointError(
            f"{path}: {field} has {info.st_size} bytes, more than the limit of {limit}"
        )
    check_allocation(info.st_size, field, path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise CheckpointError(f"{path}: {field} unreadable ({error.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CheckpointError(f"{path}: {field} is not a regular file")
        chunks, left = [], info.st_size + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 26))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as error:
        raise CheckpointError(f"{path}: {field} unreadable ({error.strerror})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) != info.st_size:
        raise CheckpointError(f"{path}: {field} changed size while it was read")
    return data


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


def parse_json(data: bytes, source: str | Path, max_depth: int | None = None) -> Any:
    """Parse untrusted JSON: strict UTF-8, nesting measured before parsing, CheckpointError on
    every failure (never UnicodeDecodeError, RecursionError or a huge-integer ValueError)."""
    depth_limit = LIMITS.max_json_depth if max_depth is None else max_depth
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CheckpointError(
            f"{source}: not valid JSON (not UTF-8 text: byte {error.start} is binary)"
        ) from None
    skeleton = np.frombuffer(_STRING.sub(b"", data), dtype=np.uint8)
    delta = (np.isin(skeleton, (0x5B, 0x7B)).astype(np.int64)) - np.isin(skeleton, (0x5D, 0x7D))
    depth = int(np.cumsum(delta).max()) if delta.size else 0
    if depth > depth_limit:
        raise CheckpointError(
            f"{source}: not valid JSON (nested {depth} deep, the limit is {depth_limit})"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"{source}: not valid JSON ({error})") from None


@dataclass(frozen=True)
class TensorInfo:
    """One entry of a safetensors header."""

    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """Bytes of the tensor's data."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count * torch.empty((), dtype=self.dtype).element_size()


_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def parse_safetensors_header(data: bytes, source: Path) -> dict[str, TensorInfo]:
    """The tensors a safetensors file declares, checked to fit the file exactly."""
    if len(data) < 8:
        raise CheckpointError(f"{source}: corrupt or unreadable (shorter than a header)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(len(data) - 8, LIMITS.max_header_bytes):
        raise CheckpointError(f"{source}: corrupt or unreadable (header length {size})")
    try:
        header = parse_json(data[8 : 8 + size], "header")
    except CheckpointError as error:
        raise CheckpointError(f"{source}: corrupt or unreadable ({error.message})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: corrupt or unreadable (header is not an object)")
    header.pop("__metadata__", None)
    if len(header) > LIMITS.max_tensors:
        raise CheckpointError(f"{source}: {len(header)} tensors, the limit is {LIMITS.max_tensors}")
    infos: dict[str, TensorInfo] = {}
    spans = []
    for name, entry in header.items():
        field = f"{source}: tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError(f"{field}: corrupt header entry")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _DTYPES:
            raise CheckpointError(f"{field}: dtype {dtype!r} is not supported")
        if not isinstance(shape, list) or not all(
            type(d) is int and 0 <= d < 1 << 40 for d in shape
        ):
            raise CheckpointError(f"{field}: corrupt shape {shape!r}")
        if not (
            isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
        ):
            raise CheckpointError(f"{field}: corrupt data_offsets")
        info = TensorInfo(_DTYPES[dtype], tuple(shape))
        if offsets[1] - offsets[0] != info.nbytes or offsets[0] < 0:
            raise CheckpointError(f"{field}: data_offsets do not match its shape and dtype")
        infos[name] = info
        spans.append((offsets[0], offsets[1]))
    end = 0
    for begin, stop in sorted(spans):
        if begin != end:
            raise CheckpointError(f"{source}: corrupt or unreadable (tensor data overlaps)")
        end = stop
    if 8 + size + end != len(data):
        raise CheckpointError(f"{source}: corrupt or unreadable (data length {len(data)})")
    return infos


HeaderCheck = Callable[[Mapping[str, TensorInfo], Path], None]


class CheckpointUnit:
    """A checkpoint directory whose every file is listed, sized and hashed in its manifest.

    Args:
        root: the directory.
        kind: the unit kind the caller expects (``"model"`` or ``"training"``).
        format_version: the manifest format this reader understands.
        subdirs: directories the unit may hold besides its files (verified separately).

    Raises:
        CheckpointError: no or a corrupt manifest, another format version or kind, files that
            are missing or not listed.
    """

    def __init__(
        self, root: Path, kind: str, format_version: int, subdirs: frozenset[str] = frozenset()
    ) -> None:
        self.root = root
        try:
            mode = os.lstat(root).st_mode
        except OSError:
            raise CheckpointError(f"{root}: missing (expected a checkpoint directory)") from None
        if not stat.S_ISDIR(mode):
            raise CheckpointError(f"{root}: not a directory (or a symbolic link to one)")
        path = root / MANIFEST
        doc = parse_json(read_regular_file(path, LIMITS.max_json_bytes, "manifest"), path)
        if not isinstance(doc, dict):
            raise CheckpointError(f"{path}: expected a JSON object")
        version = doc.get("format_version")
        if type(version) is not int or version != format_version:
            raise CheckpointError(
                f"{path}: format_version {version!r} is not supported (expected "
                f"{format_version}; written by another worldflux version?)"
            )
        if doc.get("kind") != kind:
            raise CheckpointError(f"{path}: kind {doc.get('kind')!r}, expected {kind!r}")
        files = doc.get("files")
        if not isinstance(files, dict):
            raise CheckpointError(f"{path}: field 'files' must be an object")
        self.files: dict[str, tuple[int, str]] = {}
        for name, entry in files.items():
            size = entry.get("size") if isinstance(entry, dict) else None
            digest = entry.get("sha256") if isinstance(entry, dict) else None
            if not (
                _NAME.fullmatch(name)
                and name != MANIFEST
                and type(size) is int
                and size >= 0
                and isinstance(digest, str)
                and _SHA256.fullmatch(digest)
            ):
                raise CheckpointError(f"{path}: field 'files.{name}' is malformed")
            self.files[name] = (size, digest)
        try:
            present = {p.name for p in root.iterdir()}
        except OSError as error:
            raise CheckpointError(f"{root}: unreadable ({error.strerror})") from None
        extra = sorted(present - set(self.files) - {MANIFEST} - subdirs)
        if extra:
            raise CheckpointError(f"{root}: holds files not in its manifest: {extra[:5]}")

    def read(self, name: str, limit: int | None = None) -> bytes:
        """The verified bytes of ``name`` (size and SHA-256 as the manifest says)."""
        path = self.root / name
        if name not in self.files:
            raise CheckpointError(f"{path}: missing (not in {self.root / MANIFEST})")
        size, digest = self.files[name]
        bound = LIMITS.max_tensor_file_bytes if limit is None else limit
        if size > bound:
            raise CheckpointError(f"{path}: {size} bytes, more than the limit of {bound}")
        data = read_regular_file(path, bound, name)
        if len(data) != size:
            raise CheckpointError(
                f"{path}: {len(data)} bytes, the manifest says {size} (truncated or replaced)"
            )
        if hashlib.sha256(data).hexdigest() != digest:
            raise CheckpointError(
                f"{path}: content hash differs from {self.root / MANIFEST} (corrupt data)"
            )
        return data

    def json(self, name: str, limit: int | None = None) -> dict[str, Any]:
        """A verified JSON object file."""
        bound = LIMITS.max_json_bytes if limit is None else limit
        doc = parse_json(self.read(name, bound), self.root / name)
        if not isinstance(doc, dict):
            raise CheckpointError(
                f"{self.root / name}: expected a JSON object, found {type(doc).__name__}"
            )
        return doc

    def tensor_file(self, name: str) -> TensorFile:
        """A verified safetensors file whose header is parsed and nothing is built yet."""
        data = self.read(name)
        return TensorFile(self.root / name, data, parse_safetensors_header(data, self.root / name))

    def tensors(self, name: str, check: HeaderCheck) -> dict[str, torch.Tensor]:
        """A verified safetensors file; ``check`` sees its header before anything is built."""
        file = self.tensor_file(name)
        check(file.infos, file.path)
        return file.load()


@dataclass(frozen=True)
class TensorFile:
    """The verified bytes and parsed header of a safetensors file."""

    path: Path
    data: bytes
    infos: dict[str, TensorInfo]

    def load(self) -> dict[str, torch.Tensor]:
        """Materialise the tensors (after the memory they need is checked)."""
        check_allocation(sum(i.nbytes for i in self.infos.values()), "its tensors", self.path)
        try:
            tensors = load_safetensors(self.data)
        except (SafetensorError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"{self.path}: corrupt or unreadable ({error})") from None
        for key, tensor in tensors.items():
            info = self.infos[key]
            if tensor.dtype != info.dtype or tuple(tensor.shape) != info.shape:
                raise CheckpointError(f"{self.path}: tensor {key!r} decoded differently")
        return tensors
