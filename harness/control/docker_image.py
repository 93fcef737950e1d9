"""The node image of the docker backend, built here because there may be no registry.

With no base image to pull, the root filesystem comes from debootstrap (Debian's own
bootstrapper) using the mirror apt already uses, with what the targets need included, and
is imported as an image. The image is a cache: it is built only when the engine lacks it.
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import tempfile
import time

log = logging.getLogger("tectonic.control")

DEFAULT_IMAGE = "tectonic-node:bookworm"
SUITE = "bookworm"
# python3 runs raftkv; iproute2 and iptables serve the network nemeses; procps gives kill
# and ps; etcd-server is the etcd target; faketime lets raftkv run as it does elsewhere.
PACKAGES = ("python3", "iproute2", "iptables", "procps", "etcd-server", "faketime")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BUILD_TIMEOUT = 1800.0
# The container's main process: tini (docker --init) runs it and reaps orphaned daemons.
CHANGES = ['CMD ["sleep", "infinity"]', "ENV LANG=C.UTF-8"]


class ImageError(Exception):
    """The node image is missing and cannot be built here."""


def apt_mirror(apt_dir: str = "/etc/apt", suite: str = SUITE) -> str:
    """The first mirror apt's sources name for `suite` (one-line or deb822 format);
    Debian's default mirror when none does."""
    for path in sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.sources"))):
        for stanza in _read(path).split("\n\n"):
            fields = _deb822_fields(stanza)
            if (fields.get("enabled", "yes").lower() != "no"
                    and "deb" in fields.get("types", "").split()
                    and suite in fields.get("suites", "").split()
                    and fields.get("uris")):
                return fields["uris"].split()[0]
    one_line = [os.path.join(apt_dir, "sources.list")] + \
        sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.list")))
    for path in one_line:
        for line in _read(path).splitlines():
            words = line.split("#")[0].split()
            if words[:1] == ["deb"]:
                words = [w for w in words[1:] if not w.startswith("[")
                         and not w.endswith("]")]
                if len(words) >= 2 and words[1] == suite:
                    return words[0]
    return DEFAULT_MIRROR


def debootstrap_argv(root: str, mirror: str, suite: str = SUITE) -> list[str]:
    return ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
            suite, root, mirror]


def ensure_image(client, image: str = DEFAULT_IMAGE, build_dir: str = "/var/tmp") -> float | None:
    """Make sure the engine has `image`; build it when it is tectonic's own and missing.

    Returns the seconds the build took, or None when the image was already there.
    """
    import docker
    try:
        client.images.get(image)
        return None
    except docker.errors.ImageNotFound:
        pass
    if image != DEFAULT_IMAGE:
        raise ImageError(f"docker image {image!r} does not exist in the engine; build it, or "
                         f"leave backend_opts.image unset to have {DEFAULT_IMAGE} built")
    return build_image(client, image, build_dir)


def build_image(client, image: str = DEFAULT_IMAGE, build_dir: str = "/var/tmp") -> float:
    """debootstrap a root filesystem and import it as `image`; return the seconds taken."""
    if shutil.which("debootstrap") is None:
        raise ImageError(f"the docker image {image} is missing and debootstrap is not "
                         f"installed to build it (apt-get install -y debootstrap)")
    if os.geteuid() != 0:
        raise ImageError(f"building the docker image {image} needs root (debootstrap)")
    started = time.monotonic()
    mirror = apt_mirror()
    os.makedirs(build_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="tectonic-image-", dir=build_dir)
    root = os.path.join(work, "root")
    try:
        log.info("building docker image %s: debootstrap %s from %s", image, SUITE, mirror)
        _run(debootstrap_argv(root, mirror), os.path.join(work, "debootstrap.log"))
        _slim(root)
        tarball = os.path.join(work, "root.tar")
        _run(["tar", "--numeric-owner", "--xattrs", "-C", root, "-cf", tarball, "."],
             os.path.join(work, "tar.log"))
        repository, _, tag = image.rpartition(":")
        client.api.import_image_from_file(tarball, repository=repository, tag=tag,
                                          changes=CHANGES)
    finally:
        _unmount_below(root)
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - started
    log.info("built docker image %s in %.0f s", image, seconds)
    return seconds


def _run(argv: list[str], log_path: str) -> None:
    with open(log_path, "wb") as out:
        try:
            proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise ImageError(f"{argv[0]} took over {BUILD_TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        with open(log_path, "rb") as f:
            tail = f.read()[-800:].decode(errors="replace").strip().splitlines()
        raise ImageError(f"{' '.join(argv[:2])} exited {proc.returncode}: "
                         f"{tail[-1] if tail else 'no output'}")


def _slim(root: str) -> None:
    """Drop the package caches: they are a third of the tree and no test reads them."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin",
                    "var/lib/apt/lists/*_Packages", "var/lib/apt/lists/*_InRelease"):
        for path in glob.glob(os.path.join(root, pattern)):
            os.remove(path)


def _unmount_below(root: str) -> None:
    """debootstrap unmounts /proc and /sys of the new root on exit; a killed one may not,
    and rmtree must never descend into the host's /proc or /dev."""
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for point in sorted((p for p in points if p.startswith(root + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def _deb822_fields(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0] in " \t" and key:
            fields[key] += " " + line.strip()
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        fields[key] = value.strip()
    return fields
