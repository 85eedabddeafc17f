"""The Gradescope autograder zip: setup.sh, run_autograder and weights.toml at its root, echolab's
tracked files under echolab/. ``--unpacked DIR`` lays the same files out in DIR, with the
Dockerfile, as a build context for trying the autograder locally. ``--wheels`` adds echolab and
everything it needs as wheels (made by this machine's pip), so setup.sh installs without an index.

    python3 grader/build_zip.py autograder.zip
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
AT_ROOT = ("setup.sh", "run_autograder", "weights.toml")


def files() -> dict[str, Path]:
    """Name in the zip -> file here: the grader's own at the root, the repository's tracked files
    (as they are in the work tree) under echolab/."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    tracked = [name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()]
    return {**{name: HERE / name for name in AT_ROOT}, **{f"echolab/{name}": ROOT / name for name in tracked}}


def wheels(directory: Path) -> dict[str, Path]:
    """echolab and what it installs with, as wheels for the Python that runs this (the image's
    must be the same minor version: Debian 12 and this workstation both have 3.11)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(directory), str(ROOT), "pytest-timeout"],
        check=True,
    )
    return {f"wheels/{path.name}": path for path in sorted(directory.glob("*.whl"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("zip", nargs="?", type=Path, help="write the autograder zip here")
    parser.add_argument("--unpacked", type=Path, metavar="DIR", help="lay the files out in DIR, with the Dockerfile")
    parser.add_argument("--wheels", action="store_true", help="add echolab and its dependencies as wheels/")
    args = parser.parse_args()
    if args.zip is None and args.unpacked is None:
        parser.error("name a zip to write, or --unpacked DIR")
    found = files()
    with tempfile.TemporaryDirectory(prefix="echolab-wheels-") as made:
        if args.wheels:
            found.update(wheels(Path(made)))
        write(found, args.zip, args.unpacked)
    return 0


def write(found: dict[str, Path], zip_path: Path | None, unpacked: Path | None) -> None:
    if zip_path is not None:
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, path in found.items():
                archive.write(path, name)
    if unpacked is not None:
        for name, path in {**found, "Dockerfile": HERE / "Dockerfile"}.items():
            target = unpacked / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


if __name__ == "__main__":
    sys.exit(main())
