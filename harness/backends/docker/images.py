"""The docker backend's images: built from docker/Dockerfile, tagged by a hash of their inputs.

The tag is a hash of exactly the files sent as build context (chosen by .dockerignore, as the
docker CLI would), so an unchanged checkout reuses its images and any edit builds new ones. A
file lock keeps two runs (or two workers) from building the same image at once. ``derived_image``
adds files to one of them, as a student's own --server-image would (the self-tests, the bench).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backends.docker.labels import RUN
from harness.errors import BackendUnavailableError

DOCKERFILE = "docker/Dockerfile"
ROLES = ("server", "client", "net")  # net: the link's controls (harness/net/docker.py)
LABELS = {"org.echolab.run": "image"}  # a cache every run shares, never swept as a run's leftover
BASE_HELP = "run ci/base-image.sh to bootstrap it offline, or `docker pull {image}` where a registry answers"


@dataclass(frozen=True)
class BuildContext:
    """The files ``docker build`` would send, and the hash that names the images built from them."""

    root: Path
    files: tuple[str, ...]
    digest: str

    @classmethod
    def of(cls, root: Path) -> BuildContext:
        from docker.utils.build import exclude_paths

        ignore = root / ".dockerignore"
        patterns = [line.strip() for line in ignore.read_text().splitlines() if line.strip()[:1] not in ("", "#")]
        files = tuple(sorted(p for p in exclude_paths(str(root), patterns, DOCKERFILE) if (root / p).is_file()))
        digest = hashlib.sha256()
        for name in files:
            digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
        return cls(root, files, digest.hexdigest()[:12])

    def tag(self, role: str) -> str:
        return f"echolab-{role}:{self.digest}"

    def base_images(self) -> list[str]:
        """The images the Dockerfile starts FROM, leaving out its own stages."""
        stages: set[str] = set()
        bases = []
        for line in (self.root / DOCKERFILE).read_text().splitlines():
            match = re.match(r"\s*FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
            if match:
                if match[1] not in stages and match[1] not in bases:
                    bases.append(match[1])
                if match[2]:
                    stages.add(match[2])
        return bases


def has_image(api: Any, name: str) -> bool:
    import docker.errors

    try:
        api.inspect_image(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def ensure_images(api: Any, root: Path, say: Callable[[str], None]) -> dict[str, str]:
    """The tag of each role's image, built first where it is missing."""
    context = BuildContext.of(root)
    tags = {role: context.tag(role) for role in ROLES}
    if all(has_image(api, tag) for tag in tags.values()):
        return tags
    with build_lock():
        missing = [role for role, tag in tags.items() if not has_image(api, tag)]  # built while we waited?
        if missing:
            ensure_base_images(api, context, say)
        for role in missing:
            build(api, context, role, say)
    return tags


def ensure_base_images(api: Any, context: BuildContext, say: Callable[[str], None]) -> None:
    import docker.errors

    for image in context.base_images():
        if has_image(api, image):
            continue
        say(f"pulling base image {image}")
        try:
            api.pull(image)
        except docker.errors.APIError as exc:
            reason = str(exc.explanation or exc).splitlines()[0][:120]
            raise BackendUnavailableError(
                f"base image {image} is missing and cannot be pulled ({reason}): {BASE_HELP.format(image=image)}"
            ) from None


def build(api: Any, context: BuildContext, role: str, say: Callable[[str], None]) -> None:
    """Build one target of docker/Dockerfile, saying each step as the engine reports it."""
    from docker.utils.build import create_archive

    tag = context.tag(role)
    say(f"building {tag} from {DOCKERFILE} (target {role}; inputs changed or image missing)")
    started = time.monotonic()
    last: list[str] = []
    with create_archive(str(context.root), files=list(context.files)) as archive:
        # The low-level build streams the engine's log as it goes; images.build() only returns it
        # at the end, which would leave a slow first build silent.
        for chunk in api.build(
            fileobj=archive,
            custom_context=True,
            dockerfile=DOCKERFILE,
            target=role,
            tag=tag,
            labels={**LABELS, "org.echolab.inputs": context.digest},
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        ):
            if "error" in chunk:
                detail = " | ".join(last[-3:])
                raise BackendUnavailableError(f"building {tag} failed: {chunk['error'].strip()} (after: {detail})")
            for line in str(chunk.get("stream", "")).splitlines():
                if line.strip():
                    last.append(line.strip()[:160])
                if line.startswith("Step "):
                    say(f"  {role}: {line[:110]}")
    say(f"built {tag} in {time.monotonic() - started:.0f} s")


@contextmanager
def build_lock() -> Iterator[None]:
    """One build at a time on this machine: parallel workers and concurrent runs wait their turn."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "echolab" / "docker-build.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def derived_image(api: Any, base: str, files: Mapping[str, Path], tag: str, labels: Mapping[str, str]) -> Iterator[str]:
    """``base`` plus ``files`` (path in the image -> file here), as a student builds a --server-image
    of their own: built from an in-memory context, tagged ``tag``, removed on leaving the ``with``."""
    import docker.errors

    if RUN not in labels:
        raise ValueError(f"every image echolab makes is labelled {RUN}; {tag} would not be")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        steps = [f"FROM {base}"]
        for i, (destination, source) in enumerate(files.items()):
            name = f"{i}/{source.name}"
            tar.add(source, arcname=name)
            steps.append(f"COPY {name} {destination}")
        dockerfile = "\n".join([*steps, ""]).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    try:
        for chunk in api.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            labels=dict(labels),
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        ):
            if "error" in chunk:
                raise BackendUnavailableError(f"building {tag} FROM {base} failed: {chunk['error'].strip()}")
        yield tag
    finally:
        with contextlib.suppress(docker.errors.NotFound):  # a failed build left nothing to remove
            api.remove_image(tag, force=True)
