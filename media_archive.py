"""The S3 archive's functions under the spec's module name: `upload_to_s3`, `generate_s3_key`,
`verify_s3_upload`. The archive itself is `social_tui_media.media.s3_archive.Archive`."""

from social_tui_media.media.s3_archive import generate_s3_key, upload_to_s3, verify_s3_upload

__all__ = ["generate_s3_key", "upload_to_s3", "verify_s3_upload"]
