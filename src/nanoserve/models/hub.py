"""Models from a Hugging Face hub: ``source: hf:<org>/<repo>[/<file>][@<revision>]``.

Weights are pulled on request (``nanoserve pull``, Ollama's ``/api/pull``), never while a model
loads: a model whose weights are not in the cache is not ready (``/ready`` names it), as a
missing file would be. Downloads go through ``huggingface_hub`` into ``<data dir>/hub`` (its
cache layout): an interrupted download resumes where it stopped, and each file whose hub ETag is
a SHA-256 (every LFS file: weights) is checked against it before it is used. ``HF_ENDPOINT``,
``HF_TOKEN`` and ``HF_HUB_OFFLINE`` are honoured.

Without a file, the reference is the one ``.gguf`` file of a repository that has one (a
repository with several needs the file named), else the whole repository (a sentence-transformers
directory).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nanoserve.errors import ConfigError, NotPulled, PullFailed

HF_PREFIX = "hf:"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REPO_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")

Progress = Callable[[str, str, int, int | None], None]  # (file, its sha256 or etag, bytes done, in all)


@dataclass(frozen=True)
class HubRef:
    repo: str  # org/name
    filename: str | None = None
    revision: str = "main"

    @classmethod
    def parse(cls, source: str) -> HubRef:
        """``hf:<org>/<repo>[/<path/in/repo>][@<revision>]``; a ConfigError says what is wrong."""
        if not source.startswith(HF_PREFIX):
            raise ConfigError(
                f"model source {source!r}: expected {HF_PREFIX}<org>/<repo>[/<file>][@<revision>]"
            )
        body, _, revision = source[len(HF_PREFIX) :].partition("@")
        parts = body.split("/")
        if len(parts) < 2 or not all(_REPO_PART.match(p) for p in parts[:2]):
            raise ConfigError(
                f"model source {source!r}: expected {HF_PREFIX}<org>/<repo>[/<file>][@<revision>]"
            )
        filename = "/".join(parts[2:]) or None
        if filename is not None and any(p in ("", ".", "..") for p in parts[2:]):
            raise ConfigError(f"model source {source!r}: the file path has an empty, '.' or '..' part")
        if revision and not re.match(r"^[A-Za-z0-9._/-]{1,128}$", revision):
            raise ConfigError(f"model source {source!r}: invalid revision {revision!r}")
        return cls("/".join(parts[:2]), filename, revision or "main")

    def __str__(self) -> str:
        path = f"{self.repo}/{self.filename}" if self.filename else self.repo
        return f"{HF_PREFIX}{path}" + (f"@{self.revision}" if self.revision != "main" else "")


def is_hub_source(source: str | None) -> bool:
    return source is not None and source.startswith(HF_PREFIX)


def hub_dir(data_dir: Path) -> Path:
    return data_dir / "hub"


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _repo_dir(ref: HubRef, cache: Path) -> Path:
    return cache / ("models--" + ref.repo.replace("/", "--"))


def _snapshot(ref: HubRef, cache: Path) -> Path | None:
    """The cached snapshot directory of the reference's revision (None: never pulled)."""
    repo = _repo_dir(ref, cache)
    commit = ref.revision
    if (refs := repo / "refs" / ref.revision).is_file():
        commit = refs.read_text().strip()
    snapshot = repo / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def cached_path(ref: HubRef, cache: Path) -> Path | None:
    """The local file or directory of a pulled reference; None if it was not pulled (offline)."""
    snapshot = _snapshot(ref, cache)
    if snapshot is None:
        return None
    if ref.filename is not None:
        path = snapshot / ref.filename
        return path if path.exists() else None
    weights = list(snapshot.rglob("*.gguf"))
    return weights[0] if len(weights) == 1 else snapshot if not weights else None


def resolve(ref: HubRef, cache: Path) -> Path:
    path = cached_path(ref, cache)
    if path is None:
        raise NotPulled(
            f"model source {ref}: not pulled yet; pull it first (nanoserve pull, or Ollama's /api/pull)"
        )
    return path


def _files(ref: HubRef) -> list[str]:
    if ref.filename is not None:
        return [ref.filename]
    from huggingface_hub import HfApi

    files = HfApi(endpoint=_endpoint()).list_repo_files(ref.repo, revision=ref.revision)
    weights = [f for f in files if f.endswith(".gguf")]
    if not weights:
        return files
    if len(weights) > 1:
        listed = ", ".join(weights) or "none"
        raise ConfigError(
            f"model source {ref}: name one GGUF file as {HF_PREFIX}{ref.repo}/<file> (the repository has: {listed})"
        )
    return weights


def pull(ref: HubRef, cache: Path, *, progress: Progress | None = None) -> Path:
    """Download what ``ref`` names into ``cache`` (blocking: run it in a thread); resumes an
    interrupted download; verifies each LFS file's SHA-256. Returns the local path."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        for filename in _files(ref):
            url = hf_hub_url(ref.repo, filename, revision=ref.revision, endpoint=_endpoint())
            meta = get_hf_file_metadata(url)
            etag = (meta.etag or "").strip('"')
            incomplete = _repo_dir(ref, cache) / "blobs" / f"{etag}.incomplete"
            watch = _watch(incomplete, filename, etag, meta.size, progress)
            try:
                path = Path(
                    hf_hub_download(
                        ref.repo, filename, revision=ref.revision, cache_dir=cache, endpoint=_endpoint()
                    )
                )
            finally:
                watch()
            if SHA256.match(etag):
                _verify(path, etag, ref, filename)
            if progress is not None:
                progress(filename, etag, path.stat().st_size, meta.size)
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as exc:
        raise PullFailed(
            f"cannot pull {ref}: offline (HF_HUB_OFFLINE) or the hub is unreachable: {exc}"
        ) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        raise PullFailed(f"cannot pull {ref}: the hub answered {status}: {_first_line(exc)}") from exc
    except OSError as exc:
        raise PullFailed(f"cannot pull {ref}: {exc}") from exc
    return resolve(ref, cache)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _verify(path: Path, expected: str, ref: HubRef, filename: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise PullFailed(
            f"cannot pull {ref}: {filename} does not match its checksum (sha256 {digest.hexdigest()[:12]}... "
            f"instead of {expected[:12]}...); the download was deleted"
        )


def _watch(
    incomplete: Path, filename: str, etag: str, total: int | None, progress: Progress | None
) -> Callable[[], None]:
    """Report the size of the download's ``.incomplete`` file every half second until stopped."""
    if progress is None:
        return lambda: None
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.5):
            try:
                progress(filename, etag, incomplete.stat().st_size, total)
            except FileNotFoundError:
                pass

    threading.Thread(target=run, name=f"pull:{filename}", daemon=True).start()
    return stop.set
