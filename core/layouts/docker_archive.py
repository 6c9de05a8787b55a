"""``docker save`` / ``podman save`` / ``skopeo copy … docker-archive:`` output, recognised so it can be refused in
words a user can act on.

A docker-archive keeps each image's config and its layers as uncompressed tars, listed by a top-level
``manifest.json`` that is a JSON *list* (``Config``, ``RepoTags``, ``Layers``), not a registry manifest. The
manifests an image was pushed and pulled by are not in it, so there is no digest to keep: regpack carries images
digest for digest and cannot read one. (Docker 25 and later also write an OCI layout into the same tar; that is
read as the OCI layout.)"""

from __future__ import annotations

import re

REFUSAL = (
    "a docker-archive (docker save, podman save, skopeo copy … docker-archive:): it holds configs and layer tars but "
    "no registry manifests, so its images have no digests to keep. Save images as OCI instead (podman save --format "
    "oci-archive; docker save of Docker 25 or later), or convert it, with new digests: skopeo copy "
    "docker-archive:FILE:NAME:TAG dir:FOLDER"
)

# skopeo and podman write each layer once as <hex>.tar and link <hex>/layer.tar to it (a symbolic link; tar can
# turn it into a hard link): the first link member met says what the archive is
LAYER_LINK = re.compile(r"[0-9a-f]{64}(/layer)?\.tar")


def is_index(top_manifest: bytes) -> bool:
    """Whether a top-level manifest.json is a docker-archive's list of images (a registry manifest is an object)."""
    return top_manifest.lstrip()[:1] == b"["
