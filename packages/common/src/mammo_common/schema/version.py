"""The version of the data contract."""

#: Version written into every store. Bump the minor version for backwards-compatible additions
#: (readers accept them), the major version for breaking changes (readers refuse them).
#: 1.1: ``CaseRecord.dicom`` (identifiers of the source DICOM image), left out when unknown.
SCHEMA_VERSION = "1.1"

#: Major versions this release can read.
SUPPORTED_MAJOR_VERSIONS = frozenset({1})


def is_supported(version: str) -> bool:
    """Return True if a store written with ``version`` can be read by this release."""
    try:
        major = int(str(version).split(".", 1)[0])
    except ValueError:
        return False
    return major in SUPPORTED_MAJOR_VERSIONS
